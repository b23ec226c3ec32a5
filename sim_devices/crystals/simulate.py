"""One material of a crystal store: draw it from (seed, index), simulate its Bragg lists."""

from __future__ import annotations

import numpy as np

from .settings import CrystalGenSettings
from .sources import random_crystal


def simulate_material(index: int, seed: int, settings: CrystalGenSettings) -> dict:
    """One material and its Bragg lists (deterministic in (seed, index)).

    Its symmetry-distinct zone axes, then ``settings.random_orientations`` uniformly random
    orientations (zone axis [0 0 0]); one Bloch-wave structure-factor table serves all of them
    (each structure factor they share is computed once).

    Returns
    -------
    dict
        ``info`` (see :func:`random_crystal`), ``zone_axes`` (P, 3) int and ``bragg`` (a list of
        P arrays (n, 3) float32: qx, qy in 1/Å without 2π, intensity; central beam included).
    """
    from scipy.spatial.transform import Rotation

    from uedsteer.sim_devices.physics.bragg import (
        bragg_lists_for_zone_axes,
        dynamical_bragg,
        kinematic_bragg,
        structure_factor_for,
        zone_axes,
    )

    rng = np.random.default_rng([seed, index])
    system = settings.systems[index % len(settings.systems)]
    atoms, info = random_crystal(system, rng, settings)
    axes = np.asarray(
        zone_axes(atoms, n=settings.zone_axes, max_index=settings.max_index), int
    ).reshape(-1, 3)
    kw = {
        "voltage_kv": settings.voltage_kv,
        "k_max": settings.k_max,
        "thickness_nm": settings.thickness_nm,
        "sg_max": settings.sg_max,
        "thermal_sigma": settings.thermal_sigma,
        "min_intensity": settings.min_intensity,
    }
    if settings.method == "dynamical":  # one structure-factor table for every orientation
        kw["structure_factor"] = structure_factor_for(atoms, settings.k_max, settings.thermal_sigma)
    lists = bragg_lists_for_zone_axes(atoms, axes, method=settings.method, **kw)
    if settings.random_orientations:
        simulate = dynamical_bragg if settings.method == "dynamical" else kinematic_bragg
        rotations = Rotation.random(
            settings.random_orientations, random_state=int(rng.integers(2**31 - 1))
        ).as_matrix()
        lists += [simulate(atoms, rotation=rot, **kw) for rot in rotations]
        axes = np.vstack([axes, np.zeros((len(rotations), 3), int)])
    return {
        "info": info,
        "zone_axes": axes,
        "bragg": [np.asarray(b, np.float32) for b in lists],
    }
