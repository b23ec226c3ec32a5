"""Dynamical Bragg lists: the Bloch-wave structure matrix and its propagation through the slab."""

from __future__ import annotations

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
from .inputs import ThermalSigma, _thermal_sigmas, as_atoms
from .orientation import _orientation
from .potential import StructureFactorTable, build_structure_factor_table
from .propagation import propagate


def structure_factor_for(
    crystal: Any, k_max: float = K_MAX, thermal_sigma: ThermalSigma = THERMAL_SIGMA
) -> StructureFactorTable:
    """Structure-factor table of a crystal, reusable for many orientations and thicknesses.

    Parameters
    ----------
    crystal : ase.Atoms or pymatgen.core.Structure
        The unit cell.
    k_max : float
        The largest in-plane |q| the patterns will list, 1/Å. The table covers
        |g| ≤ 2·sqrt(k_max² + 0.3²), so every coupling g − h between beams is present, also for
        beams up to 0.3 1/Å off the zero-order Laue zone (enough for sg_max ≲ 0.25 1/Å).
    thermal_sigma : float or mapping of str to float
        Isotropic rms displacement in Å (Debye–Waller exp(−2π² σ² g²)); default the
        simulation convention's 0.08 Å, as :func:`dynamical_bragg`'s.

    Returns
    -------
    StructureFactorTable
        abTEM's Lobato structure factors, computed the first time an orientation needs them
        and kept: building the table costs nothing, and the zone axes of a crystal share
        every value they have in common.

    Raises
    ------
    ValueError
        For an invalid crystal or parameter.
    """
    return build_structure_factor_table(crystal, k_max, thermal_sigma)


def dynamical_bragg(
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
    """Dynamical (multiple-scattering) Bragg list by the Bloch-wave method (abTEM's equations).

    The defaults are the simulation convention
    (:mod:`~uedsteer.sim_devices.physics.bragg.convention`): the settings of the crystal
    stores the shipped crystal model was trained on, so a list made with them reads as the
    model expects.

    Parameters
    ----------
    crystal, zone_axis, rotation, voltage_kv, k_max, thickness_nm, sg_max, thermal_sigma, \
min_intensity
        As in :func:`kinematic_bragg`. ``thermal_sigma`` is ignored when ``structure_factor``
        is given (it is baked into the table).
    structure_factor : StructureFactorTable or abtem.bloch.StructureFactorArray, optional
        A table from :func:`structure_factor_for` for this crystal (same cell), built for a
        ``k_max`` at least this one; it is shared by every orientation it is used for. An
        abTEM ``StructureFactorArray`` is also accepted (converted on each call).

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
    atoms = as_atoms(crystal)
    wavelength, k_max, thickness, sg_max, min_intensity = _common_checks(
        voltage_kv, k_max, thickness_nm, sg_max, min_intensity
    )
    rot = _orientation(atoms, zone_axis, rotation)
    g_lim = _g_limit(k_max, sg_max, wavelength)
    table = _checked_table(atoms, structure_factor, k_max, sg_max, g_lim, thermal_sigma)
    hkl, g, intensity = _beam_intensities(
        table, rot, 1e3 * float(voltage_kv), sg_max, g_lim, thickness
    )
    central_mask = np.all(hkl == 0, axis=1)
    central = float(intensity[central_mask].sum()) if central_mask.any() else 1.0
    listed = ~central_mask & (np.hypot(g[:, 0], g[:, 1]) <= k_max)
    return _to_bragg_list(g[listed, :2], intensity[listed], central, min_intensity)


def _checked_table(
    atoms: Any,
    structure_factor: Any,
    k_max: float,
    sg_max: float,
    g_lim: float,
    thermal_sigma: ThermalSigma,
) -> StructureFactorTable:
    if structure_factor is None:
        return build_structure_factor_table(atoms, k_max, thermal_sigma)
    _thermal_sigmas(atoms, thermal_sigma)  # still validate it
    if not isinstance(structure_factor, StructureFactorTable):
        if not all(hasattr(structure_factor, a) for a in ("hkl", "array", "cell", "g_max")):
            raise ValueError(
                "structure_factor must be the table of this crystal from "
                "structure_factor_for(crystal, k_max) (or abTEM's StructureFactorArray)"
            )
        structure_factor = StructureFactorTable.from_abtem(structure_factor)
    if not np.allclose(structure_factor.cell, np.asarray(atoms.cell), atol=1e-6):
        raise ValueError(
            "structure_factor must be the table of this crystal (same cell), e.g. "
            "structure_factor_for(crystal, k_max)"
        )
    if structure_factor.g_max / 2.0 < g_lim - 1e-9:
        raise ValueError(
            f"structure_factor covers beams up to {structure_factor.g_max / 2:.3f} 1/Å but "
            f"k_max={k_max} and sg_max={sg_max} need {g_lim:.3f} 1/Å; rebuild it with "
            f"structure_factor_for(crystal, k_max={k_max})"
        )
    return structure_factor


def _beam_intensities(
    table: StructureFactorTable,
    rot: np.ndarray,
    energy: float,
    sg_max: float,
    g_lim: float,
    thickness: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Beams of one orientation (hkl, g in the lab frame) and their intensities at a depth.

    abTEM's Bloch-wave equations: beams with |s_g| ≤ sg_max and |g| ≤ g_lim; structure matrix
    A = M (2K diag(s_g) + U) M with U_ij = σ F(h_j − h_i)/(κλπ) and M = diag(1/√(1 + g_z/K));
    amplitudes ψ = M exp(iπλt A) e₀ (t in Å).
    """
    from abtem.bloch.utils import excitation_errors, reciprocal_cell
    from abtem.core.constants import kappa
    from abtem.core.energy import energy2sigma, energy2wavelength

    candidates = table.candidates(g_lim)
    g_all = candidates @ reciprocal_cell(np.dot(table.cell, rot.T))
    s_all = excitation_errors(g_all, energy)
    keep = (np.abs(s_all) <= sg_max) & (np.linalg.norm(g_all, axis=-1) <= g_lim)
    hkl, g, s = candidates[keep], g_all[keep], s_all[keep]
    central = np.all(hkl == 0, axis=1)
    if thickness == 0.0 or not central.any():
        return hkl, g, central.astype(np.float64)
    wavelength = energy2wavelength(energy)
    metric = 1.0 / np.sqrt(1.0 + g[:, 2] / (1.0 / wavelength))  # as abTEM rounds it
    matrix = table.couplings(hkl)
    matrix *= energy2sigma(energy) / (kappa * wavelength * np.pi) * metric[None] * metric[:, None]
    np.fill_diagonal(matrix, 2.0 / wavelength * s * metric**2)
    psi = metric * propagate(
        matrix, int(np.flatnonzero(central)[0]), np.pi * wavelength * thickness
    )
    return hkl, g, np.abs(psi) ** 2
