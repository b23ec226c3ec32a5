"""What the measurements say: the safety models fitted on them, and their predictions.

:func:`gather` fits, in this order, the heating model (where the heating expansion is on and
the scores have heating), the damage model (over the predicted heating once the heating model
exists) and one model per score constraint, all warm from a :class:`~.fitting.GPState`, and
returns them as :class:`Evidence` with the new state. It changes nothing else. The rules
(:mod:`.rules`) judge :class:`Candidates` by it.

Failed measurements (NaN scores) are kept in the record but cannot train a GP; each model is
fitted on the observations where its outcome is finite.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

import gpytorch
import numpy as np
import torch
from botorch.models import SingleTaskGP
from botorch.posteriors import GPyTorchPosterior
from gpytorch.distributions import MultivariateNormal
from linear_operator.operators import DiagLinearOperator

from ..config import CampaignConfig
from ..errors import ModelFittingError, NoModelError, NoSafeCandidate
from .coordinates import SearchSpace
from .fitting import GPState, fit
from .models import LOGIT_SCALE, ConstraintGP, DamageGP, HeatingGP, logit

HEATING_VALID_PROGRESS = 0.07
"""Progress at and above which a frame's Debye–Waller figure is no heating reading: the first
percent of transformation already distorts the Bragg intensities (on the shipped scorer, frames
with x ≈ 0.03–0.06 read progress 0.09–0.16 and about twice the heating of an untransformed frame
at the same absorbed fluence), which would make the resonant wavelength look strongly absorbing
just where the last push is needed. Such frames count with the heating the cooler frames
predict for them."""
HEATING_NOISE = 0.001
"""Å²: noise level of the apparent Δ⟨u²⟩ of one frame (the floor of a heating reading)."""
DAMAGE_HEATING_RANGE = (HEATING_NOISE, 0.1)
"""Å²: the range over which the damage model's predicted-heating input is scaled to [0, 1]."""
CAUSED_DAMAGE = 0.5
"""A shot whose attributed damage probability reaches this caused damage."""
DAMAGE_CHECKED = "damage_checked"
"""Score column (1 or 0 per shot, optional): whether a probe-only frame right after the shot
(``check_frames``) saw its spot. Only such shots count as unharmed for
:attr:`Candidates.unharmed_fluence`: a pumped frame can read a hurt spot as undamaged. Without
the column every shot counts (the caller's ``damage_prob`` is then taken as checked)."""
SAME_WAVELENGTH_NM = 2.0
"""Pump wavelengths this close count as one for :attr:`Candidates.unharmed_fluence`: an
absorbance line is tens of nm wide, so over 2 nm the absorbed energy per fluence stays put."""


def marginal(gp: SingleTaskGP, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior mean and standard deviation of the single-output ``gp`` at each row of ``x``
    (n, d), both shaped (n,).

    The same means and variances as the joint posterior's mean and diagonal, without the
    n × n covariance that a joint posterior builds and the safe set never uses (at the ~1,800
    points of a safe set that covariance was two thirds of a warm proposal). From gpytorch's
    own caches of the exact posterior (the training targets' weights and a Cholesky root of
    the inverse training covariance): per point, the cross-covariance to the training inputs
    times each, then the outcome transform undone as ``posterior`` does. Beyond
    ``max_cholesky_size`` training points gpytorch's root would be a Lanczos approximation
    (variances too small, an unsafe error), so each point is asked as a one-point posterior.
    """
    with torch.no_grad():
        if gp.train_inputs[0].shape[-2] > gpytorch.settings.max_cholesky_size.value():
            post = gp.posterior(x.unsqueeze(-2))
            return post.mean.reshape(-1), post.variance.reshape(-1).clamp_min(0).sqrt()
        gp.eval()
        if gp.prediction_strategy is None:
            gp.posterior(x[:1])  # makes the caches
        strategy = gp.prediction_strategy
        xt = gp.transform_inputs(x)
        cross = gp.covar_module(xt, gp.train_inputs[0]).to_dense()
        mean = gp.mean_module(xt) + cross @ strategy.mean_cache
        var = gp.covar_module(xt, diag=True) - (cross @ strategy.covar_cache).pow(2).sum(-1)
        floor = gpytorch.settings.min_variance.value(var.dtype)
        post = GPyTorchPosterior(MultivariateNormal(mean, DiagLinearOperator(var.clamp_min(floor))))
        if getattr(gp, "outcome_transform", None) is not None:
            post = gp.outcome_transform.untransform_posterior(post)
        return post.mean.reshape(-1), post.variance.reshape(-1).clamp_min(0).sqrt()


class ScoreBound(NamedTuple):
    """A constraint on a score: ``scores[score] <= bound`` (``sense="max"``) or ``>=``
    (``"min"``); ``key`` names its GP."""

    score: str
    key: str
    bound: float
    sense: str

    @property
    def unit(self) -> float:
        """The constraint's model unit: a third of the bound (at least 1e-3 / 3)."""
        return max(abs(self.bound), 1e-3) / 3.0


def heating_readings(scores: dict[str, np.ndarray]) -> np.ndarray:
    """The ``heating`` scores that read lattice heating, NaN elsewhere.

    A frame with progress at or above :data:`HEATING_VALID_PROGRESS` (or without a progress
    reading where the scores have progress) shows a transforming lattice, whose Debye–Waller
    figure is not heating.

    Parameters
    ----------
    scores : dict of (n,) arrays
        Score fields per measurement; must hold ``heating``.

    Returns
    -------
    (n,) array
        Heating readings, NaN where the frame is no heating reading.
    """
    h = np.array(scores["heating"], dtype=np.float64)
    if "progress" in scores:
        prog = np.asarray(scores["progress"], dtype=np.float64)
        h[~(np.nan_to_num(prog, nan=1.0) < HEATING_VALID_PROGRESS)] = np.nan
    return h


def learned_heating_limit(heating: np.ndarray, damage: np.ndarray, config: CampaignConfig) -> float:
    """The heating limit of :class:`~.rules.HeatingLimit`: ``heating_margin`` × the lowest
    ``heating`` of a shot that caused damage (inf while none has), at most ``heating_max``."""
    cap = float("inf") if config.heating_max is None else float(config.heating_max)
    h = np.asarray(heating, dtype=np.float64)
    d = np.asarray(damage, dtype=np.float64)
    hurt = np.isfinite(h) & np.isfinite(d) & (d >= CAUSED_DAMAGE)
    if not hurt.any():
        return cap
    return min(cap, config.heating_margin * float(np.min(np.maximum(h[hurt], 0.0))))


@dataclass(frozen=True, eq=False)
class HeatingModel:
    """The fitted heating GP (log heating over :meth:`SearchSpace.heating_features`)."""

    gp: SingleTaskGP
    space: SearchSpace

    def posterior(self, settings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation of log(heating) at physical ``settings`` (n, d)."""
        settings = np.array(settings, dtype=np.float64, ndmin=2)
        mean, sd = marginal(self.gp, torch.tensor(self.space.heating_features(settings)))
        return mean.numpy(), sd.numpy()


def damage_features(
    space: SearchSpace,
    heating: HeatingModel | None,
    settings: np.ndarray,
    heating_mean: np.ndarray | None = None,
) -> np.ndarray:
    """Inputs of the damage model for physical ``settings`` (n, d), scaled to [0, 1].

    The sample-side model coordinates, with the fluence column replaced by the heating
    model's mean log heating (scaled over :data:`DAMAGE_HEATING_RANGE`) once that model exists:
    damage depends on the absorbed energy, so damage-free shots at a strongly absorbing
    wavelength vouch for the same absorbed energy at a weakly absorbing one. ``heating_mean``:
    that mean at ``settings`` when the caller has it already.
    """
    settings = np.array(settings, dtype=np.float64, ndmin=2)
    u = space.sample_side(space.to_model(settings))
    if heating is None or space.fluence is None:
        return u
    mean = heating.posterior(settings)[0] if heating_mean is None else heating_mean
    lo, hi = np.log(DAMAGE_HEATING_RANGE[0]), np.log(DAMAGE_HEATING_RANGE[1])
    u[:, space.fluence] = (mean - lo) / (hi - lo)
    return u


@dataclass(frozen=True, eq=False)
class Evidence:
    """The fitted safety models and the figures the rules take from the measurements.

    Attributes
    ----------
    space : SearchSpace
    settings : (n, d) array
        Measured settings.
    damage_prob : (n,) array
        Damage each measured setting caused (NaN: unknown).
    damage : SingleTaskGP
        The damage GP (:class:`~.models.DamageGP`).
    heating_used : bool
        True when the heating rules apply (``heating_growth`` set, heating scores given).
    heating : HeatingModel or None
        The heating GP; None without a damage-free heating reading (or heating unused).
    hottest : float
        Heating credited to the hottest damage-free shot (NaN without a heating model).
    heating_limit : float
        :func:`learned_heating_limit` (NaN when the heating rules do not apply).
    constraints : tuple of (ScoreBound, SingleTaskGP or None)
        Each constraint's GP, None where no measurement has a finite score.
    failures : tuple of ModelFittingError
        The fits that failed (their models kept warm or prior hyperparameters).
    checked : (n,) bool array or None
        Whether each shot's check frame saw its spot (:data:`DAMAGE_CHECKED`); None: every
        shot counts as checked.
    """

    space: SearchSpace
    settings: np.ndarray
    damage_prob: np.ndarray
    damage: SingleTaskGP
    heating_used: bool
    heating: HeatingModel | None
    hottest: float
    heating_limit: float
    constraints: tuple[tuple[ScoreBound, SingleTaskGP | None], ...]
    failures: tuple[ModelFittingError, ...]
    checked: np.ndarray | None = None

    def constraint_model(self, index: int) -> SingleTaskGP | None:
        """The GP of the ``index``-th score constraint (None: no finite score yet). Two
        constraints on one score share a model key but each has its own fit."""
        return self.constraints[index][1]

    def heating_posterior(self, settings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation of log(heating) at physical ``settings``.

        Raises
        ------
        NoModelError
            If no heating model was built.
        """
        if self.heating is None:
            raise NoModelError("no heating model: the safe set had no damage-free heating reading")
        return self.heating.posterior(settings)

    def damage_features(self, settings: np.ndarray, heating_mean=None) -> np.ndarray:
        """:func:`damage_features` with this evidence's heating model."""
        return damage_features(self.space, self.heating, settings, heating_mean)

    def damage_posterior(self, settings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Damage probability at the damage model's mean, and the standard deviation of its
        logit, at physical ``settings``."""
        mean, sd = marginal(self.damage, torch.tensor(self.damage_features(settings)))
        mean, sd = mean.numpy() * LOGIT_SCALE, sd.numpy() * LOGIT_SCALE
        return 1.0 / (1.0 + np.exp(-mean)), sd


class Candidates:
    """Candidate settings and the models' predictions there, each computed once on demand.

    Parameters
    ----------
    points : (m, d) array
        Physical settings.
    evidence : Evidence
    exempt : (m,) bool array, optional
        Candidates exempt from the heating expansion (approach steps).
    """

    def __init__(
        self, points: np.ndarray, evidence: Evidence, exempt: np.ndarray | None = None
    ) -> None:
        self.points = points
        self.evidence = evidence
        none = np.zeros(len(points), dtype=bool)
        self.exempt = none if exempt is None else np.asarray(exempt, dtype=bool)
        self._damage: dict[float, tuple[torch.Tensor, torch.Tensor]] = {}

    def __len__(self) -> int:
        return len(self.points)

    @cached_property
    def model_inputs(self) -> torch.Tensor:
        """Model coordinates of the points (inputs of the objective and constraint GPs)."""
        return torch.tensor(self.evidence.space.to_model(self.points))

    @cached_property
    def heating(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Mean and standard deviation of log(heating), None without a heating model."""
        if self.evidence.heating is None:
            return None
        return self.evidence.heating.posterior(self.points)

    @cached_property
    def unharmed_fluence(self) -> np.ndarray:
        """Per candidate, the highest fluence of a measured shot that caused no damage
        (attributed damage below :data:`CAUSED_DAMAGE`, and seen by its check frame where the
        evidence says: :data:`DAMAGE_CHECKED`) at the candidate's pump wavelength
        (within :data:`SAME_WAVELENGTH_NM`; any shot when the wavelength is not steered); NaN
        where there is none, or when the fluence is not steered.

        At one wavelength the absorbed energy is proportional to the fluence, so a candidate's
        fluence over this one is its growth in absorbed energy over a shot the sample took
        unharmed, known without the heating model (the pump's only other setting is its
        wavelength; the delay and the bunch charge change what a frame shows, not what the
        sample absorbs).
        """
        ev = self.evidence
        out = np.full(len(self.points), np.nan)
        j, w = ev.space.fluence, ev.space.wavelength
        if j is None:
            return out
        done = np.isfinite(ev.damage_prob) & (ev.damage_prob < CAUSED_DAMAGE)
        if ev.checked is not None:
            done &= ev.checked
        shots = ev.settings[done & np.all(np.isfinite(ev.settings), axis=1)]
        if not len(shots):
            return out
        if w is None:
            return np.full(len(self.points), shots[:, j].max())
        near = np.abs(self.points[:, w][:, None] - shots[None, :, w]) <= SAME_WAVELENGTH_NM
        top = np.where(near, shots[None, :, j], -np.inf).max(axis=1)
        return np.where(np.isfinite(top), top, np.nan)

    def upper_heating(self, beta: float) -> np.ndarray:
        """Upper confidence bound of the heating (Å²): exp(μ + β·σ) of log heating."""
        mean, sd = self.heating
        return np.exp(mean + beta * sd)

    def damage(self, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Damage logit at the model's mean and its upper bound μ + β·σ, per point."""
        if beta not in self._damage:
            mean = None if self.heating is None else self.heating[0]
            feats = self.evidence.damage_features(self.points, mean)
            mu, sd = marginal(self.evidence.damage, torch.tensor(feats))
            ucb = mu + beta * sd
            self._damage[beta] = (mu * LOGIT_SCALE, ucb * LOGIT_SCALE)
        return self._damage[beta]


def gather(
    space: SearchSpace,
    config: CampaignConfig,
    bounds: tuple[ScoreBound, ...],
    settings: np.ndarray,
    scores: dict[str, np.ndarray],
    state: GPState,
) -> tuple[Evidence, GPState]:
    """Fit the safety models on the measurements (module doc), warm from ``state``.

    Seeds torch's random numbers with ``config.seed + len(settings)`` first, so that model
    fits restart reproducibly.

    Parameters
    ----------
    space, config
        The search space and the configuration.
    bounds : tuple of ScoreBound
        The score constraints to model.
    settings : (n, d) array
        Measured settings (physical units), in parameter order.
    scores : dict of (n,) arrays
        ``damage_prob`` (the damage each setting caused; NaN = unknown), the constraint
        scores and, for the heating rules, ``heating`` (and ``progress``).
    state : GPState
        Warm start; not changed.

    Returns
    -------
    Evidence, GPState
        The models, and the warm-start state after their fits.

    Raises
    ------
    NoSafeCandidate
        If no measurement has a known damage probability.
    """
    cfg = config
    settings = np.array(settings, dtype=np.float64, ndmin=2)
    torch.manual_seed(cfg.seed + len(settings))
    dmg_p = np.asarray(scores["damage_prob"], dtype=np.float64)
    _, y, ok = space.training_data(settings, logit(dmg_p) / LOGIT_SCALE)
    if not ok.any():
        raise NoSafeCandidate("no successful measurement to learn from yet")
    failures: list[ModelFittingError] = []
    heating, hottest, limit = None, float("nan"), float("nan")
    used = cfg.heating_growth is not None and "heating" in scores
    if used:
        heating, hottest, limit, state, failure = _heating(space, cfg, settings, scores, state)
        failures += [failure] if failure else []
    recipe = DamageGP(space.wavelength, heating is not None and space.fluence is not None)
    x = torch.tensor(damage_features(space, heating, settings[ok]))
    damage = fit(recipe, x, y, state, cfg.refit_every)
    state = damage.state
    failures += [damage.failure] if damage.failure else []
    constraints = []
    for bound in bounds:
        values = np.asarray(scores[bound.score], dtype=np.float64) / bound.unit
        x, y, ok = space.training_data(settings, values)
        if ok.sum() < 1:
            constraints.append((bound, None))
            continue
        fitted = fit(ConstraintGP(bound.key, space.wavelength), x, y, state, cfg.refit_every)
        state = fitted.state
        failures += [fitted.failure] if fitted.failure else []
        constraints.append((bound, fitted.model))
    checked = scores.get(DAMAGE_CHECKED)
    evidence = Evidence(
        space, settings, dmg_p, damage.model, used, heating, hottest, limit,
        tuple(constraints), tuple(failures),
        None if checked is None else np.asarray(checked, dtype=np.float64) > 0.5,
    )  # fmt: skip
    return evidence, state


def _heating(space, cfg, settings, scores, state):
    """The heating model and what it credits each shot with: (model or None, hottest
    damage-free heating, learned limit, new state, fit failure or None)."""
    dmg_p = np.asarray(scores["damage_prob"], dtype=np.float64)
    h = np.asarray(scores["heating"], dtype=np.float64)
    known = np.all(np.isfinite(settings), axis=1) & np.isfinite(dmg_p)
    direct = known & np.isfinite(heating_readings(scores)) & space.at_heating_delay(settings)
    use = direct & (dmg_p < CAUSED_DAMAGE)
    if not use.any():
        return None, float("nan"), learned_heating_limit(h, dmg_p, cfg), state, None
    recipe = HeatingGP(() if space.fluence is None else (space.fluence,), space.wavelength)
    feats = space.heating_features(settings)
    y = torch.tensor(np.log(np.maximum(h[use], HEATING_NOISE)))[:, None]
    fitted = fit(recipe, torch.tensor(feats[use]), y, state, cfg.refit_every)
    model = HeatingModel(fitted.model, space)
    # Shots on a transforming lattice have no heating reading: they count with the heating the
    # direct readings predict for them. A damage-free one is credited with the lower bound of
    # that prediction, or, where a reading at its other settings and a lower fluence exists,
    # with that reading scaled by the fluence ratio (never above the predicted mean); a
    # damaging one sets the limit at its predicted mean (a lower bound far out would forbid
    # everything).
    h_eff = np.where(direct, np.maximum(np.nan_to_num(h), HEATING_NOISE), np.nan)
    h_cap = h_eff.copy()
    inferred = known & ~direct
    if inferred.any():
        mean, sd = model.posterior(settings[inferred])
        below = _scaled_from_below(space, settings, h_eff, use, np.flatnonzero(inferred))
        h_eff[inferred] = np.maximum(np.exp(mean - cfg.beta * sd), np.minimum(np.exp(mean), below))
        h_cap[inferred] = np.exp(mean)
    limit = learned_heating_limit(h_cap, dmg_p, cfg)
    clean = known & (dmg_p < CAUSED_DAMAGE) & np.isfinite(h_eff)
    return model, float(h_eff[clean].max()), limit, fitted.state, fitted.failure


def _scaled_from_below(
    space: SearchSpace,
    settings: np.ndarray,
    heating: np.ndarray,
    readings: np.ndarray,
    rows: np.ndarray,
) -> np.ndarray:
    """For each index in ``rows``: the ``heating`` of the reading (mask ``readings``) at the
    same other settings with the highest fluence not above the row's, times the fluence
    ratio (at one wavelength the absorbed energy is proportional to the fluence); 0 where no
    such reading exists."""
    out = np.zeros(len(rows))
    j = space.fluence
    if j is None:
        return out
    for k, i in enumerate(rows):
        same = readings & space.at_other_settings(settings, settings[i])
        same &= settings[:, j] <= settings[i, j]
        if same.any():
            nearest = np.flatnonzero(same)[np.argmax(settings[same, j])]
            out[k] = heating[nearest] * settings[i, j] / settings[nearest, j]
    return out
