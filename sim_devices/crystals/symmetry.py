"""A generated crystal's labels from the symmetry its atoms have, not the group it was drawn on.

pyxtal places atoms on the Wyckoff positions of the drawn space group. When one element fills
special positions, the result can have more symmetry than that group: atoms of one species on
2a and 6b of Im-3m form a simple cubic lattice of half the cell (Pm-3m, a/2); two atoms of one
species at 0,0,0 and ½,½,½ of Pm-3m form a body-centred one (Im-3m); a P-31c arrangement can be
hexagonal (P6₃/mmc). Such a crystal's diffraction pattern is that of its real symmetry, and the
drawn group is a wrong label (it happens to the ``wyckoff`` and ``random`` sources; the AFLOW
prototypes keep their symmetry). :func:`symmetry_label` finds the real group with spglib.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .systems import system_of_space_group

SYMPREC = 1e-3
"""Å: spglib's distance tolerance. The sources' positions are exact (pyxtal's symmetry
operations, the AFLOW prototypes' fractions), so only an exact extra symmetry counts."""


class SymmetryLabel(NamedTuple):
    """A crystal's space group and crystal system as spglib finds them, and its cell."""

    space_group: int
    system: str | None
    """None for a triclinic group (1–2), which uedsteer does not model."""
    atoms: object
    """``ase.Atoms``: the crystal as given where the drawn group is its group, else spglib's
    standardized conventional cell (the cell the labels' lattice constants describe)."""


def symmetry_label(atoms, drawn_space_group: int, symprec: float = SYMPREC) -> SymmetryLabel:
    """The space group and system of ``atoms`` by their own symmetry.

    Parameters
    ----------
    atoms : ase.Atoms
        A generated crystal (conventional cell of ``drawn_space_group``).
    drawn_space_group : int
        The group the crystal was drawn on.
    symprec : float
        spglib's tolerance in Å.

    Returns
    -------
    SymmetryLabel
        Where spglib finds ``drawn_space_group`` the atoms are returned unchanged (the same
        cell, the same simulated patterns); otherwise the standardized conventional cell of
        the group found, as ``ase.Atoms``.
    """
    import spglib
    from ase import Atoms

    cell = (np.asarray(atoms.cell[:]), atoms.get_scaled_positions(), atoms.numbers)
    found = spglib.get_symmetry_dataset(cell, symprec=symprec)
    if found is None:  # spglib could not analyse the cell: keep the drawn labels
        return SymmetryLabel(
            int(drawn_space_group), system_of_space_group(drawn_space_group), atoms
        )
    number = int(found.number)
    system = system_of_space_group(number) if number >= 3 else None
    if number == int(drawn_space_group):
        return SymmetryLabel(number, system, atoms)
    conventional = Atoms(
        numbers=found.std_types,
        scaled_positions=found.std_positions,
        cell=found.std_lattice,
        pbc=True,
    )
    return SymmetryLabel(number, system, conventional)
