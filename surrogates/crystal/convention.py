"""Does a Bragg list follow the simulation convention a crystal model was trained on?

A trained crystal model records how its training lists were simulated (``simulation`` in its
metadata: k_max, sg_max, thermal σ, min_intensity, …; see
:mod:`uedsteer.sim_devices.physics.bragg.convention`). Some departures from that record can be
read off a list itself, and each changes what the features see:

* **weaker spots** than the record's ``min_intensity`` (as a share of the list's total
  intensity, which is the incident beam for a simulated list): a list simulated with a lower
  threshold has many more weak high-|q| spots, read by the zone features (spot count, largest
  |q|, ring profile) as another structure. Fix: simulate with the convention's
  ``min_intensity`` or drop the weaker spots;
* **spots beyond the record's k_max**: the training lists end there. Fix: simulate with that
  ``k_max`` or crop the list (:func:`~uedsteer.surrogates.crystal.bragg_lists.crop_bragg`);
* **no central beam** at (0, 0): the preprocessing drops the brightest spot as the central
  beam, so a list without it (a list already preprocessed, or one with the transmitted beam
  removed) loses its strongest reflection. Fix: keep the transmitted beam as a row
  ``(0, 0, I0)`` (:func:`~uedsteer.surrogates.crystal.peaks.find_bragg_peaks` adds one behind a
  beam stop).

Thickness, excitation-error limit and thermal σ cannot be told from one list; they are recorded
for the reader. :func:`convention_problems` lists what it finds, :func:`warn_convention` turns
that into one :class:`SimulationConventionWarning`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .bragg_lists import CENTRAL_TOLERANCE

SIMULATION_KEYS = (
    "method",
    "voltage_kv",
    "k_max",
    "thickness_nm",
    "sg_max",
    "thermal_sigma",
    "min_intensity",
    "zone_axes",
    "random_orientations",
)
"""The simulation settings of a crystal store that a model's metadata records."""

_INTENSITY_SLACK = 0.5  # a spot must be below half the threshold to count (float32, rounding)
_Q_SLACK = 1e-3  # 1/Å beyond k_max before a spot counts (position rounding, detector jitter)


class SimulationConventionWarning(UserWarning):
    """A Bragg list visibly departs from the simulation convention of the model reading it."""


def simulation_record(specs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The ``simulation`` record of a model from its crystal stores' specs.

    Parameters
    ----------
    specs : sequence of dict
        Each store's configuration (``CrystalDatasetSpec`` as a dict, with ``settings``).

    Returns
    -------
    dict
        ``stores``: each store's simulation settings (:data:`SIMULATION_KEYS`), and the
        bounds the checks use: ``k_max`` (the largest of the stores) and ``min_intensity``
        (the smallest).
    """
    stores = []
    for spec in specs:
        settings = dict(spec.get("settings", {}))
        entry = {k: settings[k] for k in SIMULATION_KEYS if k in settings}
        entry.update({k: spec[k] for k in ("n_materials", "seed") if k in spec})
        if "systems" in settings:
            entry["systems"] = list(settings["systems"])
        stores.append(entry)
    record: dict[str, Any] = {"stores": stores}
    k_max = [s["k_max"] for s in stores if "k_max" in s]
    min_i = [s["min_intensity"] for s in stores if "min_intensity" in s]
    if k_max:
        record["k_max"] = float(max(k_max))
    if min_i:
        record["min_intensity"] = float(min(min_i))
    return record


def convention_problems(
    bragg_lists: Sequence[np.ndarray], simulation: Mapping[str, Any], preprocess: bool = True
) -> list[str]:
    """What the lists visibly do otherwise than the ``simulation`` record, one phrase each.

    Parameters
    ----------
    bragg_lists : sequence of (n, 3) arrays
        Valid Bragg lists (qx, qy, I) as given to the model, before cropping.
    simulation : dict
        A model's ``simulation`` record (:func:`simulation_record`); a missing bound is not
        checked.
    preprocess : bool
        Whether the model's preprocessing will run (the central-beam check only matters then).

    Returns
    -------
    list of str
        Empty when nothing departs from the record.
    """
    k_max = simulation.get("k_max")
    min_intensity = simulation.get("min_intensity")
    weak = beyond = no_central = 0
    weakest, farthest = np.inf, 0.0
    for bragg in bragg_lists:
        arr = np.asarray(bragg, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[1] != 3 or arr.shape[0] == 0:
            continue
        q = np.hypot(arr[:, 0], arr[:, 1])
        central = q < CENTRAL_TOLERANCE
        if preprocess and not central.any():
            no_central += 1
        total = float(arr[:, 2].sum())
        spots = arr[~central, 2]
        if min_intensity and total > 0 and spots.size:
            share = float(spots.min()) / total
            if share < _INTENSITY_SLACK * min_intensity:
                weak += 1
                weakest = min(weakest, share)
        if k_max and q.size and q.max() > k_max + _Q_SLACK:
            beyond += 1
            farthest = max(farthest, float(q.max()))
    n = len(bragg_lists)
    problems = []
    if weak:
        problems.append(
            f"{weak} of {n} lists hold spots weaker than the model's min_intensity="
            f"{min_intensity:g} of the beam (weakest {weakest:.1e} of the list's intensity): "
            f"simulate with min_intensity={min_intensity:g} (dynamical_bragg's default) or drop "
            "the weaker spots"
        )
    if beyond:
        problems.append(
            f"{beyond} of {n} lists reach |q| = {farthest:.2f} 1/Å beyond the model's "
            f"k_max={k_max:g} 1/Å: simulate with k_max={k_max:g} or crop them with "
            f"crop_bragg(list, 0, {k_max:g})"
        )
    if no_central:
        problems.append(
            f"{no_central} of {n} lists have no central beam at (0, 0), so the preprocessing "
            "drops their brightest reflection in its place: keep the transmitted beam as a "
            "row (0, 0, I0), or pass preprocess=False for lists preprocessed already"
        )
    return problems


def warn_convention(
    bragg_lists: Sequence[np.ndarray],
    simulation: Mapping[str, Any],
    preprocess: bool = True,
    stacklevel: int = 3,
) -> list[str]:
    """Warn once (:class:`SimulationConventionWarning`) with every problem found.

    Returns the problems (:func:`convention_problems`).
    """
    problems = convention_problems(bragg_lists, simulation, preprocess)
    if problems:
        warnings.warn(
            "these Bragg lists were simulated or preprocessed otherwise than the crystal "
            "model's training lists, so its predictions may be wrong: " + "; ".join(problems),
            SimulationConventionWarning,
            stacklevel=stacklevel,
        )
    return problems
