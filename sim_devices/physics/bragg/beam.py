"""The electron beam: wavelength, Lorentz factor, and which beams an orientation excites.

A reciprocal-lattice point g is excited when its excitation error
s_g = (k² − |k + g|²)/(2k) = −g_z − λ|g|²/2 (k = (0, 0, 1/λ)) satisfies |s_g| ≤ sg_max;
:func:`_g_limit` is the radius of the sphere that holds every such g with |g_xy| ≤ k_max.
"""

from __future__ import annotations

import math

from .inputs import _non_negative, _positive

_HC_EV_ANGSTROM = 12398.419843320026  # h·c in eV·Å (CODATA 2018)
_ELECTRON_REST_ENERGY_EV = 510998.95000  # m_e c² in eV


def electron_wavelength(voltage_kv: float = 300.0) -> float:
    """Relativistic electron wavelength.

    Parameters
    ----------
    voltage_kv : float
        Accelerating voltage in kV (> 0).

    Returns
    -------
    float
        λ = h c / sqrt(E (E + 2 m c²)) in Å, E = e·V; 0.019687 Å at 300 kV.
    """
    voltage_kv = _positive("voltage_kv", voltage_kv, "kV", hi=1e5)
    energy = 1e3 * voltage_kv
    return _HC_EV_ANGSTROM / math.sqrt(energy * (energy + 2.0 * _ELECTRON_REST_ENERGY_EV))


def _common_checks(
    voltage_kv: float, k_max: float, thickness_nm: float, sg_max: float, min_intensity: float
) -> tuple[float, float, float, float, float]:
    voltage_kv = _positive("voltage_kv", voltage_kv, "kV", hi=1e5)
    wavelength = electron_wavelength(voltage_kv)
    k_max = _positive("k_max", k_max, "1/Å", hi=0.5 / wavelength)
    thickness = 10.0 * _non_negative("thickness_nm", thickness_nm, "nm")
    sg_max = _positive("sg_max", sg_max, "1/Å", hi=1.0)
    min_intensity = _non_negative("min_intensity", min_intensity, "(fraction of the beam)")
    return wavelength, k_max, thickness, sg_max, min_intensity


def _lorentz_factor(voltage_kv: float) -> float:
    return 1.0 + 1e3 * voltage_kv / _ELECTRON_REST_ENERGY_EV


def _g_limit(k_max: float, sg_max: float, wavelength: float) -> float:
    """Radius of the sphere holding every g with |g_xy| ≤ k_max and |s_g| ≤ sg_max.

    |s_g| ≤ sg_max needs |g_z| ≤ sg_max + λ(k_max² + g_z²)/2; the bound is the smaller root.
    """
    c = sg_max + 0.5 * wavelength * k_max**2
    gz = 2.0 * c / (1.0 + math.sqrt(max(1.0 - 2.0 * wavelength * c, 0.0)))
    return math.hypot(k_max, gz)
