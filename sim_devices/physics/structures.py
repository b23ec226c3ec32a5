"""MoTe2 monolayer structures and the structural perturbations of the ML-UED seed.

Cells
-----
Both polytypes use the same 6-atom orthorhombic (rectangular) cell, matched atom for atom, so
the 2H → 1T' path is a linear interpolation of cell and fractional positions (``x`` ∈ [0, 1]).

* **1T'** is the seed's cell: a = 3.5287 Å, b = 6.2728 Å, c = 15.4 Å (vacuum).
* **2H** is the *ideal hexagonal* trigonal-prismatic monolayer in the rectangular setting:
  a = 3.5128 Å (the seed's a), b = √3·a = 6.0843 Å, Mo on the B sites (0, 1/3), (½, 5/6), both
  Te layers on the C sites (0, 2/3), (½, 1/6), with the seed's atomic heights (Te–Te 3.61 Å).
  The seed's own "2H" cell (b = 6.2445 Å, b/a = 1.778 instead of √3 = 1.732, x offsets of
  0.0051) is not hexagonal, so its pattern has no 6-fold symmetry and its first ring is not at
  2/(√3·a). It is kept as ``SEED_2H_FRACTIONAL``/``SEED_2H_CELL`` for reference only.
* The top Te layer glides by (+½, ≈ −0.14) in fractional units along the path (2H C site →
  1T' A site, |Δ| = a/√3 ≈ 2.0 Å); both top-Te atoms glide the same way (atom 4's 1T' x is
  written as 1.0051 ≡ 0.0051), so intermediate structures are a uniform layer glide.

Every perturbation is a small function that takes ``ase.Atoms`` (and an
``np.random.Generator`` where it draws random numbers) and returns a **new** ``Atoms``;
the input is never modified.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from ase import Atoms
from numpy.typing import ArrayLike

__all__ = [
    "PHASES",
    "mote2_cell",
    "mote2_supercell",
    "add_thermal_displacements",
    "add_vacancies",
    "apply_strain",
    "random_strain",
    "add_phonon_displacement",
    "degrade",
    "rotate_in_plane",
    "validate_atoms",
]

PHASES = ("2H", "1T'")
_PHASE_ALIASES = {
    "2H": "2H",
    "2h": "2H",
    "1T'": "1T'",
    "1Tp": "1T'",
    "1tp": "1T'",
    "1T_prime": "1T'",
}

C_VACUUM = 15.4
SYMBOLS = ("Te", "Te", "Te", "Te", "Mo", "Mo")

_A_2H = 3.5128
CELL_2H = np.array([_A_2H, np.sqrt(3.0) * _A_2H, C_VACUUM])
FRAC_2H = np.array(
    [
        [0.0, 2 / 3, 0.13122],
        [0.0, 2 / 3, 0.36552],
        [0.5, 1 / 6, 0.13122],
        [0.5, 1 / 6, 0.36552],
        [0.0, 1 / 3, 0.24837],
        [0.5, 5 / 6, 0.24837],
    ]
)
CELL_1TP = np.array([3.5287, 6.2728, C_VACUUM])
FRAC_1TP = np.array(
    [
        [0.00510, 0.63916, 0.11423],
        [0.5, 0.50917, 0.38251],
        [0.5, 0.12886, 0.15301],
        [1.00510, 0.01948, 0.34374],  # ≡ 0.0051: same glide direction as atom 2
        [0.00510, 0.39101, 0.25492],
        [0.5, 0.75733, 0.24182],
    ]
)
SEED_2H_CELL = np.array([3.5128, 6.2445, C_VACUUM])
SEED_2H_FRACTIONAL = np.array(
    [
        [0.0, 0.65619, 0.13122],
        [0.0, 0.65619, 0.36552],
        [0.50510, 0.14833, 0.13122],
        [0.50510, 0.14833, 0.36552],
        [0.0, 0.32810, 0.24837],
        [0.50510, 0.82024, 0.24837],
    ]
)


def canonical_phase(phase: str) -> str:
    """Return ``"2H"`` or ``"1T'"`` for a phase name or alias (``"1Tp"``).

    Raises
    ------
    ValueError
        If the phase is not one of the MoTe2 polytypes.
    """
    try:
        return _PHASE_ALIASES[phase]
    except (KeyError, TypeError):
        raise ValueError(
            f"phase={phase!r} is not known; allowed: '2H', \"1T'\" (or '1Tp')"
        ) from None


def _check_fraction(name: str, value: float, hi: float = 1.0) -> float:
    value = float(value)
    if not np.isfinite(value) or value < 0.0 or value > hi:
        raise ValueError(f"{name}={value} is outside the allowed range [0, {hi}]")
    return value


def _path_fraction(phase: str, x: float) -> float:
    """Fraction of 1T' character for ``phase`` moved a fraction ``x`` towards the other."""
    x = _check_fraction("x", x)
    return x if canonical_phase(phase) == "2H" else 1.0 - x


def mote2_cell(phase: str = "2H", x: float = 0.0) -> Atoms:
    """The matched 6-atom orthorhombic MoTe2 cell.

    Parameters
    ----------
    phase : {"2H", "1T'"}
        Starting polytype (``"1Tp"`` is accepted for 1T').
    x : float
        Fraction in [0, 1] of the way from ``phase`` towards the other polytype along the linear
        2H → 1T' path: ``mote2_cell("2H", 0.3)`` is 30 % transformed; ``mote2_cell("1T'", 0)``
        equals ``mote2_cell("2H", 1)``.

    Returns
    -------
    ase.Atoms
        6 atoms (Te, Te, Te, Te, Mo, Mo) with an orthorhombic cell, ``pbc=(True, True, False)``,
        and per-atom arrays ``basis_index`` (0…5) and ``cell_index`` (all zero).

    Raises
    ------
    ValueError
        Unknown phase or ``x`` outside [0, 1].
    """
    t = _path_fraction(phase, x)
    cell = (1.0 - t) * CELL_2H + t * CELL_1TP
    frac = (1.0 - t) * FRAC_2H + t * FRAC_1TP
    atoms = Atoms(
        symbols=list(SYMBOLS),
        scaled_positions=frac,
        cell=np.diag(cell),
        pbc=(True, True, False),
    )
    # scaled_positions wraps nothing, but be explicit: keep the unwrapped glide coordinates.
    atoms.set_positions(frac @ np.diag(cell))
    atoms.set_array("basis_index", np.arange(6, dtype=np.int32))
    atoms.set_array("cell_index", np.zeros((6, 2), dtype=np.int32))
    atoms.info["phase"] = canonical_phase(phase)
    atoms.info["x_1Tp"] = t
    return atoms


def mote2_supercell(phase: str = "2H", size: Sequence[int] = (51, 30), x: float = 0.0) -> Atoms:
    """A rectangular supercell of :func:`mote2_cell` (seed size 51 × 30 ≈ 9,180 atoms).

    Parameters
    ----------
    phase, x
        As in :func:`mote2_cell`.
    size : (int, int)
        Repetitions along a and b; each ≥ 1.

    Returns
    -------
    ase.Atoms
        With ``cell_index`` (n1, n2) and ``basis_index`` arrays so that phonon modes can be
        applied with the right phase at every atom.
    """
    try:
        n1, n2 = (int(s) for s in size)
    except (TypeError, ValueError):
        raise ValueError(f"size={size!r} must be two positive integers") from None
    if n1 < 1 or n2 < 1:
        raise ValueError(f"size={size!r} must be two integers >= 1")
    unit = mote2_cell(phase, x)
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
    atoms.set_array("basis_index", np.tile(np.arange(6, dtype=np.int32), len(lattice)))
    atoms.set_array("cell_index", np.repeat(lattice.astype(np.int32), 6, axis=0))
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
    from ase.data import chemical_symbols

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


def add_vacancies(
    atoms: Atoms, mo_fraction: float, te_fraction: float, rng: np.random.Generator
) -> Atoms:
    """Remove a random fraction of Mo and of Te sites.

    Parameters
    ----------
    mo_fraction, te_fraction : float
        Fractions of Mo and Te sites left vacant, each in [0, 1] (the seed uses up to 0.2;
        degradation uses ≥ 0.9).
    rng : numpy.random.Generator
    """
    fractions = {
        42: _check_fraction("mo_fraction", mo_fraction),  # Mo
        52: _check_fraction("te_fraction", te_fraction),  # Te
    }
    numbers = atoms.numbers
    keep = np.ones(len(atoms), dtype=bool)
    for z, frac in fractions.items():
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
    atoms: Atoms, mode: str, amplitude: float, rng: np.random.Generator
) -> Atoms:
    """Displace atoms along a phonon eigenmode (frozen phonon with a random phase).

    u_j(L) = Re[ e_j(q, ν) exp(i(2π q·(L + τ_j) + φ)) ] / √m_j, scaled so that the largest
    displacement equals ``amplitude``. Eigenvectors come from the shipped phonon table
    (``uedsteer phonons``), computed for the pure polytypes on the same 6-atom cell.

    Parameters
    ----------
    atoms : ase.Atoms
        A structure from :func:`mote2_supercell` (it needs ``cell_index``/``basis_index``);
        apply before strain, vacancies and rotation.
    mode : str
        Mode id ``"<q-point>:<band>"``, e.g. ``"M:7"`` (see :func:`phonons.mode_ids`).
    amplitude : float
        Largest atomic displacement in Å, in [0, 1].
    rng : numpy.random.Generator
        Draws the phase φ.
    """
    from .phonons import load_modes

    amplitude = _check_fraction("amplitude", amplitude, hi=1.0)
    if "cell_index" not in atoms.arrays or "basis_index" not in atoms.arrays:
        raise ValueError("atoms must come from mote2_supercell (needs cell_index/basis_index)")
    phase = atoms.info.get("phase", "2H")
    t = atoms.info.get("x_1Tp", 0.0 if phase == "2H" else 1.0)
    if t not in (0.0, 1.0):
        raise ValueError(f"phonon modes exist for pure 2H or 1T' only, not x_1Tp={t}")
    table = load_modes("2H" if t == 0.0 else "1T'")
    qfrac, evec = table.mode(mode)  # (3,), (6, 3) complex
    basis = atoms.arrays["basis_index"]
    # Phase factors use the atoms' true (unwrapped) fractional positions, as phonopy does.
    tau = FRAC_2H if t == 0.0 else FRAC_1TP
    frac_pos = atoms.arrays["cell_index"] + tau[basis, :2]
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
    out = add_vacancies(atoms, vacant_fraction, vacant_fraction, rng)
    jitter = rng.normal(0.0, disorder_rms, size=out.positions.shape)
    jitter[:, 2] *= 0.3
    out.positions = out.positions + jitter
    return out
