"""The lattice centring of a cubic crystal, read off its spots on its own lattice constant."""

from __future__ import annotations

import numpy as np
import pytest

from uedsteer.surrogates.crystal.centring import CUBIC_CENTRING, cubic_centring
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


def test_aggregate_restricts_the_space_group_to_the_centring(shipped):
    """With lists, a cubic aggregate's space group is of the centring the spots show, and the
    lists may come beside precomputed features (the same result)."""
    lists, _ = lists_of("Fe (bcc)", 10)
    agg = shipped.predict_aggregate(lists)
    assert agg.crystal_system == "cubic" and agg.centring == "I"
    assert CUBIC_CENTRING[agg.space_group] == "I"
    assert all(CUBIC_CENTRING[g] == "I" for g in agg.space_group_weights)
    x, _ = shipped.features(lists)
    again = shipped.predict_aggregate(lists, features=x)
    assert again.space_group == agg.space_group and again.centring == "I"
    assert again.space_group_weights == pytest.approx(agg.space_group_weights)
    plain = shipped.predict_aggregate(features=x)
    assert plain.centring is None and len(plain.space_group_weights) > len(agg.space_group_weights)
    with pytest.raises(ValueError, match="bragg_lists has 9 lists but features= has 10 rows"):
        shipped.predict_aggregate(lists[:9], features=x)


def test_non_cubic_aggregates_are_left_alone(shipped):
    mg = ReferenceStructure("Mg (hcp)", "hexagonal", 194, 3.21, 5.21)
    agg = shipped.predict_aggregate(reference_bragg_lists(mg, 6))
    assert agg.crystal_system == "hexagonal" and agg.centring is None
    assert np.isfinite(agg.lattice).all()
