"""Safe Bayesian optimization of beamline settings (BoTorch / GPyTorch).

Safety model (hard, not soft):

* Candidates lie inside the search box **and** within the ramp limit (``max_step`` per
  parameter) of the last measured point, so the devices are only ever ramped.
* Damage is modelled by its own GP on logit(damage probability) with a *fixed zero prior mean*:
  where nothing was measured the model says "50 % damage", which is unsafe. A candidate is
  admitted only if the upper confidence bound μ + β·σ of the damage logit is ≤ logit(δ), so
  the safe set grows outward from measured low-damage points (SafeOpt-style expansion) and
  shrinks around damaging ones.
* Score constraints (e.g. line distance) are modelled the same way and must hold at the upper
  (or lower) confidence bound.
* Among the safe candidates the objective is chosen by qLogNoisyExpectedImprovement; if no
  candidate is safe, or none is expected to improve, :class:`NoSafeCandidate` says so instead
  of gambling.

Failed measurements (NaN scores) are kept in the record but cannot train a GP; they are
excluded from fitting and counted.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from botorch.acquisition.logei import qLogNoisyExpectedImprovement
from botorch.exceptions import InputDataWarning
from botorch.fit import fit_gpytorch_mll
from botorch.models import SingleTaskGP
from botorch.models.transforms import Normalize, Standardize
from gpytorch.constraints import Interval
from gpytorch.mlls import ExactMarginalLogLikelihood
from scipy.stats.qmc import Sobol

from .config import CampaignConfig

LOGIT_CLIP = 1e-3
LOGIT_SCALE = float(np.log((1 - LOGIT_CLIP) / LOGIT_CLIP))  # damage GP works on logit / 6.9
DAMAGE_MAX_LENGTHSCALE = 0.15  # in units of the search range
DAMAGE_NOISE_VAR = 0.01  # (0.1 in scaled logit)²: the scorer's damage probability is precise


class NoSafeCandidate(RuntimeError):
    """No candidate inside the safe set (or none expected to improve): stop, do not gamble."""


def logit(p: np.ndarray) -> np.ndarray:
    """Logit with probabilities clipped to [1e-3, 1 − 1e-3]."""
    p = np.clip(np.asarray(p, dtype=np.float64), LOGIT_CLIP, 1 - LOGIT_CLIP)
    return np.log(p / (1 - p))


@dataclass(frozen=True)
class Proposal:
    """The next settings and why they are safe."""

    settings: dict[str, float]
    damage_ucb: float
    acquisition: float
    n_safe: int
    n_candidates: int


class SafeOptimizer:
    """Proposes the next settings from (settings, scores) observations.

    Parameters
    ----------
    config : CampaignConfig
    """

    def __init__(self, config: CampaignConfig) -> None:
        self.config = config
        self.names = [p.name for p in config.parameters]
        lo = [self._to_unit_raw(p, p.low) for p in config.parameters]
        hi = [self._to_unit_raw(p, p.high) for p in config.parameters]
        self._lo, self._hi = np.array(lo), np.array(hi)
        self._sobol = Sobol(len(self.names), seed=config.seed)
        self._state: dict[str, dict] = {}

    # ------------------------------------------------------------ coordinates
    @staticmethod
    def _to_unit_raw(p, v: float) -> float:
        return float(np.log(v)) if p.log_scale else float(v)

    def to_model(self, settings: np.ndarray) -> np.ndarray:
        """Physical settings (n, d) → model coordinates scaled to [0, 1]."""
        x = np.array(settings, dtype=np.float64, ndmin=2)
        for j, p in enumerate(self.config.parameters):
            if p.log_scale:
                x[:, j] = np.log(x[:, j])
        return (x - self._lo) / (self._hi - self._lo)

    def from_model(self, u: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`to_model`."""
        x = np.array(u, dtype=np.float64, ndmin=2) * (self._hi - self._lo) + self._lo
        for j, p in enumerate(self.config.parameters):
            if p.log_scale:
                x[:, j] = np.exp(x[:, j])
        return x

    # ------------------------------------------------------------ candidates
    def candidates(self, last: np.ndarray) -> np.ndarray:
        """Physical candidates within the ramp box of ``last`` and the search box."""
        cfg = self.config
        lows = np.array(
            [max(p.low, v - p.max_step) for p, v in zip(cfg.parameters, last, strict=True)]
        )
        highs = np.array(
            [min(p.high, v + p.max_step) for p, v in zip(cfg.parameters, last, strict=True)]
        )
        n = cfg.n_candidates
        pts = lows + self._sobol.random(n) * (highs - lows)
        corners = [lows, highs, np.clip(last, lows, highs)]
        return np.vstack([pts, *corners])

    # ------------------------------------------------------------ models
    def _fit(self, key: str, x: torch.Tensor, y: torch.Tensor, standardize: bool):
        """Fit (warm-started) one GP; ``standardize=False`` marks the damage model."""
        bounds = torch.tensor([[0.0] * x.shape[-1], [1.0] * x.shape[-1]], dtype=x.dtype)
        with warnings.catch_warnings():
            # the damage model is deliberately not standardized: its prior mean is fixed
            warnings.simplefilter("ignore", InputDataWarning)
            model = SingleTaskGP(
                x,
                y,
                # fixed small noise for damage: otherwise the fit explains the jump from
                # "no damage" to "damage" as noise and the bound never tightens
                train_Yvar=None if standardize else torch.full_like(y, DAMAGE_NOISE_VAR),
                input_transform=Normalize(x.shape[-1], bounds=bounds),
                outcome_transform=Standardize(1) if standardize else None,
            )
        if not standardize:
            # Unknown = 50 % damage (logit 0): unexplored regions are unsafe by construction.
            model.mean_module.constant.data.fill_(0.0)
            model.mean_module.raw_constant.requires_grad_(False)
            # Short correlation lengths: evidence of safety must not reach far (≤ 15 % of the
            # search range), so the safe set grows in small steps from measured points.
            model.covar_module.register_constraint(
                "raw_lengthscale", Interval(0.02, DAMAGE_MAX_LENGTHSCALE)
            )
            model.covar_module.lengthscale = 0.5 * DAMAGE_MAX_LENGTHSCALE
        old = self._state.get(key)
        if old is not None:  # warm start from the last fit
            try:
                model.load_state_dict(old, strict=False)
            except RuntimeError:
                pass
        mll = ExactMarginalLogLikelihood(model.likelihood, model)
        try:
            fit_gpytorch_mll(mll, optimizer_kwargs={"options": {"maxiter": 75}})
        except Exception:  # noqa: BLE001 - a failed fit keeps the prior / warm start
            pass
        self._state[key] = {k: v for k, v in model.state_dict().items() if "train" not in k}
        model.eval()
        return model

    def _clean(self, settings: np.ndarray, scores: dict[str, np.ndarray]):
        cfg = self.config
        ok = np.isfinite(scores[cfg.objective]) & np.isfinite(scores["damage_prob"])
        for c in cfg.constraints:
            ok &= np.isfinite(scores[c.score])
        if not ok.any():
            raise NoSafeCandidate("no successful measurement to learn from yet")
        x = torch.tensor(self.to_model(settings))[torch.from_numpy(ok)]
        return x, {k: np.asarray(v, dtype=np.float64)[ok] for k, v in scores.items()}

    def safe_set(
        self, settings: np.ndarray, scores: dict[str, np.ndarray], candidates: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Which physical ``candidates`` are safe, and their damage upper bound (probability).

        Failed measurements (NaN scores) are skipped for fitting.
        """
        cfg = self.config
        x, sc = self._clean(settings, scores)
        cand = torch.tensor(self.to_model(candidates))
        y_dmg = torch.tensor(logit(sc["damage_prob"]) / LOGIT_SCALE)[:, None]
        dmg = self._fit("damage", x, y_dmg, False)
        with torch.no_grad():
            post = dmg.posterior(cand)
            ucb = (post.mean + cfg.beta * post.variance.clamp_min(1e-12).sqrt()).squeeze(-1)
        ucb = ucb * LOGIT_SCALE
        safe = ucb <= float(logit(cfg.damage_bound))
        for c in cfg.constraints:
            m = self._fit(f"c:{c.score}", x, torch.tensor(sc[c.score])[:, None], True)
            with torch.no_grad():
                p = m.posterior(cand)
                sd = p.variance.clamp_min(1e-12).sqrt().squeeze(-1)
                mu = p.mean.squeeze(-1)
            if c.sense == "max":
                safe &= mu + cfg.beta * sd <= c.bound
            else:
                safe &= mu - cfg.beta * sd >= c.bound
        return safe.numpy(), 1.0 / (1.0 + np.exp(-ucb.numpy()))

    def propose(
        self, settings: np.ndarray, scores: dict[str, np.ndarray], last: np.ndarray
    ) -> Proposal:
        """Next safe settings.

        Parameters
        ----------
        settings : (n, d) array
            Measured settings (physical units), in parameter order.
        scores : dict of (n,) arrays
            Score fields per measurement; NaN marks a failed measurement.
        last : (d,) array
            The settings the devices are at now (ramp origin).

        Raises
        ------
        NoSafeCandidate
            When no candidate passes the safety bound and the constraints, or none is
            expected to improve the objective.
        """
        cfg = self.config
        cand_phys = self.candidates(np.asarray(last, dtype=np.float64))
        safe, dmg_ucb = self.safe_set(settings, scores, cand_phys)
        n_safe = int(safe.sum())
        if n_safe == 0:
            raise NoSafeCandidate(
                f"none of {len(cand_phys)} candidates within the ramp limit is safe "
                f"(damage bound δ = {cfg.damage_bound}, β = {cfg.beta})"
            )
        x, sc = self._clean(settings, scores)
        obj = self._fit("objective", x, torch.tensor(sc[cfg.objective])[:, None], True)
        acqf = qLogNoisyExpectedImprovement(obj, X_baseline=x, prune_baseline=True)
        choices = torch.tensor(self.to_model(cand_phys[safe]))
        with torch.no_grad():
            values = acqf(choices[:, None, :])
        k = int(torch.argmax(values))
        value = float(values[k])
        if value < np.log(1e-6):
            raise NoSafeCandidate(
                f"no safe candidate is expected to improve the objective (log EI {value:.1f})"
            )
        phys = cand_phys[safe][k]
        return Proposal(
            settings=dict(zip(self.names, (float(v) for v in phys), strict=True)),
            damage_ucb=float(dmg_ucb[safe][k]),
            acquisition=value,
            n_safe=n_safe,
            n_candidates=len(cand_phys),
        )
