"""The lattice centring of a cubic crystal, read off its spots on its own lattice constant."""

from __future__ import annotations

import numpy as np
import pytest

from uedsteer.surrogates.crystal.centring import (
    CUBIC_CENTRING,
    PSEUDO_CENTRING,
    cubic_centring,
    weigh_by_centring,
)
from uedsteer.surrogates.crystal.reference_structures import (
    REFERENCE_STRUCTURES,
    ReferenceStructure,
    reference_bragg_lists,
)


def lists_of(name: str, n_zone_axes: int = 6) -> tuple[list, float]:
    structure = next(s for s in REFERENCE_STRUCTURES if s.name == name)
    return reference_bragg_lists(structure, n_zone_axes), structure.a


def test_the_table_is_the_first_letter_of_each_cubic_symbol():
    from pyxtal.symmetry import Group

    assert sorted(CUBIC_CENTRING) == list(range(195, 231))
    for number, centring in CUBIC_CENTRING.items():
        assert Group(number).symbol[0] == centring, number


@pytest.mark.parametrize(
    ("name", "centring"),
    [
        ("Au (fcc)", "F"),
        ("NaCl (rock salt)", "F"),
        ("ZnS (zinc blende)", "F"),
        ("Si (diamond)", "F"),  # the 200 its glide forbids returns by double diffraction: still F
        ("Fe (bcc)", "I"),
    ],
)
def test_dynamical_lists_show_the_centring_of_the_lattice(name, centring):
    lists, a = lists_of(name)
    assert cubic_centring(lists, a) == centring


def test_a_primitive_cell_with_two_elements_reads_p():
    """CsCl: Cs at the corner, Cl at the body centre; the two differ, so h + k + l odd stays."""
    from ase.build import bulk

    from uedsteer.sim_devices.physics.bragg import bragg_lists_for_zone_axes, zone_axes

    atoms = bulk("CsCl", "cesiumchloride", a=4.12)
    lists = bragg_lists_for_zone_axes(atoms, zone_axes(atoms, n=6))
    assert cubic_centring(lists, 4.12) == "P"
    # the same cell with one element on both sites is bcc: no odd h² + k² + l² is left
    same = bulk("Cs", "bcc", a=4.12, cubic=True)
    assert cubic_centring(bragg_lists_for_zone_axes(same, zone_axes(same, n=6)), 4.12) == "I"


@pytest.mark.parametrize("name", ["Au (fcc)", "Fe (bcc)"])
def test_a_wrong_constant_decides_nothing(name):
    """Twice the constant makes every N a multiple of 4 (neither 110 nor 111 is left: which
    centring cannot be told); a constant 7 % off indexes nothing."""
    lists, a = lists_of(name)
    assert cubic_centring(lists, 2 * a) is None
    assert cubic_centring(lists, 1.07 * a) is None
    assert cubic_centring([], a) is None and cubic_centring(lists, float("nan")) is None


def test_weights_of_another_centring_count_as_a_pseudo_centred_crystal():
    """A close call between a P and an I group goes to the centring the spots show; a forest
    all but sure of a P group keeps it (its odd spots may be too faint for the lists)."""
    close = {221: 0.6, 229: 0.4}
    group, share, weights = weigh_by_centring(close, "I")
    assert group == 229 and sum(weights.values()) == pytest.approx(1.0)
    assert share == pytest.approx(0.4 / (0.4 + 0.6 * PSEUDO_CENTRING))
    sure = {221: 1.0 - 1e-9, 229: 1e-9}
    assert weigh_by_centring(sure, "I")[0] == 221
    assert weigh_by_centring(close, None) == (221, pytest.approx(0.6), pytest.approx(close))


def test_aggregate_weighs_the_space_groups_by_the_centring(shipped):
    """With lists, a cubic aggregate reads its centring and its space group is of it; the
    lists may come beside precomputed features (the same result)."""
    lists, _ = lists_of("Fe (bcc)", 10)
    agg = shipped.predict_aggregate(lists)
    assert agg.crystal_system == "cubic" and agg.centring == "I"
    assert CUBIC_CENTRING[agg.space_group] == "I"
    other = sum(w for g, w in agg.space_group_weights.items() if CUBIC_CENTRING[g] != "I")
    assert other < PSEUDO_CENTRING
    x, _ = shipped.features(lists)
    again = shipped.predict_aggregate(lists, features=x)
    assert again.space_group == agg.space_group and again.centring == "I"
    assert again.space_group_weights == pytest.approx(agg.space_group_weights)
    plain = shipped.predict_aggregate(features=x)
    assert plain.centring is None
    with pytest.raises(ValueError, match="bragg_lists has 9 lists but features= has 10 rows"):
        shipped.predict_aggregate(lists[:9], features=x)


def test_non_cubic_aggregates_are_left_alone(shipped):
    mg = ReferenceStructure("Mg (hcp)", "hexagonal", 194, 3.21, 5.21)
    agg = shipped.predict_aggregate(reference_bragg_lists(mg, 6))
    assert agg.crystal_system == "hexagonal" and agg.centring is None
    assert np.isfinite(agg.lattice).all()
