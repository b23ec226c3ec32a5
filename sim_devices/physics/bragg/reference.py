"""abTEM's own Bloch-wave pipeline: the reference the package's solver is checked against.

:func:`abtem_dynamical_bragg` builds abTEM's ``BlochWaves`` for the orientation, its full
structure matrix, and its eigendecomposition (``calculate_diffraction_patterns``), from the
full structure-factor table of :func:`abtem_structure_factor`. It gives the same Bragg lists
as :func:`~.bloch.dynamical_bragg` (tests: same spots, intensities within 1e-6 relative) at
several times the cost; tests and ``benchmarks/bench_crystal_generation.py`` use it.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from .assembly import _to_bragg_list
from .beam import _common_checks, _g_limit
from .convention import (
    K_MAX,
    MIN_INTENSITY,
    SG_MAX,
    THERMAL_SIGMA,
    THICKNESS_NM,
    VOLTAGE_KV,
)
from .inputs import ThermalSigma, _positive, _thermal_sigmas, as_atoms
from .orientation import _orientation
from .potential import table_g_max

_SF_ATOM_CHUNK = 8  # atoms per partial structure-factor table (bounds abTEM's memory)


def _abtem_config():
    import abtem

    return abtem.config.set({"device": "cpu", "precision": "float64"})


def abtem_structure_factor(
    crystal: Any, k_max: float = K_MAX, thermal_sigma: ThermalSigma = THERMAL_SIGMA
) -> Any:
    """abTEM's full structure-factor table of a crystal (every hkl up to the table radius).

    Parameters
    ----------
    crystal : ase.Atoms or pymatgen.core.Structure
        The unit cell.
    k_max : float
        Largest in-plane |q| the patterns will list, 1/Å; the table covers
        |g| ≤ 2·sqrt(k_max² + 0.3²).
    thermal_sigma : float or mapping of str to float
        Isotropic rms displacement in Å.

    Returns
    -------
    abtem.bloch.StructureFactorArray
        Lobato parameterization, float64, on the CPU, built eagerly from chunks of 8 atoms
        (abTEM holds an atoms × reflections array while building).
    """
    from abtem.bloch import StructureFactor, StructureFactorArray
    from abtem.bloch.utils import auto_detect_centering

    atoms = as_atoms(crystal)
    k_max = _positive("k_max", k_max, "1/Å", hi=50.0)
    sigmas = _thermal_sigmas(atoms, thermal_sigma)
    with _abtem_config(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Something went wrong with the centering")
        centering = auto_detect_centering(atoms)
        total = None
        for start in range(0, len(atoms), _SF_ATOM_CHUNK):
            stop = start + _SF_ATOM_CHUNK
            chunk_sigmas = sigmas[start:stop]
            part = StructureFactor(
                atoms[start:stop],
                g_max=table_g_max(k_max),
                parametrization="lobato",
                thermal_sigma=chunk_sigmas if np.any(chunk_sigmas) else 0.0,
                device="cpu",
                centering=centering,
            ).build(lazy=False)
            total = part.array if total is None else total + part.array
        return StructureFactorArray(
            total, part.hkl, atoms.cell.copy(), part.g_max, centering=centering
        )


def abtem_dynamical_bragg(
    crystal: Any,
    zone_axis: ArrayLike = (0, 0, 1),
    *,
    rotation: ArrayLike | None = None,
    voltage_kv: float = VOLTAGE_KV,
    k_max: float = K_MAX,
    thickness_nm: float = THICKNESS_NM,
    sg_max: float = SG_MAX,
    thermal_sigma: ThermalSigma = THERMAL_SIGMA,
    min_intensity: float = MIN_INTENSITY,
    structure_factor: Any = None,
) -> np.ndarray:
    """Dynamical Bragg list by abTEM's ``BlochWaves`` (eigendecomposition of the full matrix).

    Parameters
    ----------
    crystal, zone_axis, rotation, voltage_kv, k_max, thickness_nm, sg_max, thermal_sigma, \
min_intensity
        As in :func:`~.bloch.dynamical_bragg`.
    structure_factor : abtem.bloch.StructureFactorArray, optional
        A table from :func:`abtem_structure_factor` for this crystal (not checked).

    Returns
    -------
    numpy.ndarray, shape (n, 3)
        The Bragg list, laid out as :func:`~.bloch.dynamical_bragg`'s.
    """
    from abtem.bloch import BlochWaves

    atoms = as_atoms(crystal)
    wavelength, k_max, thickness, sg_max, min_intensity = _common_checks(
        voltage_kv, k_max, thickness_nm, sg_max, min_intensity
    )
    rot = _orientation(atoms, zone_axis, rotation)
    g_lim = _g_limit(k_max, sg_max, wavelength)
    if structure_factor is None:
        structure_factor = abtem_structure_factor(atoms, k_max, thermal_sigma)
    with _abtem_config(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Something went wrong with the centering")
        bloch = BlochWaves(
            structure_factor,
            energy=1e3 * float(voltage_kv),
            sg_max=sg_max,
            g_max=g_lim,
            orientation_matrix=rot,
            device="cpu",
        )
        hkl = np.asarray(bloch.hkl)
        g = np.asarray(bloch.g_vec)
        if thickness == 0.0 or len(hkl) == 0:
            intensity = np.all(hkl == 0, axis=1).astype(np.float64)
        else:
            patterns = bloch.calculate_diffraction_patterns(thickness, lazy=False)
            intensity = np.asarray(patterns.array, dtype=np.float64).reshape(-1)
    central_mask = np.all(hkl == 0, axis=1)
    central = float(intensity[central_mask].sum()) if central_mask.any() else 1.0
    listed = ~central_mask & (np.hypot(g[:, 0], g[:, 1]) <= k_max)
    return _to_bragg_list(g[listed, :2], intensity[listed], central, min_intensity)
