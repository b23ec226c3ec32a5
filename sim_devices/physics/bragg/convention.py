"""The simulation convention: how every Bragg list of uedsteer is simulated unless told otherwise.

One set of numbers serves three places, so that a list simulated with the public defaults looks
like the lists the crystal models were trained on: the defaults of :func:`dynamical_bragg`,
:func:`kinematic_bragg` and :func:`structure_factor_for`, the defaults of a crystal store
(:class:`~uedsteer.sim_devices.crystals.settings.CrystalGenSettings`), and the ``simulation``
record a trained crystal model keeps in its metadata (the crystal predictor warns when a list
it is given visibly breaks that record).

Why these values:

* ``sg_max`` 0.02 1/Å: at 20 nm a spot with excitation error 0.02 1/Å is already < 1 % of its
  in-zone intensity; a larger limit only adds weak upper-layer beams (and time).
* ``thermal_sigma`` 0.08 Å: a typical room-temperature rms displacement (B ≈ 0.5 Å²); without
  it high-|q| spots are too strong.
* ``min_intensity`` 1e-5 of the incident beam: the weakest spot a detector records next to a
  central beam of 1; lists with much weaker spots have many more spots at high |q|, which the
  zone features (spot count, largest |q|, ring profile) read as another structure.
* ``k_max`` 2 1/Å, 300 kV, 20 nm: the paper's lists (Gleason et al. 2024).
"""

from __future__ import annotations

VOLTAGE_KV = 300.0
"""Accelerating voltage, kV."""

K_MAX = 2.0
"""Largest in-plane |q| listed, 1/Å (no 2π)."""

THICKNESS_NM = 20.0
"""Specimen thickness, nm."""

SG_MAX = 0.02
"""Largest excitation error of a beam, 1/Å."""

THERMAL_SIGMA = 0.08
"""Isotropic rms thermal displacement (Debye–Waller), Å."""

MIN_INTENSITY = 1e-5
"""Weakest diffracted spot kept, as a fraction of the incident beam (central beam ≈ 1)."""

SIMULATION_CONVENTION: dict[str, float] = {
    "voltage_kv": VOLTAGE_KV,
    "k_max": K_MAX,
    "thickness_nm": THICKNESS_NM,
    "sg_max": SG_MAX,
    "thermal_sigma": THERMAL_SIGMA,
    "min_intensity": MIN_INTENSITY,
}
"""The convention as the simulators' keyword arguments (a copy is safe to edit)."""
