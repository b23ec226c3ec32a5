"""Random draws the crystal sources share: space groups, compositions, a material's record."""

from __future__ import annotations

import numpy as np

from .systems import space_groups_of

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
