"""A synthetic sample and configurations the safe-optimizer tests share."""

from __future__ import annotations

import numpy as np

from uedsteer.controller.config import CampaignConfig
from uedsteer.controller.safe.coordinates import SearchSpace
from uedsteer.controller.safe.evidence import Candidates, Evidence, gather
from uedsteer.controller.safe.fitting import GPState
from uedsteer.controller.safe.optimizer import score_bounds

CFG = CampaignConfig(n_candidates=64)


def truth(x):
    """Synthetic sample: damage above 6 mJ/cm², transformation from ~3 near 800 nm."""
    f, lam = x[:, 0], x[:, 1]
    damage = 1 / (1 + np.exp(-(f - 6.0) / 0.3))
    progress = np.exp(-((lam - 800) ** 2) / (2 * 120**2)) / (1 + np.exp(-(f - 3.0) / 0.4))
    heating = 0.002 * f**1.3 * np.where(lam < 600, 3.0, 1.0)  # C exciton absorbs more
    return {
        "progress": progress,
        "damage_prob": damage,
        "line_distance": np.full(len(x), 0.3),
        "heating": heating,
    }


def lows_highs(cfg: CampaignConfig = CFG):
    p = cfg.parameters
    return np.array([q.low for q in p]), np.array([q.high for q in p])


def evidence(x, scores, cfg: CampaignConfig = CFG, extra=None) -> Evidence:
    """The fitted safety models on (x, scores), from a cold start."""
    found, _ = gather(SearchSpace(cfg), cfg, score_bounds(cfg, extra), x, scores, GPState())
    return found


def at(points, data: Evidence, exempt=None) -> Candidates:
    return Candidates(np.asarray(points, dtype=np.float64), data, exempt)


def with_constraint(bound: float) -> CampaignConfig:
    return CampaignConfig(
        n_candidates=64,
        constraints=[
            {"score": "line_distance", "bound": 3.0},
            {"score": "recon_error", "bound": bound},
        ],
    )


def partly_transformed(progress_last: float, damage_last: float = 0.0):
    """A climb at 800 nm whose last frame (3 mJ/cm²) reads ``progress_last``: the frames
    before are untransformed (valid heating), the last one has no heating reading."""
    x = np.array([[0.5, 800.0], [1.0, 800.0], [1.5, 800.0], [2.0, 800.0], [3.0, 800.0]])
    scores = truth(x)
    scores["progress"] = np.array([0.02, 0.02, 0.03, 0.04, progress_last])
    scores["damage_prob"] = np.array([0.0, 0.0, 0.0, 0.0, damage_last])
    return x, scores


def start(fluences, heating):
    """Shots at the safe start's wavelength (800 nm) with these fluences and heating readings."""
    x = np.column_stack([fluences, np.full(len(fluences), 800.0)])
    scores = truth(x)
    scores["heating"] = np.asarray(heating, dtype=float)
    scores["progress"] = np.full(len(x), 0.02)
    return x, scores
