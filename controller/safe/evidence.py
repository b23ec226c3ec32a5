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

import numpy as np
import torch
from botorch.models import SingleTaskGP

from ..config import CampaignConfig
from ..errors import ModelFittingError, NoModelError, NoSafeCandidate
from .coordinates import SearchSpace
from .fitting import GPState, fit
from .models import (
    HEATING_READING_NOISE,
    LOGIT_SCALE,
    ConstraintGP,
    DamageGP,
    HeatingGP,
    logit,
)

HEATING_VALID_PROGRESS = 0.07
"""Progress at and above which a frame's Debye–Waller figure is no heating reading: the first
percent of transformation already distorts the Bragg intensities (on the shipped scorer, frames
with x ≈ 0.03–0.06 read progress 0.09–0.16 and about twice the heating of an untransformed frame
at the same absorbed fluence), which would make the resonant wavelength look strongly absorbing
just where the last push is needed. Such frames count with the heating the cooler frames
predict for them."""
HEATING_NOISE = 0.001
"""Å²: noise level of the apparent Δ⟨u²⟩ of one frame (the floor of a heating reading), and
the highest cold reading (:func:`heating_baseline`)."""
HEATING_MIN_RISE = HEATING_NOISE / 4
"""Å²: the least rise above the cold reading the heating model takes (a frame's reading can
fall below the cold reading by noise)."""
SAME_ABSORBANCE = 0.02
"""Readings within this fraction of the wavelength range of a candidate (and at its other
sample-side settings) share its absorbance: :func:`proportional_heating` scales them."""
DAMAGE_HEATING_RANGE = (HEATING_NOISE, 0.1)
"""Å²: the range over which the damage model's predicted-heating input is scaled to [0, 1]."""
CAUSED_DAMAGE = 0.5
"""A shot whose attributed damage probability reaches this caused damage."""
DAMAGE_PRECURSOR = 0.05
"""A shot whose attributed damage probability reaches this began to damage the spot: the next
frame reads a few thousandths of vacancies (0.005 reads about 0.1; intact frames read below
0.02), well before a damage event. Such a shot vouches for nothing and sets the learned
heating limit (:func:`learned_heating_limit`)."""


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


def heating_baseline(readings: np.ndarray) -> float:
    """The cold reading b (Å²): what the scorer reads on a frame without lattice heating.

    The lowest heating reading so far, between 0 and :data:`HEATING_NOISE`: a reading is
    b plus a part proportional to the absorbed energy (the lattice's Debye–Waller rise), so
    ratios of readings close to b understate ratios of absorbed energy. The safety rules
    compare readings above b (:class:`~.rules.HeatingExpansion`, :func:`proportional_heating`,
    the initial climb).

    Parameters
    ----------
    readings : (n,) array
        Heating readings (NaN: none).
    """
    r = np.asarray(readings, dtype=np.float64)
    r = r[np.isfinite(r)]
    return float(np.clip(r.min(), 0.0, HEATING_NOISE)) if len(r) else HEATING_NOISE


def proportional_heating(
    space: SearchSpace,
    settings: np.ndarray,
    readings: np.ndarray,
    baseline: float,
    points: np.ndarray,
    beta: float,
    tolerance: float = SAME_ABSORBANCE,
) -> tuple[np.ndarray, np.ndarray]:
    """Heating at ``points`` from the warmest reading at the same absorbance: (estimate,
    upper bound), Å²; NaN where no reading shares a point's absorbance.

    At one wavelength (and one delay) the absorbed energy is proportional to the fluence, so
    a reading H_r at fluence F_r implies b + (H_r − b)·F/F_r at fluence F, whatever the
    sample's absorbance, heating per absorbed energy or reading scale: there the rules need
    no model. The upper bound widens that rise by β times its relative uncertainty (the
    reading's noise :data:`~.models.HEATING_READING_NOISE` over its rise). A reading counts
    for a point when the point's wavelength lies within :data:`SAME_ABSORBANCE` of the range
    and its other sample-side settings are the same; the warmest such reading (the most
    precise) is used.

    Parameters
    ----------
    space : SearchSpace
    settings : (n, d) array
        Measured settings (physical units).
    readings : (n,) array
        Damage-free heating readings, NaN elsewhere.
    baseline : float
        The cold reading b (:func:`heating_baseline`).
    points : (m, d) array
        Physical settings to bound.
    beta : float
        Confidence multiplier of the upper bound.
    tolerance : float
        How far (fraction of the range) a reading's wavelength may lie from a point's.
    """
    points = np.array(points, dtype=np.float64, ndmin=2)
    nan = np.full(len(points), np.nan)
    j = space.fluence
    r = np.asarray(readings, dtype=np.float64)
    use = np.isfinite(r) & (r > baseline)
    if j is None or not use.any():
        return nan, nan.copy()
    ref = np.array(settings, dtype=np.float64, ndmin=2)[use]
    rise = r[use] - baseline
    u_ref = space.sample_side(space.to_model(ref))
    u_pts = space.sample_side(space.to_model(points))
    tol = np.full(len(space.names), 1e-6)
    if space.wavelength is not None:
        tol[space.wavelength] = tolerance
    tol[j] = np.inf
    same = np.all(np.abs(u_pts[:, None, :] - u_ref[None, :, :]) <= tol, axis=2)
    has = same.any(axis=1)
    k = np.argmax(np.where(same, rise[None, :], -np.inf), axis=1)
    scaled = rise[k] * points[:, j] / ref[k, j]
    rel = HEATING_READING_NOISE / rise[k]
    estimate = np.where(has, baseline + scaled, np.nan)
    upper = np.where(has, baseline + scaled * np.exp(beta * rel), np.nan)
    return estimate, upper


def learned_heating_limit(heating: np.ndarray, damage: np.ndarray, config: CampaignConfig) -> float:
    """The heating limit of :class:`~.rules.HeatingLimit`: ``heating_margin`` × the lowest
    ``heating`` of a shot that caused damage (inf while none has), at most ``heating_max``."""
    cap = float("inf") if config.heating_max is None else float(config.heating_max)
    h = np.asarray(heating, dtype=np.float64)
    d = np.asarray(damage, dtype=np.float64)
    hurt = np.isfinite(h) & np.isfinite(d) & (d >= DAMAGE_PRECURSOR)
    if not hurt.any():
        return cap
    return min(cap, config.heating_margin * float(np.min(np.maximum(h[hurt], 0.0))))


def per_fluence(space: SearchSpace, settings: np.ndarray) -> np.ndarray:
    """log(fluence) at ``settings`` (0 without the fluence steered): the heating model fits the
    rise per unit fluence, whose log is the rise's minus this.

    At one wavelength the absorbed energy, and so the rise, is proportional to the fluence;
    what the model has to learn is the absorbance (and the reading scale), so that a step in
    fluence at a measured wavelength is predicted without extrapolating a fitted power law.
    """
    j = space.fluence
    if j is None:
        return np.zeros(len(settings))
    return np.log(np.maximum(np.asarray(settings, dtype=np.float64)[:, j], 1e-6))


def heating_rise(readings: np.ndarray, baseline: float) -> np.ndarray:
    """log of the readings' rise above the cold reading ``baseline`` (at least
    :data:`HEATING_MIN_RISE`): the heating model's outcome."""
    rise = np.asarray(readings, dtype=np.float64) - baseline
    return np.log(np.maximum(rise, HEATING_MIN_RISE))


@dataclass(frozen=True, eq=False)
class HeatingModel:
    """The fitted heating GP: log of the heating's rise above the cold reading ``baseline``
    (:func:`heating_rise`), over :meth:`SearchSpace.heating_features`.

    The rise is proportional to the absorbed energy, so the model's fluence trend is that of
    the absorbed energy and its uncertainty is one of absorbance (a factor on the rise); the
    reading itself is ``baseline`` + the rise (:meth:`reading`).
    """

    gp: SingleTaskGP
    space: SearchSpace
    baseline: float

    def posterior(self, settings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation of log(rise) at physical ``settings`` (n, d)."""
        settings = np.array(settings, dtype=np.float64, ndmin=2)
        with torch.no_grad():
            p = self.gp.posterior(torch.tensor(self.space.heating_features(settings)))
            mean = p.mean.squeeze(-1).numpy()
            sd = p.variance.clamp_min(0).sqrt().squeeze(-1).numpy()
        return mean + per_fluence(self.space, settings), sd

    def reading(self, log_rise: np.ndarray) -> np.ndarray:
        """The heating reading (Å²) of a log rise: baseline + exp(log_rise)."""
        return self.baseline + np.exp(log_rise)


def damage_features(
    space: SearchSpace,
    heating: HeatingModel | None,
    settings: np.ndarray,
    heating_mean: np.ndarray | None = None,
) -> np.ndarray:
    """Inputs of the damage model for physical ``settings`` (n, d), scaled to [0, 1].

    The sample-side model coordinates, with the fluence column replaced by the heating
    model's mean heating reading (log, scaled over :data:`DAMAGE_HEATING_RANGE`) once that
    model exists:
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
    u[:, space.fluence] = (np.log(heating.reading(mean)) - lo) / (hi - lo)
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
    readings : (n,) array
        The damage-free heating readings the heating model was fitted on (NaN elsewhere).
    baseline : float
        The cold reading b (:func:`heating_baseline`; NaN without the heating rules).
    constraints : tuple of (ScoreBound, SingleTaskGP or None)
        Each constraint's GP, None where no measurement has a finite score.
    failures : tuple of ModelFittingError
        The fits that failed (their models kept warm or prior hyperparameters).
    """

    space: SearchSpace
    settings: np.ndarray
    damage_prob: np.ndarray
    damage: SingleTaskGP
    heating_used: bool
    heating: HeatingModel | None
    hottest: float
    heating_limit: float
    readings: np.ndarray
    baseline: float
    constraints: tuple[tuple[ScoreBound, SingleTaskGP | None], ...]
    failures: tuple[ModelFittingError, ...]

    def constraint_model(self, index: int) -> SingleTaskGP | None:
        """The GP of the ``index``-th score constraint (None: no finite score yet). Two
        constraints on one score share a model key but each has its own fit."""
        return self.constraints[index][1]

    def heating_posterior(self, settings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation of log(rise above the cold reading) at physical
        ``settings`` (:class:`HeatingModel`).

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
        with torch.no_grad():
            p = self.damage.posterior(torch.tensor(self.damage_features(settings)))
            mean = p.mean.squeeze(-1).numpy() * LOGIT_SCALE
            sd = p.variance.clamp_min(0).sqrt().squeeze(-1).numpy() * LOGIT_SCALE
        return 1.0 / (1.0 + np.exp(-mean)), sd


class Candidates:
    """Candidate settings and the models' predictions there, each computed once on demand.

    Parameters
    ----------
    points : (m, d) array
        Physical settings.
    evidence : Evidence
    exempt : (m,) bool array, optional
        Candidates exempt from the heating expansion.
    """

    def __init__(
        self, points: np.ndarray, evidence: Evidence, exempt: np.ndarray | None = None
    ) -> None:
        self.points = points
        self.evidence = evidence
        none = np.zeros(len(points), dtype=bool)
        self.exempt = none if exempt is None else np.asarray(exempt, dtype=bool)
        self._damage: dict[float, tuple[torch.Tensor, torch.Tensor]] = {}
        self._proportional: dict[tuple[float, bool], tuple[np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.points)

    @cached_property
    def model_inputs(self) -> torch.Tensor:
        """Model coordinates of the points (inputs of the objective and constraint GPs)."""
        return torch.tensor(self.evidence.space.to_model(self.points))

    @cached_property
    def heating(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Mean and standard deviation of log(rise above the cold reading), None without a
        heating model."""
        if self.evidence.heating is None:
            return None
        return self.evidence.heating.posterior(self.points)

    def proportional(self, beta: float, exact: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Heating from the readings at the same absorbance (:func:`proportional_heating`):
        estimate and upper bound, NaN where none; ``exact``: from readings at exactly the
        other settings of a point (the wavelength too) only."""
        key = (beta, exact)
        if key not in self._proportional:
            e = self.evidence
            tolerance = 1e-6 if exact else SAME_ABSORBANCE
            self._proportional[key] = proportional_heating(
                e.space, e.settings, e.readings, e.baseline, self.points, beta, tolerance
            )
        return self._proportional[key]

    def mean_heating(self) -> np.ndarray:
        """The heating reading (Å²) expected: from a reading at the same absorbance where
        there is one, else at the heating model's mean."""
        estimate, _ = self.proportional(1.0)
        return np.where(
            np.isfinite(estimate), estimate, self.evidence.heating.reading(self.heating[0])
        )

    def upper_heating(self, beta: float) -> np.ndarray:
        """Upper confidence bound of the heating reading (Å²).

        At the other settings of a reading (the wavelength too), the rise scaled by the
        fluence ratio and widened by the reading's noise (:func:`proportional_heating`):
        there the absorbance is the reading's. Elsewhere the cold reading plus
        exp(μ + β·σ) of the heating model's log rise, at least what the readings within
        :data:`SAME_ABSORBANCE` imply.
        """
        mean, sd = self.heating
        _, exact = self.proportional(beta, exact=True)
        near, _ = self.proportional(beta)
        model = np.fmax(self.evidence.heating.reading(mean + beta * sd), near)
        return np.where(np.isfinite(exact), exact, model)

    def damage(self, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Damage logit at the model's mean and its upper bound μ + β·σ, per point."""
        if beta not in self._damage:
            mean = None if self.heating is None else self.heating[0]
            feats = self.evidence.damage_features(self.points, mean)
            with torch.no_grad():
                post = self.evidence.damage.posterior(torch.tensor(feats))
                sd = post.variance.clamp_min(1e-12).sqrt()
                ucb = (post.mean + beta * sd).squeeze(-1)
            self._damage[beta] = (post.mean.squeeze(-1) * LOGIT_SCALE, ucb * LOGIT_SCALE)
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
    readings, baseline = np.full(len(settings), np.nan), float("nan")
    used = cfg.heating_growth is not None and "heating" in scores
    if used:
        heating, hottest, limit, readings, state, failure = _heating(
            space, cfg, settings, scores, state
        )
        baseline = heating_baseline(readings)
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
    evidence = Evidence(
        space, settings, dmg_p, damage.model, used, heating, hottest, limit, readings,
        baseline, tuple(constraints), tuple(failures),
    )  # fmt: skip
    return evidence, state


def _heating(space, cfg, settings, scores, state):
    """The heating model and what it credits each shot with: (model or None, hottest
    damage-free heating, learned limit, the damage-free readings (NaN elsewhere), new state,
    fit failure or None)."""
    dmg_p = np.asarray(scores["damage_prob"], dtype=np.float64)
    h = np.asarray(scores["heating"], dtype=np.float64)
    known = np.all(np.isfinite(settings), axis=1) & np.isfinite(dmg_p)
    direct = known & np.isfinite(heating_readings(scores)) & space.at_heating_delay(settings)
    use = direct & (dmg_p < CAUSED_DAMAGE)
    readings = np.where(use, h, np.nan)
    if not use.any():
        return None, float("nan"), learned_heating_limit(h, dmg_p, cfg), readings, state, None
    b = heating_baseline(readings)
    j = space.fluence
    box = None if j is None else (space.parameters[j].low, space.parameters[j].high)
    recipe = HeatingGP(() if j is None else (j,), space.wavelength, box)
    feats = space.heating_features(settings)
    y = torch.tensor(heating_rise(h[use], b) - per_fluence(space, settings[use]))[:, None]
    fitted = fit(recipe, torch.tensor(feats[use]), y, state, cfg.refit_every)
    model = HeatingModel(fitted.model, space, b)
    # Shots on a transforming lattice have no heating reading: they count with the heating the
    # direct readings predict for them. A damage-free one is credited with the lower bound of
    # that prediction, or, where a reading at its other settings and a lower fluence exists,
    # with that reading scaled by the fluence ratio (never above the predicted mean); a
    # damaging one sets the limit at its predicted mean (a lower bound far out would forbid
    # everything).
    h_eff = np.where(direct, np.maximum(np.nan_to_num(h), b), np.nan)
    h_cap = h_eff.copy()
    inferred = known & ~direct
    if inferred.any():
        mean, sd = model.posterior(settings[inferred])
        below = _scaled_from_below(space, settings, h_eff, use, np.flatnonzero(inferred), b)
        lower, middle = model.reading(mean - cfg.beta * sd), model.reading(mean)
        h_eff[inferred] = np.maximum(lower, np.minimum(middle, below))
        h_cap[inferred] = middle
    limit = learned_heating_limit(h_cap, dmg_p, cfg)
    clean = known & (dmg_p < DAMAGE_PRECURSOR) & np.isfinite(h_eff)
    hottest = float(h_eff[clean].max()) if clean.any() else b
    return model, hottest, limit, readings, fitted.state, fitted.failure


def _scaled_from_below(
    space: SearchSpace,
    settings: np.ndarray,
    heating: np.ndarray,
    readings: np.ndarray,
    rows: np.ndarray,
    baseline: float,
) -> np.ndarray:
    """For each index in ``rows``: the ``heating`` of the reading (mask ``readings``) at the
    same other settings with the highest fluence not above the row's, its part above the cold
    reading ``baseline`` times the fluence ratio (at one wavelength the absorbed energy is
    proportional to the fluence); 0 where no such reading exists."""
    out = np.zeros(len(rows))
    j = space.fluence
    if j is None:
        return out
    for k, i in enumerate(rows):
        same = readings & space.at_other_settings(settings, settings[i])
        same &= settings[:, j] <= settings[i, j]
        if same.any():
            nearest = np.flatnonzero(same)[np.argmax(settings[same, j])]
            ratio = settings[i, j] / settings[nearest, j]
            out[k] = baseline + (heating[nearest] - baseline) * ratio
    return out
