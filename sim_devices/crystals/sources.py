"""Three sources of random crystals: AFLOW prototypes, Materials-Project Wyckoff sets, pyxtal.

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

:func:`random_crystal` mixes them with the weights ``CrystalGenSettings.sources``.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from .draws import (
    _ANIONS,
    _CATIONS,
    _Z_CHOICES,
    _draw_composition,
    _draw_space_group,
    _info,
    _pick,
)
from .settings import SOURCES, CrystalGenSettings
from .symmetry import symmetry_label
from .systems import CRYSTAL_SYSTEMS, SPACE_GROUP_RANGES

SYSTEM_ATTEMPTS = 10
"""Draws of one source before the next is tried, where each drawn crystal turned out to have
the symmetry of another crystal system."""


@lru_cache(maxsize=1)
def _prototypes() -> tuple[tuple[str, int, dict, str], ...]:
    """AFLOW structure types shipped with pymatgen: (system, space group, cell, label)."""
    import gzip
    from importlib.util import find_spec
    from pathlib import Path

    from pymatgen.core import Structure
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    # the file is located without importing its package, whose import parses the ~300
    # BibTeX references of the library (seconds per worker process)
    folder = find_spec("pymatgen.analysis.prototypes").submodule_search_locations[0]
    path = Path(folder) / "aflow_prototypes.json.gz"
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
    the order wyckoff → random is tried, so a material always exists. The labels are the
    crystal's own symmetry (:func:`~.symmetry.symmetry_label`): a crystal with more symmetry
    than the group it was drawn on is labelled, and its cell given, by the group it has (its
    ``tag`` says what it was drawn on); one whose symmetry is that of another crystal system
    is drawn again.

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
        for _ in range(SYSTEM_ATTEMPTS):
            try:
                atoms, info = makers[source](system, rng, settings)
            except RuntimeError:
                break
            label = symmetry_label(atoms, info["space_group"])
            if label.system != system:  # more symmetric than its system: draw again
                continue
            if label.space_group != info["space_group"]:
                tag = f"{info['tag']} (drawn on {info['space_group']})".lstrip()
                info = _info(label.atoms, system, label.space_group, source, tag)
            return label.atoms, info
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
