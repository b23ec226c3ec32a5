"""Dynamical Bragg lists from abTEM's Bloch-wave solver, and the structure-factor table."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from .assembly import _to_bragg_list
from .beam import _common_checks, _g_limit
from .inputs import ThermalSigma, _positive, _thermal_sigmas, as_atoms
from .orientation import _orientation

_SF_GZ_MARGIN = 0.3  # 1/Å: table covers |g| ≤ 2·sqrt(k_max² + margin²) (beams off the ZOLZ)
_SF_ATOM_CHUNK = 8  # atoms per partial structure-factor table (bounds abTEM's memory)


def _abtem_config():
    import abtem

    return abtem.config.set({"device": "cpu", "precision": "float64"})


def structure_factor_for(crystal: Any, k_max: float = 2.0, thermal_sigma: ThermalSigma = 0.0):
    """Built abTEM structure-factor table of a crystal, reusable for many orientations.

    Parameters
    ----------
    crystal : ase.Atoms or pymatgen.core.Structure
        The unit cell.
    k_max : float
        The largest in-plane |q| the patterns will list, 1/Å. The table covers
        |g| ≤ 2·sqrt(k_max² + 0.3²), so every coupling g − h between beams is present, also for
        beams up to 0.3 1/Å off the zero-order Laue zone (enough for sg_max ≲ 0.25 1/Å).
    thermal_sigma : float or mapping of str to float
        Isotropic rms displacement in Å (Debye–Waller exp(−2π² σ² g²)).

    Returns
    -------
    abtem.bloch.StructureFactorArray
        Lobato parameterization, float64, on the CPU, evaluated eagerly. abTEM holds an
        (atoms × reflections) complex array while it builds the table, so the atoms are fed in
        chunks of 8 (same reflections, centering detected once on the whole cell) and the
        partial tables summed; peak memory stays ~0.1 GB even for 1,000 Å³ cells.

    Raises
    ------
    ValueError
        For an invalid crystal or parameter.
    """
    from abtem.bloch import StructureFactor, StructureFactorArray
    from abtem.bloch.utils import auto_detect_centering

    atoms = as_atoms(crystal)
    k_max = _positive("k_max", k_max, "1/Å", hi=50.0)
    sigmas = _thermal_sigmas(atoms, thermal_sigma)
    g_max = 2.0 * math.hypot(k_max, _SF_GZ_MARGIN)
    with _abtem_config(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Something went wrong with the centering")
        centering = auto_detect_centering(atoms)
        total = None
        for start in range(0, len(atoms), _SF_ATOM_CHUNK):
            stop = start + _SF_ATOM_CHUNK
            chunk_sigmas = sigmas[start:stop]
            part = StructureFactor(
                atoms[start:stop],
                g_max=g_max,
                parametrization="lobato",
                thermal_sigma=chunk_sigmas if np.any(chunk_sigmas) else 0.0,
                device="cpu",
                centering=centering,
            ).build(lazy=False)
            total = part.array if total is None else total + part.array
        return StructureFactorArray(
            total, part.hkl, atoms.cell.copy(), part.g_max, centering=centering
        )


def dynamical_bragg(
    crystal: Any,
    zone_axis: ArrayLike = (0, 0, 1),
    *,
    rotation: ArrayLike | None = None,
    voltage_kv: float = 300.0,
    k_max: float = 2.0,
    thickness_nm: float = 20.0,
    sg_max: float = 0.05,
    thermal_sigma: ThermalSigma = 0.0,
    min_intensity: float = 1e-7,
    structure_factor: Any = None,
) -> np.ndarray:
    """Dynamical (multiple-scattering) Bragg list from abTEM's Bloch-wave solver.

    Parameters
    ----------
    crystal, zone_axis, rotation, voltage_kv, k_max, thickness_nm, sg_max, thermal_sigma, \
min_intensity
        As in :func:`kinematic_bragg`. ``thermal_sigma`` is ignored when ``structure_factor``
        is given (it is baked into the table).
    structure_factor : abtem.bloch.StructureFactorArray, optional
        A table from :func:`structure_factor_for` for this crystal (same cell), built for a
        ``k_max`` at least this one; saves rebuilding it for every orientation.

    Returns
    -------
    numpy.ndarray, shape (n, 3)
        Columns (qx, qy, I) with I = |ψ_g(t)|²; row 0 is the central beam.

    Raises
    ------
    ValueError
        For an invalid crystal, orientation or parameter, or a ``structure_factor`` of another
        cell or too small a ``k_max``.
    """
    from abtem.bloch import BlochWaves

    atoms = as_atoms(crystal)
    wavelength, k_max, thickness, sg_max, min_intensity = _common_checks(
        voltage_kv, k_max, thickness_nm, sg_max, min_intensity
    )
    rot = _orientation(atoms, zone_axis, rotation)
    g_lim = _g_limit(k_max, sg_max, wavelength)
    if structure_factor is None:
        structure_factor = structure_factor_for(atoms, k_max, thermal_sigma)
    else:
        _thermal_sigmas(atoms, thermal_sigma)  # still validate it
        sf_cell = np.asarray(getattr(structure_factor, "cell", np.zeros((3, 3))), dtype=float)
        if not hasattr(structure_factor, "hkl") or not np.allclose(
            sf_cell, np.asarray(atoms.cell), atol=1e-6
        ):
            raise ValueError(
                "structure_factor must be the abTEM StructureFactorArray of this crystal "
                "(same cell), e.g. structure_factor_for(crystal, k_max)"
            )
        if structure_factor.g_max / 2.0 < g_lim - 1e-9:
            raise ValueError(
                f"structure_factor covers beams up to {structure_factor.g_max / 2:.3f} 1/Å but "
                f"k_max={k_max} and sg_max={sg_max} need {g_lim:.3f} 1/Å; rebuild it with "
                f"structure_factor_for(crystal, k_max={k_max})"
            )

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
