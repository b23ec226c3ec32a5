"""A generated crystal is labelled by the symmetry its atoms have, not the group it was drawn on."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase import Atoms

from uedsteer.sim_devices.crystals.settings import CrystalDatasetSpec, CrystalGenSettings
from uedsteer.sim_devices.crystals.sources import random_crystal
from uedsteer.sim_devices.crystals.symmetry import symmetry_label


def cubic(a: float, symbols: list[str], frac: list[list[float]]) -> Atoms:
    return Atoms(symbols=symbols, scaled_positions=frac, cell=np.eye(3) * a, pbc=True)


def test_two_like_atoms_of_pm3m_are_a_body_centred_crystal():
    """Fe at 0,0,0 and ½,½,½: drawn as Pm-3m (221), it is bcc iron, Im-3m (229), same a."""
    atoms = cubic(2.87, ["Fe", "Fe"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    label = symmetry_label(atoms, 221)
    assert (label.space_group, label.system) == (229, "cubic")
    assert label.atoms.cell.cellpar()[:3] == pytest.approx([2.87] * 3)


def test_like_atoms_on_2a_and_6b_of_im3m_are_simple_cubic_of_half_the_cell():
    """2a (0,0,0; ½,½,½) and 6b (0,½,½; …) of one element fill every corner of a cube of a/2:
    Pm-3m (221) with a/2, the cell whose spots the patterns show (CsCl with like atoms)."""
    frac = [[0, 0, 0], [0.5, 0.5, 0.5], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0],
            [0.5, 0, 0], [0, 0.5, 0], [0, 0, 0.5]]  # fmt: skip
    label = symmetry_label(cubic(6.0, ["Cu"] * 8, frac), 229)
    assert (label.space_group, label.system) == (221, "cubic")
    assert label.atoms.cell.cellpar()[:3] == pytest.approx([3.0] * 3)
    assert len(label.atoms) == 1


def test_a_crystal_with_its_drawn_symmetry_is_returned_unchanged():
    rock_salt = cubic(
        5.64,
        ["Na"] * 4 + ["Cl"] * 4,
        [[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0],
         [0.5, 0.5, 0.5], [0.5, 0, 0], [0, 0.5, 0], [0, 0, 0.5]],
    )  # fmt: skip
    label = symmetry_label(rock_salt, 225)
    assert label.space_group == 225 and label.atoms is rock_salt


@pytest.mark.parametrize("index", [120, 150, 198, 228, 234, 110])
def test_drawn_crystals_with_more_symmetry_carry_the_symmetry_they_have(index):
    """Materials of seed 9001 that pyxtal drew with more symmetry than their group (cubic 219,
    209, 215, 221 and 229, and a trigonal one whose atoms are hexagonal): the label is spglib's
    group, within the drawn system, and the tag keeps the drawn group."""
    import spglib

    settings = CrystalGenSettings()
    system = settings.systems[index % len(settings.systems)]
    atoms, info = random_crystal(system, np.random.default_rng([9001, index]), settings)
    cell = (atoms.cell[:], atoms.get_scaled_positions(), atoms.numbers)
    assert spglib.get_symmetry_dataset(cell, symprec=1e-3).number == info["space_group"]
    assert info["system"] == system
    assert info["lattice"] == pytest.approx(list(atoms.cell.cellpar()))


def test_a_store_of_the_format_with_drawn_labels_is_refused(tmp_path):
    """A format-1 store's labels are the drawn groups: loading it or resuming it says so."""
    from uedsteer.sim_devices.crystals.store import check_crystal_store, write_crystal_dataset

    store = tmp_path / "old"
    (store / "chunks").mkdir(parents=True)
    spec = CrystalDatasetSpec(n_materials=2, seed=1)
    meta = {"uedsteer_crystals": 1, "config": json.loads(spec.model_dump_json()), "complete": True}
    (store / "spec.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"format 1, .*drawn on.*make it again"):
        check_crystal_store(store)
    with pytest.raises(ValueError, match=r"format 1, .*new --out"):
        write_crystal_dataset(store, spec)
