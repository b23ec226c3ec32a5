"""Which safe candidate is worth a shot: expected improvement, or exploration where nothing
is expected to improve. Takes a fitted objective model; never fits one.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from botorch.acquisition.logei import qLogNoisyExpectedImprovement
from botorch.models import SingleTaskGP
from botorch.sampling import SobolQMCNormalSampler

EI_NEGLIGIBLE = 0.01
"""Expected improvement below this share of the gap to the target: explore instead."""
EXPLORE_BETA = 2.0
"""Optimism of the exploration step (upper and lower bounds μ ± EXPLORE_BETA·σ)."""
MC_SAMPLES = 128
"""Quasi-Monte-Carlo samples of the expected improvement."""


class Choice(NamedTuple):
    """The chosen candidate (index into the choices), its log expected improvement, and why
    (``"improve"`` or ``"explore"``)."""

    index: int
    value: float
    mode: str


class ExpectedImprovement:
    """qLogNoisyExpectedImprovement over a fitted objective GP, with SafeOpt-style exploration.

    Parameters
    ----------
    model : SingleTaskGP
        The fitted objective model (:class:`~.models.ObjectiveGP`).
    baseline : Tensor
        The measured points (model coordinates), the noisy incumbents.
    seed : int
        Seed of the quasi-Monte-Carlo sampler.
    """

    def __init__(self, model: SingleTaskGP, baseline: torch.Tensor, seed: int) -> None:
        self.model = model
        sampler = SobolQMCNormalSampler(torch.Size([MC_SAMPLES]), seed=seed)
        self._acqf = qLogNoisyExpectedImprovement(
            model, X_baseline=baseline, prune_baseline=True, sampler=sampler
        )

    def value(self, points: torch.Tensor) -> torch.Tensor:
        """Log expected improvement at each of ``points`` (model coordinates, (m, d))."""
        with torch.no_grad():
            return self._acqf(points[:, None, :])

    def choose(self, choices: torch.Tensor, best: float, target: float) -> Choice:
        """The candidate among ``choices`` (model coordinates) to go for.

        The highest expected improvement; but where it is below :data:`EI_NEGLIGIBLE` of the
        gap from ``best`` (the best objective measured) to ``target``, nothing is expected to
        improve by much, and the choice is the most uncertain of the points that could still
        be the best (upper bound above the best lower bound), as SafeOpt explores.
        """
        with torch.no_grad():
            values = self._acqf(choices[:, None, :])
            post = self.model.posterior(choices)
            sd = post.variance.clamp_min(0).sqrt().squeeze(-1)
            ucb = post.mean.squeeze(-1) + EXPLORE_BETA * sd
            lcb = post.mean.squeeze(-1) - EXPLORE_BETA * sd
        gap = max(target - best, 1e-3)
        k = int(torch.argmax(values))
        if not float(values[k]) < np.log(EI_NEGLIGIBLE * gap):
            return Choice(k, float(values[k]), "improve")
        maybe = torch.nonzero(ucb >= lcb.max()).squeeze(-1)
        k = int(maybe[torch.argmax(sd[maybe])])
        return Choice(k, float(values[k]), "explore")
