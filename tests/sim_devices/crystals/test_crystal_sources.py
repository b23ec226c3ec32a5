"""Random crystals from the three sources, and the settings that draw them."""

from __future__ import annotations

import numpy as np
import pytest

from uedsteer.sim_devices.crystals.settings import CrystalGenSettings
from uedsteer.sim_devices.crystals.sources import random_crystal
from uedsteer.sim_devices.crystals.symmetry import SYMPREC
from uedsteer.sim_devices.crystals.systems import CRYSTAL_SYSTEMS, system_of_space_group


@pytest.mark.parametrize("source", ["prototype", "wyckoff", "random"])
@pytest.mark.parametrize("system", CRYSTAL_SYSTEMS)
def test_random_crystal_has_the_symmetry_it_claims(system, source):
    import spglib

    rng = np.random.default_rng([3, CRYSTAL_SYSTEMS.index(system)])
    settings = CrystalGenSettings(max_atoms=24, sources={source: 1.0})
    atoms, info = random_crystal(system, rng, settings)
    assert info["system"] == system and info["source"] == source
    assert system_of_space_group(info["space_group"]) == system
    assert len(atoms) <= 24 and info["volume"] <= 1000
    cell = (atoms.cell[:], atoms.get_scaled_positions(), atoms.numbers)
    # the label is the crystal's own symmetry (not only the group it was drawn on)
    assert spglib.get_symmetry_dataset(cell, symprec=SYMPREC).number == info["space_group"]
    a, b, c, alpha, beta, gamma = info["lattice"]
    if system == "cubic":
        assert a == pytest.approx(b) == pytest.approx(c)
    if system in ("hexagonal", "trigonal"):
        assert a == pytest.approx(b) and gamma == pytest.approx(120, abs=1e-6)
    if system == "monoclinic":
        assert alpha == pytest.approx(90) and gamma == pytest.approx(90)


def test_prototype_keeps_its_structure_type_with_new_elements():
    import spglib

    from uedsteer.sim_devices.crystals.sources import _prototypes

    settings = CrystalGenSettings(sources={"prototype": 1.0})
    for k in range(6):
        rng = np.random.default_rng([9, k])
        atoms, info = random_crystal("cubic", rng, settings)
        proto = next(p for p in _prototypes() if p[3] == info["tag"])
        assert info["space_group"] == proto[1]
        cell = (atoms.cell[:], atoms.get_scaled_positions(), atoms.numbers)
        assert spglib.get_symmetry_dataset(cell, symprec=1e-3).number == proto[1]
        # same arrangement, other elements: as many distinct species as the prototype
        assert len(set(atoms.get_chemical_symbols())) == len(set(proto[2]["species"]))


def test_bad_settings_name_the_field():
    with pytest.raises(ValueError, match="triclinic"):
        CrystalGenSettings(systems=("triclinic",))
    with pytest.raises(ValueError, match="zone_axes"):
        CrystalGenSettings(zone_axes=0)
    with pytest.raises(ValueError, match="sources"):
        CrystalGenSettings(sources={"icsd": 1.0})
    with pytest.raises(ValueError, match="space_group=1 "):
        system_of_space_group(1)
