"""Ramping: every shot stays within each steered parameter's ramp limit (``max_step``) of a
setting known not to hurt the sample.

The origin of the ramp is the last shot, unless it caused or showed damage: then the latest
shot with no damage evidence (the devices ramp back to it with no shot in between), or the safe
start. Ramping on from a setting known to hurt the sample would carry the damage along.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .attribution import damage_free
from .config import ParameterSpec
from .errors import NoSafeCandidate
from .record import Trial
from .safe.optimizer import Proposal, SafeOptimizer


def ramp_origin(
    trials: Sequence[Trial], damage: np.ndarray, start: dict[str, float]
) -> dict[str, float]:
    """Settings the next proposal must stay within the ramp limit of: those of the latest shot
    whose attributed ``damage`` is known and low, or ``start`` (the safe start) if none is."""
    clean = damage_free(damage)
    if len(clean):
        return dict(trials[clean[0]].settings)
    return start


def ramped(
    target: dict[str, float], origin: dict[str, float], parameters: Sequence[ParameterSpec]
) -> dict[str, float]:
    """``target`` with each steered parameter clipped to its ramp limit around ``origin``."""
    out = dict(target)
    for p in parameters:
        lo, hi = origin[p.name] - p.max_step, origin[p.name] + p.max_step
        out[p.name] = float(min(max(target[p.name], lo), hi))
    return out


def safe_origin(
    optimizer: SafeOptimizer,
    x: np.ndarray,
    cols: dict[str, np.ndarray],
    last: np.ndarray,
    start: dict[str, float],
) -> np.ndarray | None:
    """The latest measured damage-free setting (or the safe ``start``) that the models still
    call safe, other than ``last``; None if there is none.

    The devices ramp back to it between shots (no shot on the way), so the next proposal
    stays within the ramp limit of a setting known not to hurt the sample. The optimizer keeps
    the fits of this check warm for that proposal.
    """
    options = [x[i] for i in damage_free(cols["damage_prob"])]
    options.append(np.array([start[n] for n in optimizer.names]))
    points = np.array([o for o in options if np.any(np.abs(o - last) > 1e-9)])
    if not len(points):
        return None
    try:
        found = optimizer.safe_set(x, cols, points)
    except NoSafeCandidate:
        return None
    optimizer.keep_warm(found)  # the next proposal starts from these fits
    hits = np.flatnonzero(found.safe)
    if not len(hits):
        return None
    return points[hits[0]]


def propose_within_reach(
    optimizer: SafeOptimizer,
    x: np.ndarray,
    cols: dict[str, np.ndarray],
    last: np.ndarray,
    start: dict[str, float],
) -> Proposal:
    """A proposal within reach of ``last``; if nothing there is safe any more (damage
    shrank the safe set), one from the setting :func:`safe_origin` finds. Raises
    :class:`NoSafeCandidate` when there is neither."""
    try:
        return optimizer.propose(x, cols, last)
    except NoSafeCandidate:
        origin = safe_origin(optimizer, x, cols, last, start)
        if origin is None:
            raise
    return optimizer.propose(x, cols, origin)
