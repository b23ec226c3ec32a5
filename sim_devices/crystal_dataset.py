"""Random crystals and their electron-diffraction Bragg lists: the random-forest training set.

Seed 2 (Gleason et al. 2024) simulated 36,600 Materials-Project crystals. uedsteer cannot
download them, so it draws crystals itself, from three sources mixed with the weights
``sources`` (default 0.4 / 0.4 / 0.2), so that the set looks like real inorganic materials:

* ``prototype``: a known structure type from the AFLOW prototype library that pymatgen ships
  (288 types: rock salt, perovskite, spinel, wurtzite, NiAs, rutile, …) with new elements
  (anions stay anions) and a lattice rescaled within its crystal system. Real materials share
  structure types; this source brings that recurrence into the data.
* ``wyckoff``: a (space group, occupied Wyckoff positions) combination from the Materials
  Project statistics that pyxtal ships (``spg_num_wps_mp.csv``), drawn with weight
  √count, filled with common elements by pyxtal (free coordinates and lattice random).
* ``random``: pyxtal's random crystal on a space group drawn from the common groups of the
  system (P2₁/c, C2/c, Pnma, I4/mmm, R-3m, P6₃/mmc, Fm-3m, …, weighted by their rough share
  in the ICSD; uniform over the system's groups with probability 1 − ``common_fraction``),
  with elemental (15 %), binary (45 %), ternary (35 %) or quaternary (5 %) formulas of common
  cations and anions in the usual ratios.

Crystal systems are balanced: material ``i`` belongs to ``systems[i % len(systems)]``
(triclinic is left out, as in the paper). At most ``max_atoms`` atoms and ``max_volume`` Å³ per
conventional cell (the paper drops cells above 1,000 Å³). The store records each material's
source and its AFLOW label or Wyckoff sites, so accuracy can be split by source.

Every material comes from its own generator ``np.random.default_rng([seed, i])``, so a material
depends only on (seed, i), whatever the chunking or the number of workers. Each material is
simulated along ``zone_axes`` symmetry-distinct zone axes (densest first) with the Bloch-wave
method at ``thickness_nm`` (seed 2: 20 nm, 300 kV, k_max 2 1/Å), or kinematically.

Store layout (a folder): ``spec.json`` (everything that determines the data) and
``chunks/chunk_NNNNN.npz``, one per ``chunk`` materials, written atomically (temporary file,
then rename), so an interrupted run resumes by skipping finished chunks. Each chunk holds the
spots of all its patterns (``spots`` (S, 3) float32 qx, qy, I), ``offsets`` (P + 1) into them,
per pattern ``pattern_material`` (global material index) and ``zone_axis`` (P, 3), and per
material ``material`` (index), ``system`` (code into :data:`CRYSTAL_SYSTEMS`),
``space_group``, ``lattice`` (M, 6: a, b, c in Å, α, β, γ in degrees of the conventional
cell), ``n_atoms``, ``volume`` and ``formula``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from .cluster import dask_client

FORMAT_VERSION = 1

CRYSTAL_SYSTEMS: tuple[str, ...] = (
    "cubic",
    "hexagonal",
    "trigonal",
    "tetragonal",
    "orthorhombic",
    "monoclinic",
)

#: International space-group numbers of each crystal system (triclinic 1–2 is left out).
SPACE_GROUP_RANGES: dict[str, tuple[int, int]] = {
    "monoclinic": (3, 15),
    "orthorhombic": (16, 74),
    "tetragonal": (75, 142),
    "trigonal": (143, 167),
    "hexagonal": (168, 194),
    "cubic": (195, 230),
}

# Compact, aligned tables: the formatter leaves them as written.
# fmt: off
#: The groups that hold most known inorganic structures, with rough relative weights within
#: their system (orders of magnitude from ICSD statistics; they shape the prior, nothing more).
COMMON_SPACE_GROUPS: dict[str, dict[int, float]] = {
    "monoclinic": {14: 40, 15: 20, 12: 15, 11: 6, 4: 5, 9: 4, 13: 4, 5: 3, 7: 2},
    "orthorhombic": {62: 35, 63: 12, 19: 8, 61: 7, 33: 5, 36: 4, 64: 4, 74: 4, 71: 3, 65: 3,
                     60: 3, 29: 3, 43: 3, 58: 3, 59: 2, 55: 2},
    "tetragonal": {139: 30, 123: 10, 141: 10, 129: 8, 140: 8, 136: 7, 122: 6, 127: 4, 121: 3,
                   88: 5, 87: 3, 119: 2, 113: 3},
    "trigonal": {166: 30, 167: 12, 164: 12, 148: 10, 160: 8, 161: 6, 162: 4, 146: 4, 150: 4,
                 163: 3, 165: 3, 147: 3, 152: 2},
    "hexagonal": {194: 40, 191: 15, 186: 12, 189: 6, 187: 5, 176: 5, 173: 4, 193: 4, 190: 3,
                  185: 2, 182: 2},
    "cubic": {225: 30, 227: 15, 221: 15, 229: 5, 216: 8, 205: 5, 223: 3, 230: 3, 217: 3,
              215: 2, 198: 3, 204: 2, 224: 2, 226: 2},
}

_CATIONS: dict[str, float] = {
    "Li": 5, "Na": 5, "K": 3, "Mg": 4, "Ca": 4, "Sr": 3, "Ba": 3, "Al": 4, "Ga": 2, "In": 2,
    "Sn": 2, "Pb": 2, "Bi": 2, "Ti": 3, "V": 3, "Cr": 2, "Mn": 4, "Fe": 4, "Co": 3, "Ni": 3,
    "Cu": 4, "Zn": 3, "Zr": 2, "Nb": 2, "Mo": 2, "Ru": 1, "Rh": 1, "Pd": 1, "Ag": 2, "Cd": 1,
    "Hf": 1, "Ta": 1, "W": 2, "Pt": 1, "Au": 1, "La": 3, "Ce": 2, "Nd": 2, "Y": 2, "Sc": 1,
    "Si": 3, "Ge": 2, "Sb": 1,
}
_ANIONS: dict[str, float] = {
    "O": 45, "S": 10, "Se": 5, "Te": 3, "N": 5, "F": 8, "Cl": 7, "Br": 3, "I": 2, "P": 4,
    "As": 2, "C": 3, "B": 3,
}
# fmt: on

#: (number of species, probability, candidate formula ratios: cations first, anion(s) last).
_COMPOSITIONS: tuple[tuple[int, float, tuple[tuple[int, ...], ...]], ...] = (
    (1, 0.15, ((1,),)),
    (2, 0.45, ((1, 1), (1, 2), (2, 1), (2, 3), (1, 3), (3, 4), (1, 4))),
    (3, 0.35, ((1, 1, 3), (1, 2, 4), (2, 1, 4), (1, 1, 2), (1, 1, 1), (2, 2, 7), (1, 1, 4))),
    (4, 0.05, ((1, 1, 1, 4), (1, 1, 2, 6), (2, 1, 1, 5))),
)
_Z_CHOICES = (1, 2, 3, 4, 6, 8, 12, 16)
SOURCES = ("prototype", "wyckoff", "random")


class CrystalGenSettings(BaseModel):
    """How crystals are drawn and simulated (every field is recorded in the store)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    systems: tuple[str, ...] = Field(
        CRYSTAL_SYSTEMS, description="Crystal systems to draw, in turn (no triclinic)."
    )
    sources: dict[str, float] = Field(
        {"prototype": 0.4, "wyckoff": 0.4, "random": 0.2},
        description="Relative weights of the three ways a crystal is drawn: 'prototype' (an "
        "AFLOW structure type with new elements and lattice), 'wyckoff' (a Materials-Project "
        "Wyckoff combination filled by pyxtal), 'random' (pyxtal on common space groups).",
    )
    common_fraction: float = Field(
        0.7, ge=0, le=1, description="'random': share drawn from the common space groups."
    )
    max_atoms: int = Field(48, ge=1, le=400, description="Most atoms in the conventional cell.")
    max_volume: float = Field(
        1000.0, gt=0, description="Largest conventional-cell volume, Å³ (paper: 1,000)."
    )
    zone_axes: int = Field(20, ge=1, le=200, description="Zone axes simulated per material.")
    max_index: int = Field(3, ge=1, le=6, description="Largest |u|, |v|, |w| of a zone axis.")
    random_orientations: int = Field(
        0,
        ge=0,
        le=200,
        description="Extra patterns per material at uniformly random orientations (off any "
        "zone axis, as randomly oriented nanoparticles are); stored with zone axis [0 0 0].",
    )
    method: Literal["dynamical", "kinematic"] = Field(
        "dynamical", description="Bloch-wave (abTEM) or kinematic Bragg lists."
    )
    thickness_nm: float = Field(20.0, gt=0, description="Specimen thickness, nm (paper: 20).")
    voltage_kv: float = Field(300.0, gt=0, description="Accelerating voltage, kV.")
    k_max: float = Field(2.0, gt=0, description="Largest in-plane |q| kept, 1/Å (no 2π).")
    sg_max: float = Field(
        0.02,
        gt=0,
        description="Largest excitation error, 1/Å (at 20 nm a spot with s = 0.02 is already "
        "< 1 % of its in-zone intensity; larger values only add slow upper-layer beams).",
    )
    thermal_sigma: float = Field(
        0.08, ge=0, description="RMS thermal displacement (Debye–Waller), Å."
    )
    min_intensity: float = Field(1e-5, ge=0, description="Weakest spot kept (central beam 1).")

    @field_validator("sources")
    @classmethod
    def _check_sources(cls, value: dict[str, float]) -> dict[str, float]:
        bad = [k for k in value if k not in SOURCES]
        if bad or any(w < 0 for w in value.values()) or sum(value.values()) <= 0:
            raise ValueError(
                f"sources={value} is not allowed: weights >= 0 (not all 0) for keys among {SOURCES}"
            )
        return value

    @field_validator("systems")
    @classmethod
    def _check_systems(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [s for s in value if s not in CRYSTAL_SYSTEMS]
        if bad or not value:
            raise ValueError(
                f"systems={value} is not allowed: choose among {CRYSTAL_SYSTEMS} (triclinic is "
                "not modelled)"
            )
        return value


class CrystalDatasetSpec(BaseModel):
    """Everything that determines a stored crystal data set (compared on resume)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_materials: int = Field(600, ge=1, description="Number of random crystals.")
    seed: int = Field(0, ge=0, description="Data seed: material i uses default_rng([seed, i]).")
    chunk: int = Field(12, ge=1, le=1000, description="Materials per stored chunk and task.")
    settings: CrystalGenSettings = Field(
        default_factory=CrystalGenSettings, description="Crystal drawing and simulation."
    )


def space_groups_of(system: str) -> np.ndarray:
    """International numbers of the space groups of a crystal system."""
    if system not in SPACE_GROUP_RANGES:
        raise ValueError(f"system={system!r} is not one of {tuple(SPACE_GROUP_RANGES)}")
    lo, hi = SPACE_GROUP_RANGES[system]
    return np.arange(lo, hi + 1)


def system_of_space_group(space_group: int) -> str:
    """Crystal system of an international space-group number (3–230)."""
    for system, (lo, hi) in SPACE_GROUP_RANGES.items():
        if lo <= space_group <= hi:
            return system
    raise ValueError(f"space_group={space_group} is not in 3…230 (triclinic 1–2 not modelled)")


def _pick(rng: np.random.Generator, weights: dict) -> object:
    keys = list(weights)
    p = np.asarray([weights[k] for k in keys], float)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def _draw_space_group(system: str, rng: np.random.Generator, common_fraction: float) -> int:
    if rng.random() < common_fraction:
        return int(_pick(rng, COMMON_SPACE_GROUPS[system]))
    return int(rng.choice(space_groups_of(system)))


def _draw_composition(rng: np.random.Generator) -> tuple[list[str], tuple[int, ...]]:
    probs = np.array([c[1] for c in _COMPOSITIONS])
    n_species, _, ratios = _COMPOSITIONS[int(rng.choice(len(_COMPOSITIONS), p=probs))]
    ratio = ratios[int(rng.integers(len(ratios)))]
    if n_species == 1:
        return [str(_pick(rng, _CATIONS))], ratio
    n_anions = 2 if n_species == 4 and rng.random() < 0.3 else 1
    species: list[str] = []
    while len(species) < n_species - n_anions:
        s = str(_pick(rng, _CATIONS))
        if s not in species:
            species.append(s)
    while len(species) < n_species:
        s = str(_pick(rng, _ANIONS))
        if s not in species:
            species.append(s)
    return species, ratio


def _info(atoms, system: str, space_group: int, source: str, tag: str) -> dict:
    a, b, c, alpha, beta, gamma = atoms.cell.cellpar()
    return {
        "space_group": int(space_group),
        "system": system,
        "lattice": [float(v) for v in (a, b, c, alpha, beta, gamma)],
        "formula": atoms.get_chemical_formula(),
        "n_atoms": len(atoms),
        "volume": float(atoms.get_volume()),
        "source": source,
        "tag": tag,
    }


@lru_cache(maxsize=1)
def _prototypes() -> tuple[tuple[str, int, dict, str], ...]:
    """AFLOW structure types shipped with pymatgen: (system, space group, cell, label)."""
    import gzip
    from importlib import resources as res

    from pymatgen.core import Structure
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    path = res.files("pymatgen.analysis.prototypes").joinpath("aflow_prototypes.json.gz")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        entries = json.loads(gzip.decompress(path.read_bytes()))
        out = []
        for entry in entries:
            snl = entry["snl"]
            structure = Structure.from_dict(snl.get("structure", snl))
            sga = SpacegroupAnalyzer(structure, symprec=1e-3)
            system = sga.get_crystal_system()
            if system not in CRYSTAL_SYSTEMS:
                continue
            conv = sga.get_conventional_standard_structure()
            cell = {
                "cellpar": [float(v) for v in conv.lattice.parameters],
                "frac": conv.frac_coords.tolist(),
                "species": [site.specie.symbol for site in conv],
            }
            label = entry.get("tags", {}).get("aflow", "")
            out.append((system, int(sga.get_space_group_number()), cell, label))
    return tuple(out)


_ANION_LIKE = frozenset(_ANIONS) | {"H"}


def _substitute(species: Sequence[str], rng: np.random.Generator) -> dict[str, str]:
    """New elements for a prototype's species: anions stay anions, the rest become cations."""
    mapping: dict[str, str] = {}
    for old in dict.fromkeys(species):
        pool = _ANIONS if old in _ANION_LIKE else _CATIONS
        for _ in range(100):
            new = str(_pick(rng, pool))
            if new not in mapping.values():
                break
        mapping[old] = new
    return mapping


def _strained_cellpar(cellpar: Sequence[float], system: str, rng: np.random.Generator):
    """Lattice of a prototype scaled in the ways its crystal system allows (a new material)."""
    a, b, c, alpha, beta, gamma = cellpar
    s = float(np.exp(rng.normal(0.0, 0.08)))  # overall size: other elements, other bonds
    d = np.exp(rng.normal(0.0, 0.04, size=3))  # independent axes where the system allows
    if system == "cubic":
        a = b = c = a * s
    elif system in ("hexagonal", "trigonal", "tetragonal"):
        a = b = a * s * d[0]
        c = c * s * d[2]
    else:
        a, b, c = a * s * d[0], b * s * d[1], c * s * d[2]
        if system == "monoclinic":
            beta = float(np.clip(beta + rng.normal(0.0, 1.5), 91.0, 125.0)) if beta != 90 else beta
    return a, b, c, alpha, beta, gamma


def prototype_crystal(system: str, rng: np.random.Generator, settings: CrystalGenSettings):
    """A new material of a known structure type (AFLOW prototype library, via pymatgen).

    The prototype's fractional positions are kept; its elements are replaced (anions by
    anions, others by common cations) and its lattice is rescaled in the ways its crystal
    system allows (overall ±8 %, independent axes ±4 %, monoclinic β ±1.5°). Structure types
    recur among real materials (rock salt, perovskite, spinel, wurtzite, …), which is what
    this source brings to the training set.
    """
    from ase import Atoms
    from ase.geometry import cellpar_to_cell

    candidates = [
        p for p in _prototypes() if p[0] == system and len(p[2]["species"]) <= settings.max_atoms
    ]
    if not candidates:
        raise RuntimeError(f"no {system} prototype with <= {settings.max_atoms} atoms")
    for _ in range(20):
        _, sg, cell, label = candidates[int(rng.integers(len(candidates)))]
        mapping = _substitute(cell["species"], rng)
        cellpar = _strained_cellpar(cell["cellpar"], system, rng)
        atoms = Atoms(
            symbols=[mapping[x] for x in cell["species"]],
            scaled_positions=cell["frac"],
            cell=cellpar_to_cell(cellpar),
            pbc=True,
        )
        if atoms.get_volume() <= settings.max_volume:
            return atoms, _info(atoms, system, sg, "prototype", label)
    raise RuntimeError(f"no {system} prototype fits max_volume={settings.max_volume} Å³")


@lru_cache(maxsize=1)
def _wyckoff_table() -> tuple[tuple[int, int, tuple[int, ...], int], ...]:
    """(space group, atoms, Wyckoff indices, count) of Materials-Project crystals (pyxtal)."""
    from importlib import resources as res

    text = res.files("pyxtal.database").joinpath("spg_num_wps_mp.csv").read_text()
    rows = []
    for line in text.splitlines()[1:]:
        sg, n_atoms, wps, count = line.split(",")
        rows.append((int(sg), int(n_atoms), tuple(int(w) for w in wps.split("-")), int(count)))
    return tuple(rows)


def wyckoff_crystal(system: str, rng: np.random.Generator, settings: CrystalGenSettings):
    """A crystal on a Wyckoff-site combination seen in the Materials Project.

    A (space group, occupied Wyckoff positions) combination of the system is drawn with weight
    √(number of MP crystals that have it) (square root: the Heusler and rock-salt combinations
    would otherwise drown the rest); the largest site takes an anion, every species gets at
    least one site, and pyxtal places the atoms (free coordinates and lattice random, with its
    distance checks).
    """
    from pyxtal import pyxtal
    from pyxtal.symmetry import Group

    lo, hi = SPACE_GROUP_RANGES[system]
    rows = [r for r in _wyckoff_table() if lo <= r[0] <= hi and r[1] <= settings.max_atoms]
    weights = np.sqrt([r[3] for r in rows])
    last_error = ""
    for _ in range(40):
        sg, _, wps, _ = rows[int(rng.choice(len(rows), p=weights / weights.sum()))]
        group = Group(sg)
        sites = [group.Wyckoff_positions[w] for w in wps]
        labels = [f"{w.multiplicity}{w.letter}" for w in sites]
        mult = [w.multiplicity for w in sites]
        n_species = min(len(sites), int(rng.choice([1, 2, 3, 4], p=[0.1, 0.4, 0.4, 0.1])))
        species: list[str] = []
        if n_species > 1:
            species.append(str(_pick(rng, _ANIONS)))
        while len(species) < n_species:
            x = str(_pick(rng, _CATIONS))
            if x not in species:
                species.append(x)
        order = sorted(range(len(sites)), key=lambda i: -mult[i])
        owner = {}
        for k, i in enumerate(order):  # largest site -> anion, then one site per species
            owner[i] = k if k < n_species else int(rng.integers(n_species))
        site_lists = [[labels[i] for i in order if owner[i] == k] for k in range(n_species)]
        num = [sum(mult[i] for i in order if owner[i] == k) for k in range(n_species)]
        crystal = pyxtal()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                crystal.from_random(
                    3,
                    sg,
                    species,
                    num,
                    sites=site_lists,
                    random_state=int(rng.integers(2**31 - 1)),
                )
        except Exception as err:  # no placement found within pyxtal's attempts
            last_error = f"{type(err).__name__}: {err}"
            continue
        if not crystal.valid:
            continue
        atoms = crystal.to_ase()
        if len(atoms) <= settings.max_atoms and atoms.get_volume() <= settings.max_volume:
            return atoms, _info(atoms, system, sg, "wyckoff", "-".join(labels))
    raise RuntimeError(f"no {system} Wyckoff crystal in 40 attempts (last: {last_error})")


def random_crystal(system: str, rng: np.random.Generator, settings: CrystalGenSettings):
    """Draw one crystal of a crystal system from the sources of ``settings``.

    The source is drawn with the weights ``settings.sources`` (see :func:`prototype_crystal`,
    :func:`wyckoff_crystal`, :func:`pyxtal_random_crystal`); if it fails, the next source in
    the order wyckoff → random is tried, so a material always exists.

    Returns
    -------
    tuple
        ``(atoms, info)``: the conventional cell as ``ase.Atoms`` and a dict with
        ``space_group``, ``system``, ``lattice`` (a, b, c, α, β, γ), ``formula``, ``n_atoms``,
        ``volume``, ``source`` and ``tag`` (AFLOW label or Wyckoff sites).
    """
    if system not in CRYSTAL_SYSTEMS:
        raise ValueError(f"system={system!r} is not one of {CRYSTAL_SYSTEMS}")
    names = [k for k in SOURCES if settings.sources.get(k, 0) > 0]
    w = np.array([settings.sources[k] for k in names], float)
    first = names[int(rng.choice(len(names), p=w / w.sum()))]
    makers = {
        "prototype": prototype_crystal,
        "wyckoff": wyckoff_crystal,
        "random": pyxtal_random_crystal,
    }
    for source in [first, *(k for k in ("wyckoff", "random") if k != first)]:
        try:
            return makers[source](system, rng, settings)
        except RuntimeError:
            continue
    raise RuntimeError(f"no {system} crystal from any source")


def pyxtal_random_crystal(system: str, rng: np.random.Generator, settings: CrystalGenSettings):
    """Draw one random crystal of a crystal system with pyxtal.

    Parameters
    ----------
    system : str
        One of :data:`CRYSTAL_SYSTEMS`.
    rng : numpy.random.Generator
        Source of every random choice (space group, species, Z and pyxtal's own draws).
    settings : CrystalGenSettings
        Limits on atoms and volume, space-group statistics.

    Returns
    -------
    tuple
        ``(atoms, info)``: the conventional cell as ``ase.Atoms`` and a dict with
        ``space_group``, ``system``, ``lattice`` (a, b, c, α, β, γ), ``formula``, ``n_atoms``
        and ``volume``.

    Raises
    ------
    RuntimeError
        If no valid crystal was found in 60 attempts (each tries a new group and formula).
    """
    from pyxtal import pyxtal

    if system not in CRYSTAL_SYSTEMS:
        raise ValueError(f"system={system!r} is not one of {CRYSTAL_SYSTEMS}")
    last_error = ""
    for _ in range(60):
        sg = _draw_space_group(system, rng, settings.common_fraction)
        species, ratio = _draw_composition(rng)
        z_max = settings.max_atoms // sum(ratio)
        zs = [z for z in _Z_CHOICES if z <= z_max]
        if not zs:
            continue
        z = int(rng.choice(zs))
        num = [r * z for r in ratio]
        crystal = pyxtal()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                crystal.from_random(3, sg, species, num, random_state=int(rng.integers(2**31 - 1)))
        except Exception as err:  # incompatible Wyckoff multiplicities or no packing found
            last_error = f"{type(err).__name__}: {err}"
            continue
        if not crystal.valid:
            continue
        atoms = crystal.to_ase()
        volume = float(atoms.get_volume())
        if len(atoms) > settings.max_atoms or volume > settings.max_volume:
            continue
        return atoms, _info(atoms, system, sg, "random", "")
    raise RuntimeError(f"no valid {system} crystal in 60 attempts (last error: {last_error})")


def simulate_material(index: int, seed: int, settings: CrystalGenSettings) -> dict:
    """One material and its Bragg lists (deterministic in (seed, index)).

    Its symmetry-distinct zone axes, then ``settings.random_orientations`` uniformly random
    orientations (zone axis [0 0 0]); a Bloch-wave structure-factor table is built once and
    used for all of them.

    Returns
    -------
    dict
        ``info`` (see :func:`random_crystal`), ``zone_axes`` (P, 3) int and ``bragg`` (a list of
        P arrays (n, 3) float32: qx, qy in 1/Å without 2π, intensity; central beam included).
    """
    from scipy.spatial.transform import Rotation

    from uedsteer.sim_devices.physics.bragg import (
        bragg_lists_for_zone_axes,
        dynamical_bragg,
        kinematic_bragg,
        structure_factor_for,
        zone_axes,
    )

    rng = np.random.default_rng([seed, index])
    system = settings.systems[index % len(settings.systems)]
    atoms, info = random_crystal(system, rng, settings)
    axes = np.asarray(
        zone_axes(atoms, n=settings.zone_axes, max_index=settings.max_index), int
    ).reshape(-1, 3)
    kw = {
        "voltage_kv": settings.voltage_kv,
        "k_max": settings.k_max,
        "thickness_nm": settings.thickness_nm,
        "sg_max": settings.sg_max,
        "thermal_sigma": settings.thermal_sigma,
        "min_intensity": settings.min_intensity,
    }
    if settings.method == "dynamical":  # one structure-factor table for every orientation
        kw["structure_factor"] = structure_factor_for(atoms, settings.k_max, settings.thermal_sigma)
    lists = bragg_lists_for_zone_axes(atoms, axes, method=settings.method, **kw)
    if settings.random_orientations:
        simulate = dynamical_bragg if settings.method == "dynamical" else kinematic_bragg
        rotations = Rotation.random(
            settings.random_orientations, random_state=int(rng.integers(2**31 - 1))
        ).as_matrix()
        lists += [simulate(atoms, rotation=rot, **kw) for rot in rotations]
        axes = np.vstack([axes, np.zeros((len(rotations), 3), int)])
    return {
        "info": info,
        "zone_axes": axes,
        "bragg": [np.asarray(b, np.float32) for b in lists],
    }


def _chunk_path(out: Path, k: int) -> Path:
    return out / "chunks" / f"chunk_{k:05d}.npz"


def _chunk_task(out: str, k: int, lo: int, hi: int, seed: int, settings_json: str) -> int:
    """Simulate materials lo…hi−1 and write their chunk file atomically; returns #patterns."""
    from threadpoolctl import threadpool_limits

    settings = CrystalGenSettings.model_validate_json(settings_json)
    with threadpool_limits(1):  # one BLAS thread per worker: the eigensolves are small
        return _write_chunk(Path(out), k, lo, hi, seed, settings)


def _write_chunk(
    out: Path, k: int, lo: int, hi: int, seed: int, settings: CrystalGenSettings
) -> int:
    spots, offsets, pmat, axes = [], [0], [], []
    mats: dict[str, list] = {
        k_: []
        for k_ in (
            "material",
            "system",
            "space_group",
            "lattice",
            "n_atoms",
            "volume",
            "formula",
            "source",
            "tag",
        )
    }
    for i in range(lo, hi):
        m = simulate_material(i, seed, settings)
        info = m["info"]
        mats["material"].append(i)
        mats["system"].append(CRYSTAL_SYSTEMS.index(info["system"]))
        mats["space_group"].append(info["space_group"])
        mats["lattice"].append(info["lattice"])
        mats["n_atoms"].append(info["n_atoms"])
        mats["volume"].append(info["volume"])
        mats["formula"].append(info["formula"])
        mats["source"].append(info["source"])
        mats["tag"].append(info["tag"])
        for axis, bragg in zip(m["zone_axes"], m["bragg"], strict=True):
            spots.append(bragg)
            offsets.append(offsets[-1] + len(bragg))
            pmat.append(i)
            axes.append(axis)
    path = _chunk_path(out, k)
    tmp = path.with_name(path.stem + f".tmp{os.getpid()}.npz")
    np.savez_compressed(
        tmp,
        spots=np.concatenate(spots).astype(np.float32) if spots else np.zeros((0, 3), np.float32),
        offsets=np.asarray(offsets, np.int64),
        pattern_material=np.asarray(pmat, np.int64),
        zone_axis=np.asarray(axes, np.int64).reshape(-1, 3),
        material=np.asarray(mats["material"], np.int64),
        system=np.asarray(mats["system"], np.int64),
        space_group=np.asarray(mats["space_group"], np.int64),
        lattice=np.asarray(mats["lattice"], np.float64).reshape(-1, 6),
        n_atoms=np.asarray(mats["n_atoms"], np.int64),
        volume=np.asarray(mats["volume"], np.float64),
        formula=np.asarray(mats["formula"], dtype=str),
        source=np.asarray(mats["source"], dtype=str),
        tag=np.asarray(mats["tag"], dtype=str),
    )
    os.replace(tmp, path)
    return len(pmat)


def _mismatch_message(out: Path, stored: dict, asked: dict) -> str:
    """One line: each setting that differs from the store's, stored and asked, and the fix."""
    from .dataset import config_differences

    diff = config_differences(stored, asked)
    shown = ", ".join(
        f"{key} {json.dumps(old)} (asked: {json.dumps(new)})" for key, (old, new) in diff.items()
    )
    keep = " ".join(
        f"--set {key.removeprefix('settings.')}={json.dumps(old, separators=(',', ':'))}"
        if key.startswith("settings.")
        else f"--{key.replace('_', '-')} {old}"
        for key, (old, _) in diff.items()
    )
    more = (
        "; a crystal store keeps its number of materials: for more, write a second store "
        "(new --out, another --seed) and train on both with `uedsteer train crystal --data A,B`"
        if "n_materials" in diff
        else ""
    )
    return (
        f"out={out} exists with a different configuration: {shown}{more}; to resume it, give "
        f"its own {'setting' if len(diff) == 1 else 'settings'} ({keep}), or choose a new out "
        "(existing chunks are kept as they are)"
    )


def _open_store(out: Path, spec: CrystalDatasetSpec) -> None:
    config = json.loads(spec.model_dump_json())
    meta = out / "spec.json"
    if out.exists() and not (out.is_dir() and not any(out.iterdir())):
        if not out.is_dir():
            raise ValueError(f"out={out} is a file; give a new folder for the crystal store")
        if not meta.exists():
            raise ValueError(
                f"out={out} exists and is not a uedsteer crystal data set; give a new folder"
            )
        old = json.loads(meta.read_text())
        if old.get("config") != config:
            raise ValueError(_mismatch_message(out, old.get("config") or {}, config))
        return
    (out / "chunks").mkdir(parents=True, exist_ok=True)
    meta.write_text(json.dumps({"uedsteer_crystals": FORMAT_VERSION, "config": config}, indent=1))


def write_crystal_dataset(
    out: str | Path,
    spec: CrystalDatasetSpec,
    scheduler: str | None = None,
    n_workers: int = 2,
    progress: bool = True,
) -> Path:
    """Generate random crystals and their Bragg lists into a resumable store with Dask.

    Parameters
    ----------
    out : str or Path
        Store folder. If it exists with the same spec, finished chunks are skipped; with a
        different spec (``n_materials`` included: a crystal store does not grow) a
        ``ValueError`` naming each differing setting is raised and nothing is touched.
    spec : CrystalDatasetSpec
        Number of materials, seed, chunk size and simulation settings.
    scheduler : str, optional
        Address of an existing Dask scheduler (``tcp://host:8786``) when one machine is not
        enough; default: a ``LocalCluster`` of ``n_workers`` single-threaded processes.
    n_workers : int
        Workers of the local cluster.
    progress : bool
        Show a tqdm progress bar (materials).

    Returns
    -------
    pathlib.Path
        The store folder; ``spec.json`` gets ``complete: true`` when every chunk is written.
    """
    from dask.distributed import as_completed
    from tqdm import tqdm

    out = Path(out)
    _open_store(out, spec)
    n_chunks = -(-spec.n_materials // spec.chunk)
    # materials lo…hi−1 of each unfinished chunk k
    todo = {
        k: (k * spec.chunk, min((k + 1) * spec.chunk, spec.n_materials))
        for k in range(n_chunks)
        if not _chunk_path(out, k).exists()
    }
    remaining = sum(hi - lo for lo, hi in todo.values())
    bar = tqdm(
        total=spec.n_materials,
        initial=spec.n_materials - remaining,
        unit="material",
        disable=not progress,
    )
    if todo:
        with dask_client(scheduler, n_workers) as client:
            settings_json = spec.settings.model_dump_json()
            futures = {
                client.submit(
                    _chunk_task,
                    str(out.resolve()),
                    k,
                    lo,
                    hi,
                    spec.seed,
                    settings_json,
                    pure=False,
                ): hi - lo
                for k, (lo, hi) in todo.items()
            }
            for fut in as_completed(futures):
                fut.result()
                bar.update(futures[fut])
                fut.release()
    bar.close()
    complete = all(_chunk_path(out, k).exists() for k in range(n_chunks))
    meta = json.loads((out / "spec.json").read_text())
    meta["complete"] = complete
    meta["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S") if complete else None
    (out / "spec.json").write_text(json.dumps(meta, indent=1))
    return out


@dataclass
class CrystalDataset:
    """Bragg lists of a crystal store, with the truth of each pattern's material.

    Attributes
    ----------
    bragg : list of (n, 3) float32 arrays, one per pattern.
    material : (P,) global material index of each pattern.
    zone_axis : (P, 3) int zone axis [uvw] of each pattern.
    system : (P,) str crystal system; ``space_group`` (P,) int; ``lattice`` (P, 6).
    formula : (P,) str.
    source : (P,) str, how the material was drawn (``prototype``, ``wyckoff``, ``random``).
    spec : the store's configuration (dict).
    """

    bragg: list[np.ndarray]
    material: np.ndarray
    zone_axis: np.ndarray
    system: np.ndarray
    space_group: np.ndarray
    lattice: np.ndarray
    formula: np.ndarray
    source: np.ndarray
    spec: dict

    def __len__(self) -> int:
        return len(self.bragg)

    def subset(self, mask: np.ndarray) -> CrystalDataset:
        """The patterns where ``mask`` is True (boolean or index array)."""
        idx = np.flatnonzero(mask) if np.asarray(mask).dtype == bool else np.asarray(mask)
        columns = {name: getattr(self, name)[idx] for name in _PATTERN_COLUMNS}
        return CrystalDataset(bragg=[self.bragg[i] for i in idx], spec=self.spec, **columns)


_PATTERN_COLUMNS = tuple(
    f.name for f in dataclasses.fields(CrystalDataset) if f.name not in ("bragg", "spec")
)
"""The per-pattern array fields of :class:`CrystalDataset` (one row per Bragg list)."""


def check_crystal_store(path: str | Path, allow_incomplete: bool = False) -> dict:
    """The metadata of a crystal store (``spec.json``), after checking it; reads nothing else.

    Parameters
    ----------
    path : str or Path
        Store folder written by :func:`write_crystal_dataset`.
    allow_incomplete : bool
        Accept a store whose generation has not finished.

    Returns
    -------
    dict
        ``config`` (the spec), ``complete`` and ``finished_at``.

    Raises
    ------
    FileNotFoundError
        If the folder is not a crystal store (says how to make one).
    ValueError
        If the store is incomplete and ``allow_incomplete`` is False.
    """
    path = Path(path)
    meta_path = path / "spec.json"
    meta = None
    if meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            meta = None
    if not isinstance(meta, dict) or "uedsteer_crystals" not in meta:
        what = "does not exist" if not path.exists() else "is not a crystal data set"
        raise FileNotFoundError(
            f"path={path} {what}; make one with `uedsteer generate crystals --out {path}`"
        )
    if not meta.get("complete") and not allow_incomplete:
        raise ValueError(
            f"path={path} is incomplete; resume it with the same `uedsteer generate crystals` "
            "command, or pass allow_incomplete=True"
        )
    return meta


def load_crystal_dataset(path: str | Path, allow_incomplete: bool = False) -> CrystalDataset:
    """Read every finished chunk of a crystal store.

    Parameters
    ----------
    path : str or Path
        Store folder written by :func:`write_crystal_dataset`.
    allow_incomplete : bool
        Read a store whose generation has not finished (only its finished chunks).

    Raises
    ------
    FileNotFoundError
        If the folder is not a crystal store (says how to make one).
    ValueError
        If the store is incomplete and ``allow_incomplete`` is False.
    """
    path = Path(path)
    meta = check_crystal_store(path, allow_incomplete)
    bragg: list[np.ndarray] = []
    cols: dict[str, list[np.ndarray]] = {
        k: []
        for k in ("material", "zone_axis", "system", "space_group", "lattice", "formula", "source")
    }
    finished = [f for f in (path / "chunks").glob("chunk_*.npz") if f.stem[6:].isdigit()]
    for f in sorted(finished):
        with np.load(f, allow_pickle=False) as z:
            spots, offsets, pmat = z["spots"], z["offsets"], z["pattern_material"]
            bragg += [spots[offsets[j] : offsets[j + 1]] for j in range(len(pmat))]
            row = {int(m): j for j, m in enumerate(z["material"])}
            sel = np.array([row[int(m)] for m in pmat], dtype=np.int64)
            cols["material"].append(pmat)
            cols["zone_axis"].append(z["zone_axis"])
            cols["system"].append(np.asarray(CRYSTAL_SYSTEMS)[z["system"][sel]])
            cols["space_group"].append(z["space_group"][sel])
            cols["lattice"].append(z["lattice"][sel])
            cols["formula"].append(z["formula"][sel])
            src = z["source"][sel] if "source" in z.files else np.full(len(sel), "random")
            cols["source"].append(src)
    if not bragg:
        raise ValueError(f"path={path} holds no finished chunks yet")
    return CrystalDataset(
        bragg=bragg,
        material=np.concatenate(cols["material"]),
        zone_axis=np.concatenate(cols["zone_axis"]).reshape(-1, 3),
        system=np.concatenate(cols["system"]),
        space_group=np.concatenate(cols["space_group"]),
        lattice=np.concatenate(cols["lattice"]).reshape(-1, 6),
        formula=np.concatenate(cols["formula"]),
        source=np.concatenate(cols["source"]),
        spec=meta["config"],
    )


def split_by_material(
    material: Sequence[int] | np.ndarray, test_fraction: float = 0.25, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Boolean train/test masks over patterns with every material on one side only.

    Parameters
    ----------
    material : array_like
        Material index of each pattern.
    test_fraction : float
        Share of materials in the test set (paper: 25 %), in (0, 1).
    seed : int
        Seed of the material shuffle.
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction={test_fraction} must be in (0, 1)")
    material = np.asarray(material)
    ids = np.unique(material)
    rng = np.random.default_rng(seed)
    test_ids = rng.choice(ids, size=max(1, round(test_fraction * len(ids))), replace=False)
    test = np.isin(material, test_ids)
    return ~test, test


def concatenate_datasets(datasets: Sequence[CrystalDataset]) -> CrystalDataset:
    """Several crystal stores as one data set (e.g. zone-axis and random-orientation stores).

    Material indices of the k-th store are offset by k · 10⁷ so that materials of different
    stores stay different materials for :func:`split_by_material`. ``spec`` is the first
    store's configuration with the others under ``"also"``.
    """
    if not datasets:
        raise ValueError("datasets is empty; give at least one CrystalDataset")
    offset = 10_000_000
    for k, d in enumerate(datasets):
        if len(d) and d.material.max() >= offset:
            raise ValueError(f"datasets[{k}] has material indices >= {offset}")
    spec = dict(datasets[0].spec)
    if len(datasets) > 1:
        spec["also"] = [d.spec for d in datasets[1:]]
    columns = {
        name: np.concatenate([getattr(d, name) for d in datasets]) for name in _PATTERN_COLUMNS
    }
    columns["material"] = np.concatenate([d.material + k * offset for k, d in enumerate(datasets)])
    return CrystalDataset(bragg=[b for d in datasets for b in d.bragg], spec=spec, **columns)
