"""Candidate settings: within reach of the devices, over the whole box, along the fluence.

The safe set and the acquisition are evaluated on finite candidate sets: Sobol points within
the ramp limit of the devices' settings (:meth:`CandidateGenerator.local`), Sobol points over
the whole search box as possible targets of travel (:meth:`CandidateGenerator.whole_box`), and
fluence ladders (:func:`fluence_ladder`) where the highest safe fluence must be found
precisely. :func:`frontier` keeps the highest fluence per cell of the other parameters.
"""

from __future__ import annotations

import numpy as np
from scipy.stats.qmc import Sobol

from .coordinates import SearchSpace

FRONTIER_BINS = 16
"""Cells per other parameter when picking the highest safe fluence (:func:`frontier`)."""
LADDER_POINTS = 16
"""The latest measured settings that get a fluence ladder among the whole-box candidates."""
LADDER_STEPS = 48
"""Rungs of a fluence ladder across its fluence range."""


class CandidateGenerator:
    """Draws candidate settings; each draw advances its own Sobol sequence.

    Parameters
    ----------
    space : SearchSpace
    n : int
        Sobol points per draw (``n_candidates``).
    seed : int
        Seed of the local sequence; the whole-box sequence uses ``seed + 1``.
    """

    def __init__(self, space: SearchSpace, n: int, seed: int) -> None:
        self.space = space
        self.n = n
        self._local = Sobol(len(space.names), seed=seed)
        self._whole_box = Sobol(len(space.names), seed=seed + 1)

    def local(self, last: np.ndarray) -> np.ndarray:
        """Physical candidates within the ramp box of ``last`` and the search box: Sobol
        points, then the ramp box's two corners and ``last`` itself (clipped to the box)."""
        s = self.space
        last = np.asarray(last, dtype=np.float64)
        lows = np.maximum(s.box_low, last - s.steps)
        highs = np.minimum(s.box_high, last + s.steps)
        pts = lows + self._local.random(self.n) * (highs - lows)
        corners = [lows, highs, np.clip(last, lows, highs)]
        return np.vstack([pts, *corners])

    def whole_box(self, settings: np.ndarray | None = None) -> np.ndarray:
        """Physical candidates over the whole search box (possible targets of travel).

        Sobol points, plus a fluence ladder at the other settings of the latest
        :data:`LADDER_POINTS` measured points, so that the highest safe fluence where data
        exist is found precisely.
        """
        s = self.space
        lows, highs = s.box_low, s.box_high
        pts = [lows + self._whole_box.random(self.n) * (highs - lows)]
        j = s.fluence
        if settings is not None and len(settings) and j is not None:
            recent = np.clip(np.asarray(settings, dtype=np.float64)[-LADDER_POINTS:], lows, highs)
            recent = recent[np.all(np.isfinite(recent), axis=1)]
            pts.append(fluence_ladder(s, recent, lows[j], highs[j]))
        return np.vstack(pts)


def fluence_ladder(
    space: SearchSpace, points: np.ndarray, low: float, high: float, rungs: int = LADDER_STEPS
) -> np.ndarray:
    """Physical points at the other settings of each of ``points`` with ``rungs`` fluences
    from ``low`` to ``high`` (point by point)."""
    j = space.names.index("fluence")
    points = np.array(points, dtype=np.float64, ndmin=2)
    out = np.repeat(points, rungs, axis=0)
    out[:, j] = np.tile(np.linspace(low, high, rungs), len(points))
    return out


def frontier(space: SearchSpace, cand: np.ndarray, bins: int = FRONTIER_BINS) -> np.ndarray:
    """Indices of the highest-fluence candidates per cell of the other parameters.

    The transformation grows with the excitation, so at given other settings the best safe
    point is the one with the most fluence: these are the points that both can improve the
    objective and expand the safe set (SafeOpt's maximizers and expanders coincide on this
    edge). Cells split each other parameter's range among ``cand`` into ``bins``.
    """
    j = space.names.index("fluence")
    others = [i for i in range(len(space.names)) if i != j]
    if not others or len(cand) == 0:
        return np.arange(len(cand)) if len(cand) == 0 else np.array([np.argmax(cand[:, j])])
    u = space.to_model(cand)[:, others]
    lo, hi = u.min(axis=0), u.max(axis=0)
    cell = np.floor((u - lo) / np.maximum(hi - lo, 1e-12) * (bins - 1e-9)).astype(int)
    keys = np.ravel_multi_index(cell.T, (bins,) * len(others))
    best: dict[int, int] = {}
    for i, key in enumerate(keys):
        if key not in best or cand[i, j] > cand[best[key], j]:
            best[key] = i
    return np.array(sorted(best.values()))
