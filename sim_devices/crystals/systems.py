"""The crystal systems uedsteer models and their space-group ranges: the one place they live.

:data:`CRYSTAL_SYSTEMS` fixes the order every encoding uses: the ``system`` code of a crystal
store's chunks, the vote columns of the crystal predictor and its saved metadata. Append, never
reorder (stored data and saved models would change meaning). Triclinic (space groups 1–2) is
left out, as in the paper.
"""

from __future__ import annotations

import numpy as np

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


def draws_every_system(systems) -> bool:
    """Whether a store's ``systems`` setting covers every crystal system of
    :data:`CRYSTAL_SYSTEMS` (a store of only some trains only their space-group forests)."""
    return set(CRYSTAL_SYSTEMS) <= set(systems)
