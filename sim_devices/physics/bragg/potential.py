"""The crystal potential's Fourier coefficients (structure factors), shared by all orientations.

One :class:`StructureFactorTable` per crystal holds what every zone axis and thickness of that
crystal needs: the cell and its centering, the candidate beams inside a sphere, and the
structure factors F(hkl) on abTEM's reciprocal grid. A structure factor is computed the first
time an orientation couples two beams that differ by that hkl, then kept, so a crystal's zone
axes together compute each coupling once (about a quarter of the full table abTEM would
build). Values are abTEM's: Lobato scattering factors with the isotropic Debye–Waller factor
and abTEM's taper at the table radius, F = Σ_j f_j exp(2πi hkl·x_j) / V.

For a centrosymmetric crystal the origin is moved to an inversion centre, which makes every
F real (real arithmetic downstream costs a fraction of complex); an origin shift multiplies
the beam amplitudes by phase factors only, so the intensities are unchanged.
"""

from __future__ import annotations

import math
import threading
import warnings
from functools import lru_cache
from typing import Any

import numpy as np

from .inputs import ThermalSigma, _positive, _thermal_sigmas, as_atoms

_SF_GZ_MARGIN = 0.3  # 1/Å: table covers |g| ≤ 2·sqrt(k_max² + margin²) (beams off the ZOLZ)
_PHASE_CHUNK = 16384  # reflections per block of atom phases (bounds memory to ~atoms × 0.25 MB)
_CANDIDATE_MARGIN = 1e-9  # relative: candidate sphere a hair larger than the beam sphere
_CENTRE_TOL = 1e-10  # fractional: how exactly atoms must pair up about an inversion centre
_REAL_TOL = 1e-10  # largest |Im F| / Σ_j |f_j| still taken for round-off (else: complex)


def table_g_max(k_max: float) -> float:
    """Radius (1/Å) of the structure-factor table for patterns listed up to ``k_max``."""
    return 2.0 * math.hypot(k_max, _SF_GZ_MARGIN)


class StructureFactorTable:
    """Structure factors of one crystal, computed on demand and kept for every orientation.

    Parameters
    ----------
    atoms : ase.Atoms
        The unit cell (already validated, see :func:`as_atoms`).
    g_max : float
        Table radius, 1/Å: couplings g − h up to this length are available, and abTEM's taper
        (1/(1 + exp((|g|/g_max − 0.95)/0.005))) is applied with it.
    sigmas : numpy.ndarray, shape (len(atoms),)
        Per-atom rms thermal displacement, Å.
    centering : str
        Lattice centering ('P', 'I', 'F', 'A', 'B' or 'C'); reflections it forbids are never
        beams.
    """

    def __init__(self, atoms: Any, g_max: float, sigmas: np.ndarray, centering: str):
        from abtem.bloch.utils import reciprocal_cell, reciprocal_space_gpts

        self.cell = np.asarray(atoms.cell, dtype=np.float64).copy()
        self.g_max = float(g_max)
        self.centering = centering
        self.gpts = reciprocal_space_gpts(self.cell, self.g_max)
        self._recip = reciprocal_cell(self.cell)
        self._strides = np.array([self.gpts[1] * self.gpts[2], self.gpts[2], 1], dtype=np.int64)
        self._origin = int(np.array([n // 2 for n in self.gpts]) @ self._strides)
        self._known = np.zeros(int(np.prod(self.gpts)), dtype=bool)
        self._candidates: dict[float, np.ndarray] = {}
        self._lock = threading.Lock()
        # atoms grouped by (Z, σ): one scattering factor per group, one phase per atom
        keys = list(zip(atoms.numbers.tolist(), np.asarray(sigmas, float).tolist(), strict=True))
        self._groups = sorted(set(keys))
        member = np.array([self._groups.index(k) for k in keys])
        self._membership = (member[None, :] == np.arange(len(self._groups))[:, None]).astype(
            np.complex128
        )
        fractional = np.linalg.solve(atoms.cell.copy().complete().T, atoms.positions.T).T
        centre = _inversion_centre(fractional, atoms.numbers)
        self.real = centre is not None
        self._fractional = fractional if centre is None else fractional - centre
        self._values = np.zeros(len(self._known), float if self.real else complex)

    @classmethod
    def from_abtem(cls, table: Any) -> StructureFactorTable:
        """A table filled from an abTEM ``StructureFactorArray`` (its values, cell and radius)."""
        from ase import Atoms

        cell = np.asarray(table.cell, dtype=np.float64)
        out = cls(Atoms(cell=cell, pbc=True), table.g_max, np.zeros(0), table.centering)
        out.real = False
        out._values = np.zeros(len(out._known), dtype=np.complex128)
        index = out._ravel(np.asarray(table.hkl, dtype=np.int64))
        out._values[index] = np.asarray(table.array, dtype=np.complex128)
        out._known[:] = True  # reflections outside the table are forbidden: F = 0
        return out

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def candidates(self, g_lim: float) -> np.ndarray:
        """Allowed hkl with |g| ≤ g_lim, in abTEM's table order (every beam of any orientation).

        Parameters
        ----------
        g_lim : float
            Largest beam |g|, 1/Å (at most half the table radius).

        Returns
        -------
        numpy.ndarray of int64, shape (m, 3)
        """
        from abtem.bloch.utils import get_reflection_condition, make_hkl_grid

        with self._lock:
            hit = self._candidates.get(g_lim)
            if hit is None:
                hkl = make_hkl_grid(self.cell, g_lim * (1.0 + _CANDIDATE_MARGIN))
                hkl = hkl[get_reflection_condition(hkl, self.centering)]
                hit = self._candidates[g_lim] = np.ascontiguousarray(hkl, dtype=np.int64)
        return hit

    def couplings(self, hkl: np.ndarray) -> np.ndarray:
        """The matrix F(h_j − h_i) over a set of beams (abTEM's structure-matrix layout).

        Parameters
        ----------
        hkl : numpy.ndarray of int, shape (n, 3)
            The beams.

        Returns
        -------
        numpy.ndarray of float64 (``self.real``) or complex128, shape (n, n)
            Element (i, j) is F(h_j − h_i) in 1/Å² (per unit volume, as abTEM's table), with
            the origin at an inversion centre when the crystal has one.
        """
        flat = np.asarray(hkl, dtype=np.int64) @ self._strides
        index = flat[None, :] - flat[:, None] + self._origin  # ravel(h_j − h_i)
        with self._lock:
            needed = index[~self._known[index]]
            if len(needed):
                flags = np.zeros(len(self._known), dtype=bool)
                flags[needed] = True  # each missing value once (cheaper than np.unique)
                missing = np.flatnonzero(flags)
                self._values[missing] = self._compute(self._unravel(missing))
                self._known[missing] = True
            return self._values[index]

    def _ravel(self, hkl: np.ndarray) -> np.ndarray:
        return hkl @ self._strides + self._origin

    def _unravel(self, index: np.ndarray) -> np.ndarray:
        shift = np.array([n // 2 for n in self.gpts], dtype=np.int64)
        return np.stack(np.unravel_index(index, self.gpts), axis=-1) - shift

    def _compute(self, hkl: np.ndarray) -> np.ndarray:
        """F(hkl) by abTEM's formula, one scattering factor per (Z, σ) group."""
        import abtem
        from abtem.bloch.dynamical import calculate_scattering_factors
        from ase import Atoms

        g_vec = hkl @ self._recip
        species = Atoms(numbers=[z for z, _ in self._groups], cell=self.cell, pbc=True)
        sigma = np.array([s for _, s in self._groups])
        out = np.empty(len(hkl), dtype=np.complex128)
        scale = 0.0  # the largest |F| the scattering factors allow (all phases aligned)
        counts = self._membership.real.sum(axis=1)
        for lo in range(0, len(hkl), _PHASE_CHUNK):
            part = slice(lo, lo + _PHASE_CHUNK)
            with abtem.config.set({"precision": "float64"}):  # abTEM's default is float32
                f = calculate_scattering_factors(
                    g_vec[part],
                    species,
                    _lobato(),
                    self.g_max,
                    thermal_sigma=sigma if np.any(sigma) else 0.0,
                    cutoff="taper",
                )
            phases = np.exp(2.0j * np.pi * (self._fractional @ hkl[part].T.astype(np.float64)))
            out[part] = np.sum(f * (self._membership @ phases), axis=0)
            scale = max(scale, float(np.max(counts @ np.abs(f), initial=0.0)))
        volume = abs(np.linalg.det(self.cell))
        out /= volume
        if self.real:
            if np.max(np.abs(out.imag), initial=0.0) <= _REAL_TOL * scale / volume:
                return out.real.copy()  # the imaginary parts are round-off
            self.real = False  # not centrosymmetric after all: keep the phases from now on
            self._values = self._values.astype(np.complex128)
        return out


@lru_cache(maxsize=1)
def _lobato() -> Any:
    from abtem.parametrizations import LobatoParametrization

    return LobatoParametrization()  # built once: abTEM reads its JSON file on every build


def _inversion_centre(fractional: np.ndarray, numbers: np.ndarray) -> np.ndarray | None:
    """Fractional position of an inversion centre of the atoms, or None if there is none.

    Any centre maps atom 0 onto an atom j of the same element, so it is (x_0 + x_j)/2 up to
    half a lattice vector (also a centre); each such candidate is tried.
    """
    if len(numbers) == 0:
        return None
    same = numbers[:, None] == numbers[None, :]
    for j in np.flatnonzero(numbers == numbers[0]):
        centre = 0.5 * (fractional[0] + fractional[j])
        offset = (2.0 * centre - fractional)[:, None, :] - fractional[None, :, :]
        offset -= np.round(offset)
        pairs = same & (np.abs(offset).max(axis=-1) < _CENTRE_TOL)
        if pairs.any(axis=1).all():
            return centre
    return None


def build_structure_factor_table(
    crystal: Any, k_max: float = 2.0, thermal_sigma: ThermalSigma = 0.0
) -> StructureFactorTable:
    """An empty :class:`StructureFactorTable` of a crystal for patterns up to ``k_max``.

    Parameters
    ----------
    crystal : ase.Atoms or pymatgen.core.Structure
        The unit cell.
    k_max : float
        Largest in-plane |q| the patterns will list, 1/Å; the table radius is
        2·sqrt(k_max² + 0.3²).
    thermal_sigma : float or mapping of str to float
        Isotropic rms displacement in Å (Debye–Waller exp(−2π² σ² g²)).

    Returns
    -------
    StructureFactorTable

    Raises
    ------
    ValueError
        For an invalid crystal or parameter.
    """
    from abtem.bloch.utils import auto_detect_centering

    atoms = as_atoms(crystal)
    k_max = _positive("k_max", k_max, "1/Å", hi=50.0)
    sigmas = _thermal_sigmas(atoms, thermal_sigma)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Something went wrong with the centering")
        centering = auto_detect_centering(atoms)
    return StructureFactorTable(atoms, table_g_max(k_max), sigmas, centering)
