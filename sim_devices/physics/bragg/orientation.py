"""Orientation: the rotation putting a zone axis along the beam; a crystal's distinct zone axes."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from ase import Atoms
from numpy.typing import ArrayLike

from .inputs import _cell_matrix, _positive, _validate_rotation, _zone_axis_vector, as_atoms


def _zolz_basis(uvw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer basis of {hkl : h u + k v + l w = 0} by unimodular column operations."""
    a = [int(x) for x in uvw]
    cols = np.eye(3, dtype=np.int64)
    while sum(1 for x in a if x != 0) > 1:
        j = min((i for i in range(3) if a[i] != 0), key=lambda i: abs(a[i]))
        for i in range(3):
            if i != j and a[i] != 0:
                q = a[i] // a[j]
                a[i] -= q * a[j]
                cols[:, i] -= q * cols[:, j]
    null = [cols[:, i] for i in range(3) if a[i] == 0]
    return null[0], null[1]


def _shortest_zolz_vector(uvw: np.ndarray, recip: np.ndarray) -> np.ndarray:
    """Shortest hkl in the zero-order Laue zone (Lagrange–Gauss reduction), ties broken."""
    metric = recip @ recip.T

    def norm2(v: np.ndarray) -> float:
        return float(v @ metric @ v)

    b1, b2 = _zolz_basis(uvw)
    if norm2(b1) > norm2(b2):
        b1, b2 = b2, b1
    for _ in range(10_000):
        mu = round(float(b1 @ metric @ b2) / norm2(b1))
        b2 = b2 - mu * b1
        if norm2(b2) < norm2(b1):
            b1, b2 = b2, b1
        else:
            break
    candidates = [s * v for v in (b1, b2, b1 + b2, b1 - b2) for s in (1, -1)]
    lengths = np.array([norm2(v) for v in candidates])
    shortest = lengths.min()
    ties = [
        tuple(int(x) for x in v)
        for v, n in zip(candidates, lengths, strict=True)
        if n <= shortest * (1.0 + 1e-6)
    ]
    return np.array(max(ties), dtype=np.int64)


def zone_axis_rotation(cell: ArrayLike, zone_axis: ArrayLike) -> np.ndarray:
    """Rotation that puts the zone axis [uvw] along the beam (+z).

    Parameters
    ----------
    cell : array_like, shape (3, 3)
        Lattice vectors as rows (``ase.Atoms.cell`` works), in Å.
    zone_axis : array_like of 3 ints
        Real-space direction [uvw] in the basis of ``cell`` (the Cartesian direction is
        ``uvw @ cell``); it is reduced by its gcd.

    Returns
    -------
    numpy.ndarray, shape (3, 3)
        Proper rotation R with r_lab = R @ r_crystal (Cartesian). Rows are the lab axes
        expressed in the crystal frame: row 2 = unit vector along ``uvw @ cell``; row 0 = the
        unit vector along the shortest reciprocal-lattice vector g = hkl @ reciprocal(cell) of
        the zero-order Laue zone (h u + k v + l w = 0; among equally short ones the
        lexicographically largest (h, k, l)); row 1 = row 2 × row 0. This is abTEM's
        ``orientation_matrix`` convention (the rotated cell is ``cell @ R.T``).

    Raises
    ------
    ValueError
        If ``cell`` is not a non-singular 3×3 matrix or ``zone_axis`` is not three integers
        with at least one non-zero.
    """
    mat = _cell_matrix(cell)
    uvw = _zone_axis_vector(zone_axis)
    recip = np.linalg.inv(mat).T
    z = uvw @ mat
    z = z / np.linalg.norm(z)
    hkl = _shortest_zolz_vector(uvw, recip)
    x = hkl @ recip
    x = x - (x @ z) * z  # exactly perpendicular already; this removes round-off
    x = x / np.linalg.norm(x)
    y = np.cross(z, x)
    return np.stack([x, y, z])


def _laue_rotations(atoms: Atoms, symprec: float) -> np.ndarray:
    import spglib

    cell = (np.asarray(atoms.cell), atoms.get_scaled_positions(), atoms.numbers)
    with warnings.catch_warnings():
        # spglib ≥ 2.5 warns about its legacy error handling (returning None) on every call
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            dataset = spglib.get_symmetry_dataset(cell, symprec=symprec)
        except Exception:  # spglib's new error handling raises SpglibError instead
            dataset = None
    if dataset is None:
        raise ValueError(
            f"spglib found no symmetry for the crystal at symprec={symprec} Å; try a larger symprec"
        )
    rotations = np.asarray(dataset.rotations, dtype=np.int64)
    rotations = np.unique(np.concatenate([rotations, -rotations]), axis=0)
    return rotations


def _orbit_representatives(grid: np.ndarray, rotations: np.ndarray) -> np.ndarray:
    """Each [uvw]'s orbit representative: fewest negative indices, then lexicographically least.

    All orbits at once: every member gets one integer key that orders as the pair (number of
    negative indices, (u, v, w)), and the member with the least key is kept.
    """
    members = np.einsum("rij,gj->gri", rotations, grid)  # spglib's W acts on [uvw]
    low = int(members.min())
    span = int(members.max()) - low + 1
    shifted = members - low
    negatives = np.sum(members < 0, axis=-1)
    key = ((negatives * span + shifted[..., 0]) * span + shifted[..., 1]) * span + shifted[..., 2]
    return members[np.arange(len(grid)), np.argmin(key, axis=1)]


def zone_axes(crystal: Any, n: int = 30, max_index: int = 4, symprec: float = 1e-3) -> np.ndarray:
    """Symmetry-distinct zone axes across the fundamental zone, densest first.

    Every integer [uvw] with gcd 1 and |u|, |v|, |w| ≤ ``max_index`` is reduced by the
    crystal's Laue group (spglib's point-group rotations plus inversion: Friedel's law makes
    kinematic patterns centrosymmetric, and [uvw] and [−u−v−w] are related by it) to one
    representative per orbit: the member with the fewest negative indices, then the
    lexicographically smallest (so cubic crystals give [001], [011], [111], [012], …, the
    standard triangle 0 ≤ u ≤ v ≤ w). Orbits are ordered by the length of ``uvw @ cell``
    (shortest real-space period along the beam = densest zero-order Laue zone first), ties by
    the representative.

    Parameters
    ----------
    crystal : ase.Atoms or pymatgen.core.Structure
        The crystal; [uvw] refer to its cell as given.
    n : int
        Maximum number of zone axes returned (≥ 1).
    max_index : int
        Largest |u|, |v|, |w| enumerated (1 … 20).
    symprec : float
        spglib's symmetry tolerance in Å (> 0).

    Returns
    -------
    numpy.ndarray of int64, shape (m, 3)
        m ≤ n representatives, one per orbit.

    Raises
    ------
    ValueError
        For an invalid crystal or argument.
    """
    atoms = as_atoms(crystal)
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"n={n!r} must be an integer ≥ 1")
    if (
        isinstance(max_index, bool)
        or not isinstance(max_index, int | np.integer)
        or not 1 <= max_index <= 20
    ):
        raise ValueError(f"max_index={max_index!r} must be an integer in [1, 20]")
    symprec = _positive("symprec", symprec, "Å", hi=1.0)
    rotations = _laue_rotations(atoms, symprec)
    cell = np.asarray(atoms.cell, dtype=np.float64)

    rng = np.arange(-max_index, max_index + 1)
    grid = np.stack(np.meshgrid(rng, rng, rng, indexing="ij"), axis=-1).reshape(-1, 3)
    grid = grid[np.any(grid != 0, axis=1)]
    grid = grid[np.gcd.reduce(np.abs(grid), axis=1) == 1]
    best = [
        _orbit_representatives(grid[i : i + 8192], rotations) for i in range(0, len(grid), 8192)
    ]
    reps = {tuple(int(x) for x in r) for r in np.unique(np.concatenate(best), axis=0)}
    ordered = sorted(reps, key=lambda r: (round(float(np.linalg.norm(np.array(r) @ cell)), 8), r))
    return np.array(ordered[:n], dtype=np.int64).reshape(-1, 3)


def _orientation(atoms: Atoms, zone_axis: ArrayLike, rotation: ArrayLike | None) -> np.ndarray:
    if rotation is not None:
        return _validate_rotation(rotation)
    return zone_axis_rotation(atoms.cell, zone_axis)
