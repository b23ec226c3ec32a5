"""Kinematic Bragg lists: first Born approximation with the slab's shape function."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ..form_factors import electron_form_factor
from .assembly import _to_bragg_list
from .beam import _common_checks, _g_limit, _lorentz_factor
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


def kinematic_bragg(
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
) -> np.ndarray:
    """Kinematic Bragg list of a slab (first Born approximation with a shape function).

    I_g ∝ (λ γ |F_g| / V_cell)² (sin(π t s_g)/(π s_g))², renormalised with the central beam
    so that the total flux is 1 (see the module docstring for the derivation). The defaults
    are the simulation convention (:mod:`~uedsteer.sim_devices.physics.bragg.convention`).

    Parameters
    ----------
    crystal : ase.Atoms or pymatgen.core.Structure
        The unit cell.
    zone_axis : array_like of 3 ints
        [uvw] along the beam (see :func:`zone_axis_rotation`); ignored when ``rotation`` is
        given.
    rotation : array_like, shape (3, 3), optional
        A proper rotation R (r_lab = R r_crystal) for an arbitrary orientation, e.g. a
        randomly oriented nanoparticle. Overrides ``zone_axis``.
    voltage_kv : float
        Accelerating voltage in kV (default 300).
    k_max : float
        Largest in-plane |q| listed, 1/Å (without 2π; default 2).
    thickness_nm : float
        Slab thickness t in nm (≥ 0; default 20).
    sg_max : float
        Largest |excitation error| kept, 1/Å (in (0, 1]; default 0.02).
    thermal_sigma : float or mapping of str to float
        Isotropic rms displacement per Cartesian component in Å (one value, or one per
        element); Debye–Waller factor exp(−2π² σ² g²). Default 0.08 Å.
    min_intensity : float
        Diffracted spots weaker than this (fraction of the incident beam) are dropped; the
        central beam is always kept. Default 1e-5.

    Returns
    -------
    numpy.ndarray, shape (n, 3)
        Columns (qx, qy, I); row 0 is the central beam.

    Raises
    ------
    ValueError
        For an invalid crystal, orientation or parameter.
    """
    atoms = as_atoms(crystal)
    wavelength, k_max, thickness, sg_max, min_intensity = _common_checks(
        voltage_kv, k_max, thickness_nm, sg_max, min_intensity
    )
    sigmas = _thermal_sigmas(atoms, thermal_sigma)
    rot = _orientation(atoms, zone_axis, rotation)
    cell = np.asarray(atoms.cell, dtype=np.float64)
    recip = np.linalg.inv(cell).T
    volume = abs(float(np.linalg.det(cell)))

    g_lim = _g_limit(k_max, sg_max, wavelength)
    bounds = [int(math.ceil(g_lim * float(np.linalg.norm(a)))) for a in cell]
    axes = [np.arange(-b, b + 1) for b in bounds]
    hkl = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    hkl = hkl[np.any(hkl != 0, axis=1)]
    g = (hkl @ recip) @ rot.T
    g2 = np.einsum("ij,ij->i", g, g)
    sg = -g[:, 2] - 0.5 * wavelength * g2
    keep = (np.hypot(g[:, 0], g[:, 1]) <= k_max) & (np.abs(sg) <= sg_max)
    hkl, g, g2, sg = hkl[keep], g[keep], g2[keep], sg[keep]
    g_len = np.sqrt(g2)

    frac = atoms.get_scaled_positions(wrap=False)
    symbols = np.array(atoms.get_chemical_symbols())
    amplitude = np.zeros(len(hkl), dtype=np.complex128)
    for symbol in np.unique(symbols):
        idx = np.flatnonzero(symbols == symbol)
        f = electron_form_factor(str(symbol), g_len)
        phases = np.exp(-2j * np.pi * (hkl @ frac[idx].T))
        dwf = np.exp(-2.0 * np.pi**2 * np.outer(g2, sigmas[idx] ** 2))
        amplitude += f * np.sum(phases * dwf, axis=1)

    gamma = _lorentz_factor(float(voltage_kv))
    shape = thickness * np.sinc(thickness * sg)  # sin(π t s)/(π s), → t at s = 0
    intensity = (wavelength * gamma * np.abs(amplitude) / volume) ** 2 * shape**2
    norm = 1.0 + float(intensity.sum())
    return _to_bragg_list(g[:, :2], intensity / norm, 1.0 / norm, min_intensity)
