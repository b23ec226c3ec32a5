"""Crystal systems and space-group ranges: defined once, in the order stored data encodes."""

from __future__ import annotations

import numpy as np

from uedsteer.sim_devices.crystals import store
from uedsteer.sim_devices.crystals.systems import (
    CRYSTAL_SYSTEMS,
    SPACE_GROUP_RANGES,
    space_groups_of,
    system_of_space_group,
)
from uedsteer.surrogates.crystal import features


def test_one_definition_everywhere():
    assert features.CRYSTAL_SYSTEMS is CRYSTAL_SYSTEMS
    assert store.CRYSTAL_SYSTEMS is CRYSTAL_SYSTEMS


def test_the_encoded_order_is_fixed():
    # crystal stores hold codes into this tuple and the predictor's vote columns follow it:
    # reordering it would relabel stored data and saved models
    assert CRYSTAL_SYSTEMS == (
        "cubic",
        "hexagonal",
        "trigonal",
        "tetragonal",
        "orthorhombic",
        "monoclinic",
    )
    assert set(SPACE_GROUP_RANGES) == set(CRYSTAL_SYSTEMS)


def test_ranges_tile_space_groups_3_to_230():
    groups = np.concatenate([space_groups_of(s) for s in sorted(SPACE_GROUP_RANGES)])
    np.testing.assert_array_equal(np.sort(groups), np.arange(3, 231))
    for system in CRYSTAL_SYSTEMS:
        lo, hi = SPACE_GROUP_RANGES[system]
        assert system_of_space_group(lo) == system_of_space_group(hi) == system
