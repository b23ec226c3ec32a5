"""Crystal structures as ``ase.Atoms``: cells along a transformation path, supercells, and the
structural perturbations of the ML-UED seed.

Nothing here knows a material: a material (:mod:`uedsteer.sim_devices.materials`) holds its
unit cells and builds them with :func:`path_cell` and :func:`supercell`.

Cells
-----
A transformation path joins two unit cells that match atom for atom (same species in the same
order): the structure a fraction ``t`` of the way along it is the linear interpolation of cell
lengths and fractional positions (:func:`path_cell`). A supercell (:func:`supercell`) carries
per-atom arrays ``cell_index`` (n1, n2) and ``basis_index`` so that phonon modes can be applied
with the right phase at every atom.

Every perturbation is a small function that takes ``ase.Atoms`` (and an
``np.random.Generator`` where it draws random numbers) and returns a **new** ``Atoms``;
the input is never modified.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers, chemical_symbols
from numpy.typing import ArrayLike

from .phonons import ModeTable

__all__ = [
    "path_cell",
    "supercell",
    "add_thermal_displacements",
    "add_vacancies",
    "apply_strain",
    "random_strain",
    "add_phonon_displacement",
    "degrade",
    "rotate_in_plane",
    "validate_atoms",
]


def _check_fraction(name: str, value: float, hi: float = 1.0) -> float:
    value = float(value)
    if not np.isfinite(value) or value < 0.0 or value > hi:
        raise ValueError(f"{name}={value} is outside the allowed range [0, {hi}]")
    return value


def path_cell(
    symbols: Sequence[str],
    start: tuple[np.ndarray, np.ndarray],
    end: tuple[np.ndarray, np.ndarray],
    t: float,
) -> Atoms:
    """The unit cell a fraction ``t`` of the way from ``start`` to ``end``.

    Parameters
    ----------
    symbols : sequence of str
        Species of the basis atoms, in the order of the fractional positions.
    start, end : (cell, fractional)
        Orthorhombic cell lengths (3,) in Å and fractional positions (n, 3) of the two ends of
        the path, matched atom for atom; positions may lie outside [0, 1) (unwrapped, so that
        the path moves every atom the short way).
    t : float
        Fraction in [0, 1]: 0 is ``start``, 1 is ``end``.

    Returns
    -------
    ase.Atoms
        n atoms with an orthorhombic cell, ``pbc=(True, True, False)``, the unwrapped positions,
        per-atom arrays ``basis_index`` (0…n−1) and ``cell_index`` (all zero), and
        ``info["path_fraction"] = t``.
    """
    t = _check_fraction("x", t)
    cell = (1.0 - t) * start[0] + t * end[0]
    frac = (1.0 - t) * start[1] + t * end[1]
    n = len(symbols)
    atoms = Atoms(
        symbols=list(symbols),
        scaled_positions=frac,
        cell=np.diag(cell),
        pbc=(True, True, False),
    )
    # scaled_positions wraps nothing, but be explicit: keep the unwrapped glide coordinates.
    atoms.set_positions(frac @ np.diag(cell))
    atoms.set_array("basis_index", np.arange(n, dtype=np.int32))
    atoms.set_array("cell_index", np.zeros((n, 2), dtype=np.int32))
    atoms.info["path_fraction"] = t
    return atoms


def supercell(unit: Atoms, size: Sequence[int]) -> Atoms:
    """A rectangular supercell of an orthorhombic unit cell from :func:`path_cell`.

    Parameters
    ----------
    unit : ase.Atoms
        The unit cell (its ``info`` is copied).
    size : (int, int)
        Repetitions along a and b; each ≥ 1.

    Returns
    -------
    ase.Atoms
        With ``cell_index`` (n1, n2) and ``basis_index`` arrays so that phonon modes can be
        applied with the right phase at every atom; ``info["size"]`` and
        ``info["unit_cell"]``.
    """
    try:
        n1, n2 = (int(s) for s in size)
    except (TypeError, ValueError):
        raise ValueError(f"size={size!r} must be two positive integers") from None
    if n1 < 1 or n2 < 1:
        raise ValueError(f"size={size!r} must be two integers >= 1")
    n = len(unit)
    cell = np.asarray(unit.cell)
    i, j = np.meshgrid(np.arange(n1), np.arange(n2), indexing="ij")
    lattice = np.stack([i.ravel(), j.ravel()], axis=1)  # (n1*n2, 2)
    shifts = lattice[:, 0, None] * cell[0] + lattice[:, 1, None] * cell[1]
    pos = (shifts[:, None, :] + unit.positions[None, :, :]).reshape(-1, 3)
    atoms = Atoms(
        numbers=np.tile(unit.numbers, len(lattice)),
        positions=pos,
        cell=np.diag([n1 * cell[0, 0], n2 * cell[1, 1], cell[2, 2]]),
        pbc=(True, True, False),
    )
    atoms.set_array("basis_index", np.tile(np.arange(n, dtype=np.int32), len(lattice)))
    atoms.set_array("cell_index", np.repeat(lattice.astype(np.int32), n, axis=0))
    atoms.info.update(unit.info)
    atoms.info["size"] = (n1, n2)
    atoms.info["unit_cell"] = cell.copy()
    return atoms


def validate_atoms(atoms: Atoms, name: str = "atoms") -> None:
    """Raise ``ValueError`` for an empty structure, NaN/inf positions or unknown species."""
    from .form_factors import known_elements

    if not isinstance(atoms, Atoms):
        raise ValueError(f"{name} must be an ase.Atoms, got {type(atoms).__name__}")
    if len(atoms) == 0:
        raise ValueError(f"{name} is empty: a structure needs at least one atom")
    if not np.all(np.isfinite(atoms.positions)):
        raise ValueError(f"{name} has NaN or infinite positions")
    numbers = np.unique(atoms.numbers)
    unknown = {chemical_symbols[z] for z in numbers} - set(known_elements())
    if unknown:
        raise ValueError(f"{name} holds species {sorted(unknown)} with no scattering factor")


def add_thermal_displacements(atoms: Atoms, rms: float, rng: np.random.Generator) -> Atoms:
    """Random (Einstein-model) thermal displacements.

    Parameters
    ----------
    atoms : ase.Atoms
    rms : float
        Root-mean-square displacement per Cartesian component in Å, in [0, 1]
        (the seed draws up to 0.3 Å). The Debye–Waller factor is exp(-4π² rms² q²).
    rng : numpy.random.Generator
    """
    rms = _check_fraction("rms", rms, hi=1.0)
    out = atoms.copy()
    out.positions = out.positions + rng.normal(0.0, rms, size=out.positions.shape)
    return out


def add_vacancies(atoms: Atoms, fractions: Mapping[str, float], rng: np.random.Generator) -> Atoms:
    """Remove a random fraction of the sites of each named species.

    Parameters
    ----------
    fractions : mapping of str to float
        Vacant fraction of each species' sites, e.g. ``{"Mo": 0.1, "Te": 0.2}``, each in [0, 1]
        (the seed uses up to 0.2; degradation uses ≥ 0.9). Species are drawn in the mapping's
        order; a species not named keeps every site.
    rng : numpy.random.Generator
    """
    checked = {}
    for symbol, frac in fractions.items():
        if symbol not in atomic_numbers:
            raise ValueError(f"fractions names {symbol!r}, which is not a chemical element")
        checked[atomic_numbers[symbol]] = _check_fraction(f"{symbol} vacancy fraction", frac)
    numbers = atoms.numbers
    keep = np.ones(len(atoms), dtype=bool)
    for z, frac in checked.items():
        idx = np.flatnonzero(numbers == z)
        n_remove = int(round(frac * len(idx)))
        if n_remove:
            keep[rng.choice(idx, size=n_remove, replace=False)] = False
    return atoms[keep]


def random_strain(
    rng: np.random.Generator, max_normal: float = 0.1, max_shear: float = 0.1
) -> np.ndarray:
    """Draw an in-plane strain tensor (2 × 2, symmetric), components uniform in ±max.

    Parameters
    ----------
    rng : numpy.random.Generator
    max_normal, max_shear : float
        Largest |ε_xx|, |ε_yy| and |ε_xy|, each in [0, 0.5] (seed: 0.1).
    """
    max_normal = _check_fraction("max_normal", max_normal, hi=0.5)
    max_shear = _check_fraction("max_shear", max_shear, hi=0.5)
    exx, eyy = rng.uniform(-max_normal, max_normal, size=2)
    exy = rng.uniform(-max_shear, max_shear)
    return np.array([[exx, exy], [exy, eyy]])


def apply_strain(atoms: Atoms, strain: ArrayLike) -> Atoms:
    """Apply a homogeneous in-plane strain: r → (1 + ε) r for cell and positions.

    Parameters
    ----------
    strain : array_like, shape (2, 2)
        Symmetric small-strain tensor; every component within ±0.5. A Bragg spot at G moves to
        (1 + ε)^{-T} G.
    """
    eps = np.asarray(strain, dtype=float)
    if eps.shape != (2, 2) or not np.all(np.isfinite(eps)):
        raise ValueError(f"strain must be a finite 2x2 tensor, got shape {eps.shape}")
    if not np.allclose(eps, eps.T):
        raise ValueError("strain must be symmetric (ε_xy = ε_yx); rotations are separate")
    if np.any(np.abs(eps) > 0.5):
        raise ValueError(f"strain components {eps.ravel().tolist()} exceed the allowed ±0.5")
    deform = np.eye(3)
    deform[:2, :2] += eps
    out = atoms.copy()
    out.positions = out.positions @ deform.T
    out.set_cell(np.asarray(out.cell) @ deform.T, scale_atoms=False)
    return out


def rotate_in_plane(atoms: Atoms, angle_deg: float) -> Atoms:
    """Rotate cell and positions about the beam (z) axis by ``angle_deg`` (counter-clockwise)."""
    angle = float(angle_deg)
    if not np.isfinite(angle):
        raise ValueError(f"angle_deg={angle_deg} must be finite")
    th = np.deg2rad(angle)
    rot = np.array([[np.cos(th), -np.sin(th), 0], [np.sin(th), np.cos(th), 0], [0, 0, 1]])
    out = atoms.copy()
    out.positions = out.positions @ rot.T
    out.set_cell(np.asarray(out.cell) @ rot.T, scale_atoms=False)
    return out


def add_phonon_displacement(
    atoms: Atoms,
    table: ModeTable,
    mode: str,
    amplitude: float,
    rng: np.random.Generator,
    fractional: np.ndarray,
) -> Atoms:
    """Displace atoms along a phonon eigenmode (frozen phonon with a random phase).

    u_j(L) = Re[ e_j(q, ν) exp(i(2π q·(L + τ_j) + φ)) ] / √m_j, scaled so that the largest
    displacement equals ``amplitude``. A material's ``add_phonon`` picks the table and the
    basis for its structure (:meth:`uedsteer.sim_devices.materials.Material.add_phonon`).

    Parameters
    ----------
    atoms : ase.Atoms
        A structure from :func:`supercell` (it needs ``cell_index``/``basis_index``);
        apply before strain, vacancies and rotation.
    table : ModeTable
        Eigenvectors of the structure's unit cell.
    mode : str
        Mode id ``"<q-point>:<band>"``, e.g. ``"M:7"`` (see :meth:`ModeTable.mode_ids`).
    amplitude : float
        Largest atomic displacement in Å, in [0, 1].
    rng : numpy.random.Generator
        Draws the phase φ.
    fractional : numpy.ndarray
        (n, 3) unwrapped fractional positions τ_j of the unit cell's basis atoms.
    """
    amplitude = _check_fraction("amplitude", amplitude, hi=1.0)
    if "cell_index" not in atoms.arrays or "basis_index" not in atoms.arrays:
        raise ValueError("atoms must come from supercell (needs cell_index/basis_index)")
    qfrac, evec = table.mode(mode)  # (3,), (n, 3) complex
    basis = atoms.arrays["basis_index"]
    # Phase factors use the atoms' true (unwrapped) fractional positions, as phonopy does.
    frac_pos = atoms.arrays["cell_index"] + fractional[basis, :2]
    arg = 2 * np.pi * frac_pos @ qfrac[:2] + rng.uniform(0, 2 * np.pi)
    masses = atoms.get_masses()
    u = np.real(evec[basis] * np.exp(1j * arg)[:, None]) / np.sqrt(masses)[:, None]
    peak = np.max(np.linalg.norm(u, axis=1))
    out = atoms.copy()
    if peak > 0:
        out.positions = out.positions + u * (amplitude / peak)
    return out


def degrade(
    atoms: Atoms,
    vacant_fraction: float,
    disorder_rms: float,
    rng: np.random.Generator,
) -> Atoms:
    """Degraded / molten material: most sites vacant, the rest amorphously disordered.

    Parameters
    ----------
    vacant_fraction : float
        Fraction of all sites removed, in [0.9, 1) (the seed's "degraded" class: ≥ 90 %).
    disorder_rms : float
        In-plane rms displacement of the remaining atoms in Å (0–3; ≥ 0.5 destroys the
        lattice).
    rng : numpy.random.Generator
    """
    vacant_fraction = float(vacant_fraction)
    if not (0.9 <= vacant_fraction < 1.0):
        raise ValueError(f"vacant_fraction={vacant_fraction} must be in [0.9, 1) for degradation")
    disorder_rms = _check_fraction("disorder_rms", disorder_rms, hi=3.0)
    species = [chemical_symbols[z] for z in np.unique(atoms.numbers)]  # by atomic number
    out = add_vacancies(atoms, dict.fromkeys(species, vacant_fraction), rng)
    jitter = rng.normal(0.0, disorder_rms, size=out.positions.shape)
    jitter[:, 2] *= 0.3
    out.positions = out.positions + jitter
    return out
