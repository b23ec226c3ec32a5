"""Kinematic electron-diffraction intensity on a reciprocal grid.

I(q) = |Σ_j f_j(|q|) exp(−2πi q·R_j)|², q in the plane normal to the beam (z), in 1/Å without
2π. For MeV electrons (λ ≈ 0.003 Å) the Ewald sphere is flat over |q| ≤ 1.3 1/Å, so only the
in-plane positions (x, y) enter.

``method="nufft"`` evaluates the per-species sums with a type-1 non-uniform FFT (finufft):
with x_j = 2π·dq·R_j wrapped to [−π, π) and integer modes k = −n//2 … n//2,
Σ_j exp(−i k·x_j) = Σ_j exp(−2πi (k·dq)·R_j). Each species' sum is multiplied by its electron
form factor. ``method="direct"`` is the chunked numpy sum, the reference used by tests.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

import finufft
import numpy as np
from ase import Atoms
from ase.data import chemical_symbols

from .form_factors import electron_form_factor
from .grid import ReciprocalGrid
from .structures import validate_atoms

METHODS = ("nufft", "direct")
NUFFT_EPS = 1e-7  # intensity error ~1e-10 of the Bragg peak (tests: ≤ 1e-5)


@lru_cache(maxsize=64)
def _form_factor_image(symbol: str, n: int, dq: float) -> np.ndarray:
    img = electron_form_factor(symbol, ReciprocalGrid(n, dq).q)
    img.setflags(write=False)
    return img


def _species_groups(atoms: Atoms) -> dict[str, np.ndarray]:
    numbers = atoms.numbers
    return {chemical_symbols[z]: np.flatnonzero(numbers == z) for z in np.unique(numbers)}


def _amplitude_nufft(
    xy: np.ndarray, grid: ReciprocalGrid, eps: float, nthreads: int | None
) -> np.ndarray:
    scaled = 2.0 * np.pi * grid.dq * xy
    scaled = np.mod(scaled + np.pi, 2.0 * np.pi) - np.pi
    strengths = np.ones(len(xy), dtype=np.complex128)
    # finufft's first mode axis follows its first coordinate: pass (y, x) → frame[iy, ix].
    return finufft.nufft2d1(
        np.ascontiguousarray(scaled[:, 1]),
        np.ascontiguousarray(scaled[:, 0]),
        strengths,
        (grid.n, grid.n),
        eps=eps,
        isign=-1,
        **({"nthreads": nthreads} if nthreads else {}),
    )


def _amplitude_direct(xy: np.ndarray, grid: ReciprocalGrid, chunk: int) -> np.ndarray:
    qx = grid.qx[None]
    qy = grid.qy[None]
    total = np.zeros(grid.shape, dtype=np.complex128)
    for start in range(0, len(xy), chunk):
        part = xy[start : start + chunk]
        phase = qx * part[:, 0, None, None] + qy * part[:, 1, None, None]
        total += np.exp(-2j * np.pi * phase).sum(axis=0)
    return total


def kinematic_amplitude(
    atoms: Atoms,
    grid: ReciprocalGrid | None = None,
    method: str = "nufft",
    eps: float = NUFFT_EPS,
    chunk: int = 64,
    nthreads: int | None = 1,
) -> np.ndarray:
    """Complex scattering amplitude A(q) = Σ_j f_j(|q|) exp(−2πi q·R_j), shape (n, n).

    Parameters
    ----------
    atoms : ase.Atoms
        Structure; only x, y positions are used (beam along z).
    grid : ReciprocalGrid, optional
        Default: the seed grid (261 × 261, dq = 0.01 1/Å).
    method : {"nufft", "direct"}
        Fast non-uniform FFT or the chunked direct sum.
    eps : float
        Requested finufft tolerance (relative to the sum of |strengths|).
    chunk : int
        Atoms per chunk of the direct sum (memory ∝ chunk · n²).
    nthreads : int, optional
        finufft threads (default 1: for one 261² frame extra threads cost more than they save).
    """
    grid = grid or ReciprocalGrid()
    if method not in METHODS:
        raise ValueError(f"method={method!r} is not known; allowed: {METHODS}")
    validate_atoms(atoms)
    xy = np.asarray(atoms.positions[:, :2], dtype=np.float64)
    amp = np.zeros(grid.shape, dtype=np.complex128)
    for symbol, idx in _species_groups(atoms).items():
        if method == "nufft":
            part = _amplitude_nufft(xy[idx], grid, eps, nthreads)
        else:
            part = _amplitude_direct(xy[idx], grid, chunk)
        amp += _form_factor_image(symbol, grid.n, float(grid.dq)) * part
    return amp


def kinematic_intensity(
    atoms: Atoms,
    grid: ReciprocalGrid | None = None,
    method: str = "nufft",
    eps: float = NUFFT_EPS,
    chunk: int = 64,
    nthreads: int | None = 1,
) -> np.ndarray:
    """Kinematic intensity I(q) = |A(q)|² on ``grid`` (Å², float64, shape (n, n)).

    See :func:`kinematic_amplitude` for the parameters.

    Examples
    --------
    >>> from uedsteer.sim_devices.materials import get_material
    >>> from uedsteer.sim_devices.physics import kinematic_intensity
    >>> I = kinematic_intensity(get_material("MoTe2").supercell("2H", (10, 6)))
    >>> I.shape
    (261, 261)
    """
    amp = kinematic_amplitude(atoms, grid, method=method, eps=eps, chunk=chunk, nthreads=nthreads)
    return amp.real**2 + amp.imag**2


MAX_OVERSAMPLE = 7
"""Largest number of samples per pixel edge that :func:`pixel_intensity` takes."""


def check_oversample(oversample: int) -> int:
    """``oversample`` if it is an odd integer 1 … :data:`MAX_OVERSAMPLE`, else ``ValueError``
    naming the value and what is allowed."""
    if (
        isinstance(oversample, bool)
        or not isinstance(oversample, int | np.integer)
        or not 1 <= oversample <= MAX_OVERSAMPLE
        or oversample % 2 == 0
    ):
        raise ValueError(
            f"oversample={oversample!r} is not allowed: give an odd integer 1…{MAX_OVERSAMPLE}"
        )
    return int(oversample)


def pixel_intensity(
    atoms: Atoms, grid: ReciprocalGrid | None = None, oversample: int = 1, nthreads: int | None = 1
) -> np.ndarray:
    """Kinematic intensity integrated over each pixel of ``grid``: the mean of
    ``oversample`` × ``oversample`` samples spread evenly over the pixel (Å², (n, n)).

    A detector integrates over its pixels. A finite crystal's Bragg peaks (width ≈ 1/L for a
    crystal of size L: 0.006 1/Å for the seed's 51-cell supercell) can be narrower than a
    pixel (0.01 1/Å), and then a sample at the pixel centre (``oversample`` 1, which
    :func:`kinematic_intensity` gives) depends on where the peak falls within the pixel: a
    0.1 % lattice expansion moves the high-|q| peaks by a tenth of a pixel and changes their
    sampled intensity by tens of percent, where the integrated intensity stays within a few.

    Parameters
    ----------
    atoms : ase.Atoms
    grid : ReciprocalGrid, optional
        The detector's grid (default: the seed grid).
    oversample : int
        Samples per pixel edge: an odd number 1 … :data:`MAX_OVERSAMPLE` (the fine grid keeps
        a sample at every pixel centre and q = 0 on a sample); 1 is the point sample.
    nthreads : int, optional
        finufft threads.
    """
    grid = grid or ReciprocalGrid()
    oversample = check_oversample(oversample)
    if oversample == 1:
        return kinematic_intensity(atoms, grid, nthreads=nthreads)
    s = int(oversample)
    # pixel i's s samples sit at its centre ± k·dq/s, k = 0 … (s − 1)/2
    fine = kinematic_intensity(
        atoms, ReciprocalGrid(grid.n * s, float(grid.dq) / s), nthreads=nthreads
    )
    return fine.reshape(grid.n, s, grid.n, s).mean(axis=(1, 3))


def kinematic_intensities(
    structures: Iterable[Atoms],
    grid: ReciprocalGrid | None = None,
    method: str = "nufft",
    eps: float = NUFFT_EPS,
) -> np.ndarray:
    """Batched :func:`kinematic_intensity` for many structures on one grid.

    Returns
    -------
    numpy.ndarray
        (B, n, n) float64.
    """
    grid = grid or ReciprocalGrid()
    return np.stack([kinematic_intensity(a, grid, method=method, eps=eps) for a in structures])
