"""Random crystals and their electron-diffraction Bragg lists: the random-forest training set.

Seed 2 (Gleason et al. 2024) simulated 36,600 Materials-Project crystals. uedsteer cannot
download them, so it draws crystals itself, from three sources mixed with the weights
``sources`` (default 0.4 / 0.4 / 0.2), so that the set looks like real inorganic materials
(AFLOW prototypes with new elements, Materials-Project Wyckoff combinations, pyxtal random
crystals on common space groups; see :mod:`uedsteer.sim_devices.crystals.sources`).

Crystal systems are balanced: material ``i`` belongs to ``systems[i % len(systems)]``
(triclinic is left out, as in the paper). At most ``max_atoms`` atoms and ``max_volume`` Å³ per
conventional cell (the paper drops cells above 1,000 Å³). The store records each material's
source and its AFLOW label or Wyckoff sites, so accuracy can be split by source.

Every material comes from its own generator ``np.random.default_rng([seed, i])``, so a material
depends only on (seed, i), whatever the chunking or the number of workers. Each material is
simulated along ``zone_axes`` symmetry-distinct zone axes (densest first) with the Bloch-wave
method at ``thickness_nm`` (seed 2: 20 nm, 300 kV, k_max 2 1/Å), or kinematically.

The store (:mod:`uedsteer.sim_devices.crystals.store`) is a folder of chunk files written
atomically, so an interrupted run resumes by skipping finished chunks.

This module is the entry the ``uedsteer generate crystals`` and ``uedsteer train crystal``
commands use; the work is done in :mod:`uedsteer.sim_devices.crystals`, one job a module.
"""

from __future__ import annotations

from .crystals.dataset import (
    CrystalDataset,
    concatenate_datasets,
    load_crystal_dataset,
    split_by_material,
)
from .crystals.draws import COMMON_SPACE_GROUPS
from .crystals.settings import SOURCES, CrystalDatasetSpec, CrystalGenSettings
from .crystals.simulate import simulate_material
from .crystals.sources import (
    prototype_crystal,
    pyxtal_random_crystal,
    random_crystal,
    wyckoff_crystal,
)
from .crystals.store import FORMAT_VERSION, check_crystal_store, write_crystal_dataset
from .crystals.systems import (
    CRYSTAL_SYSTEMS,
    SPACE_GROUP_RANGES,
    space_groups_of,
    system_of_space_group,
)

__all__ = [
    "COMMON_SPACE_GROUPS",
    "CRYSTAL_SYSTEMS",
    "FORMAT_VERSION",
    "SOURCES",
    "SPACE_GROUP_RANGES",
    "CrystalDataset",
    "CrystalDatasetSpec",
    "CrystalGenSettings",
    "check_crystal_store",
    "concatenate_datasets",
    "load_crystal_dataset",
    "prototype_crystal",
    "pyxtal_random_crystal",
    "random_crystal",
    "simulate_material",
    "space_groups_of",
    "split_by_material",
    "system_of_space_group",
    "write_crystal_dataset",
    "wyckoff_crystal",
]
