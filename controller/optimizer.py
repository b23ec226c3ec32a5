"""Safe Bayesian optimization of beamline settings (BoTorch / GPyTorch).

Safety model (hard, not soft):

* Proposals lie inside the search box **and** within the ramp limit (``max_step`` per
  parameter) of the ramp origin (the last measured point, or after damage the last
  damage-free one), so the devices are only ever ramped.
* Damage is modelled by its own GP on logit(damage probability) with a *fixed zero prior mean*:
  where nothing was measured the model says "50 % damage", which is unsafe. A candidate is
  admitted only if the upper confidence bound μ + β·σ of the damage logit is ≤ logit(δ), so
  the safe set grows outward from measured low-damage points (SafeOpt-style expansion) and
  shrinks around damaging ones. Once the heating model (below) exists, the damage GP works
  over the *predicted heating* instead of the fluence (and the other parameters, with
  correlations over the whole wavelength range): damage follows the absorbed energy, so
  damage-free shots vouch for the same absorbed energy at another wavelength, while a
  fluence far above the measured ones at a wavelength whose absorbance is unknown stays
  fenced by the heating model's upper bound.
* Score constraints (e.g. line distance) are modelled the same way and must hold at the upper
  (or lower) confidence bound.
* Heating (a damage precursor): the scorer's apparent Debye–Waller Δ⟨u²⟩ rises with the
  absorbed fluence long before damage shows. A GP on log(heating) over (log fluence, other
  parameters) with a prior mean linear in log fluence only (no trend in the wavelength: an
  absorbance spectrum is no straight line, so an unmeasured wavelength gets the average
  absorbance and the full prior uncertainty) and short wavelength correlations (exciton
  lines) predicts it; its upper bound must stay below ``heating_growth`` × the hottest damage-free
  frame + ``heating_floor`` (the safe set grows in small steps of absorbed energy, whatever
  the absorbance at a wavelength), and once a setting has caused damage, below
  ``heating_margin`` × the lowest heating that did: damage depends on the absorbed energy, so
  the threshold learned at one wavelength holds at all of them.
* The safe set is evaluated over the whole search box, not only within reach. Among its
  points only the highest fluence at each setting of the other parameters is considered
  (``monotone_fluence``: the transformation grows with the excitation), and while the
  objective is flat (nothing has transformed yet) only those whose predicted heating is
  within ``explore_excitation`` of the hottest: the search looks for the wavelength with a low
  threshold at the highest safe absorbed energy, never with cold shots that cannot show it;
  there qLogNoisyExpectedImprovement picks the target, or, where it expects less than 1 % of the
  gap to the target, it explores at the most uncertain point that could still be the best
  (upper bound μ + 2σ above the best lower bound), as SafeOpt does. The objective's
  GP has a linear prior mean, so where nothing was measured it extrapolates the trend with
  the excitation instead of reverting to the average. A target beyond the ramp limit is
  approached through the safe set: the proposal is the safe point within reach closest to it
  (``travel`` is then True), so the search can leave a local optimum (a strongly absorbing
  off-resonance wavelength) without a jump. If no candidate within reach is safe,
  :class:`NoSafeCandidate` says so instead of gambling.
* Initial climb (``climb_heating``): the heating expansion judges a step by the hottest frame
  so far, and a frame at the safe start reads heating at the frame noise (≈ 0.001 Å²), so
  wavelength steps taken from there creep in fluence and cannot show a transformation. Until
  a frame of an untransformed lattice reads a heating of ``climb_heating`` (a transformation's
  onset lifts the Debye–Waller figure too, and is a reason to climb on), something
  transforms clearly (objective spread ``objective_scale``), a frame is damaged or the
  campaign has moved, each shot therefore stays at the start's other settings and
  goes to the highest fluence there that passes every check above (mode ``"climb"``); at one
  wavelength the absorbed energy is proportional to the fluence, so this is the cheapest way
  to a heating reading that lets the later steps carry a useful excitation.
* Approach step (``approach_width``): a partly transformed frame carries no heating reading, so
  the heating expansion grows past it only by what it vouches for (the model's lower bound, or
  the clean reading below it at the same other settings scaled by the fluence ratio, never above
  the model's mean) and the climb stalls a few percent short of the target. After a damage-free
  frame with progress p (0.15 ≤ p < target) the next shot goes to the same settings with the
  fluence scaled by (1 + w·logit x*)/(1 + w·logit p), the ratio that a transition of relative
  width w in absorbed energy needs to reach x* = (1 + target)/2 (≤ 1.5×, within the ramp limit):
  at one wavelength the absorbed energy is proportional to the fluence, so the step's growth is
  known without the heating model. The damage model, the constraints and a learned damage limit
  still apply to it. It is taken only where the model predicts that the step, cut by the ramp
  limit, still reaches the target (off the resonance the threshold lies far above the frame's
  fluence and the damage threshold comes first: in traces every ramp-cut step started at 7–10
  mJ/cm² off resonance and raised the spot's vacancy), and once per climb: if the frame after it
  still falls short, the transition is slower than assumed or began above the damage threshold
  (the flank of the band) and the heating expansion decides again.

* Settings that do not change what the pump does (``PROBE_SETTINGS``: the bunch charge) are
  no inputs of the heating and damage models, so evidence at one charge holds at every
  charge. With the pump-probe delay steered, frames before the safe start's delay are no
  heating readings: before time zero and while the lattice heats, the Debye–Waller figure
  shows less than the pump deposited.

Failed measurements (NaN scores) are kept in the record but cannot train a GP; each model is
fitted on the observations where its outcome is finite.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
from botorch.acquisition.logei import qLogNoisyExpectedImprovement
from botorch.exceptions import InputDataWarning
from botorch.fit import fit_gpytorch_mll
from botorch.models import SingleTaskGP
from botorch.models.transforms import Normalize, Standardize
from botorch.sampling import SobolQMCNormalSampler
from gpytorch.constraints import Interval
from gpytorch.means import LinearMean, Mean
from gpytorch.mlls import ExactMarginalLogLikelihood
from scipy.stats.qmc import Sobol

from .config import CampaignConfig

LOGIT_CLIP = 1e-3
LOGIT_SCALE = float(np.log((1 - LOGIT_CLIP) / LOGIT_CLIP))  # damage GP works on logit / 6.9
WAVELENGTH_MAX_LENGTHSCALE = 0.25  # of the search range, for objective and score GPs
DAMAGE_MAX_LENGTHSCALE = 0.25  # in units of the search range
# Above this progress the Debye–Waller figure is not heating: the first percent of
# transformation already distorts the Bragg intensities. On the shipped scorer, frames with
# x ≈ 0.03–0.06 read progress 0.09–0.16 and about twice the heating of an untransformed
# frame at the same absorbed fluence (untransformed frames read 0.02–0.06 up to ε ≈ 0.3),
# which would make the resonant wavelength look strongly absorbing just where the last push
# is needed. Such frames count with the heating the cooler frames predict for them.
HEATING_VALID_PROGRESS = 0.07
HEATING_NOISE = 0.001  # Å²: noise level of the apparent Δ⟨u²⟩ of one frame
# Longest wavelength correlation of the heating model, of the search range (72 nm by default):
# exciton lines are ~50–80 nm wide; with no wavelength trend in the prior mean, readings 50–70 nm
# away must still inform the absorbance at a band where every frame transforms (0.08: success
# 82.5 % vs 88.3 % over 120 samples, campaigns without damage 98.3 % vs 96.7 %).
ABSORBANCE_LENGTHSCALE = 0.12
# The damage model works over the predicted log heating (the absorbed energy, on which damage
# depends) scaled over this range (Å²), and the other parameters; its wavelength correlation
# may span the whole search range (what the wavelength changes is already in the heating).
DAMAGE_HEATING_RANGE = (HEATING_NOISE, 0.1)
DAMAGE_WAVELENGTH_LENGTHSCALE = 1.0
HEATING_LOG_SCALE = 0.5  # log(heating) spreading less is flat: prior spread 1 (a factor e)
FRONTIER_BINS = 16  # cells per other parameter when picking the highest safe fluence
EI_NEGLIGIBLE = 0.01  # expected improvement below 1 % of the gap to the target: explore
EXPLORE_BETA = 2.0  # optimism of the exploration step
LADDER_POINTS = 16  # latest measured settings that get a fluence ladder among the targets
LADDER_STEPS = 48  # rungs of that ladder across the fluence range
FIT_MAX_POINTS = 60  # hyperparameters are fitted on at most the latest this many points
CONSTRAINT_FLAT_SPREAD = 0.3  # constraint data spreading less than 0.1 × bound count as flat
DAMAGE_NOISE_VAR = 0.01  # (0.1 in scaled logit)²: the scorer's damage probability is precise
# The approach step starts from frames that read at least this progress: the shipped scorer reads
# 0.09–0.16 at x ≈ 0.03–0.06 (see HEATING_VALID_PROGRESS), where the step would be a guess.
APPROACH_FROM = 0.15
APPROACH_MAX_RATIO = 1.5  # largest fluence ratio of one approach step
# Settings that act on the probe, not on the sample: the electron bunch charge changes a
# frame's counts, noise and space-charge blur, while the energy a monolayer takes from the
# MeV electrons is negligible next to the pump's. The heating and damage models (what the
# pump does to the sample) therefore ignore them; the objective and constraint models, which
# read the frames, keep them.
PROBE_SETTINGS = ("charge",)
# A steered pump-probe delay changes what a frame's Debye-Waller figure shows: before time
# zero nothing, during the lattice heating (a few ps) part of what the pump deposited. Frames
# at delays before the safe start's are therefore no heating readings (they count like partly
# transformed ones, with the heating the readings predict for their pump settings); at the
# safe start's delay and later the lattice has heated at least as much. (Measured on 200-219
# and not kept: only frames at the safe start's delay as readings, 55 % success against 100 %:
# once the search left that delay the heating frontier stopped growing.)


class NoSafeCandidate(RuntimeError):
    """No candidate inside the safe set (or none expected to improve): stop, do not gamble.

    Parameters
    ----------
    message : str
        Why; where the safe set came out empty, it names the rules that excluded the
        candidates within reach.
    rules : mapping of str to int, optional
        Per rule of the safe set (:class:`SafetyRule` ``name``), how many candidates within
        reach it excluded; empty where the refusal has another cause.
    """

    def __init__(self, message: str, rules: Mapping[str, int] | None = None) -> None:
        super().__init__(message)
        self.rules: dict[str, int] = dict(rules or {})


@dataclass(frozen=True, eq=False)
class SafetyRule:
    """One rule of the safe set and what it made of each candidate (see
    :attr:`SafeOptimizer.rules`).

    ``excluded`` marks the candidates the rule refused; ``predicted`` (the model's mean) and
    ``bound`` (the confidence bound compared with the rule's limit), where given, are in the
    rule's units (``unit``) per candidate; ``best`` says which end of them is closest to
    passing.
    """

    name: str
    excluded: np.ndarray
    predicted: np.ndarray | None = None
    bound: np.ndarray | None = None
    best: str = "lowest"
    unit: str = ""

    def describe(self, rows: np.ndarray | slice) -> str:
        """``"<name> excludes every candidate (lowest predicted …, lowest upper bound …)"``
        (or ``<k> of <n> candidates``) over the candidates ``rows``."""
        excluded = self.excluded[rows]
        n, k = len(excluded), int(excluded.sum())
        text = f"{self.name} excludes {'every candidate' if k == n else f'{k} of {n}'}"
        if self.predicted is None or n == 0:
            return text
        pick = np.nanmin if self.best == "lowest" else np.nanmax
        unit = f" {self.unit}" if self.unit else ""
        figures = [f"{self.best} predicted {pick(self.predicted[rows]):.3g}{unit}"]
        if self.bound is not None:
            kind = "upper" if self.best == "lowest" else "lower"
            figures.append(f"{self.best} {kind} bound {pick(self.bound[rows]):.3g}{unit}")
        return f"{text} ({', '.join(figures)})"


def heating_readings(scores: dict[str, np.ndarray]) -> np.ndarray:
    """The ``heating`` scores that read lattice heating, NaN elsewhere.

    A frame with progress at or above ``HEATING_VALID_PROGRESS`` (or without a progress
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
    heating_limit: float = float("nan")
    models: dict[str, dict[str, float]] = field(default_factory=dict)
    target: dict[str, float] = field(default_factory=dict)
    """Where the acquisition wants to go; differs from ``settings`` while travelling there."""
    mode: str = "improve"
    """Why this point: ``improve`` (expected improvement), ``explore`` (nothing safe is
    expected to improve: the most uncertain candidate that could still be best), ``climb``
    (the initial climb in fluence at the safe start's other settings) or ``approach`` (the
    approach step after a partly transformed frame); ``+travel`` when the
    settings are a ramp step towards a target beyond the ramp limit."""


class SafeOptimizer:
    """Proposes the next settings from (settings, scores) observations.

    Parameters
    ----------
    config : CampaignConfig
    extra_bounds : mapping of str to float, optional
        Constraints computed by the caller (e.g. from Python callables), ``scores[name] <=
        bound``; modelled and enforced like the configured ones.
    """

    def __init__(
        self, config: CampaignConfig, extra_bounds: Mapping[str, float] | None = None
    ) -> None:
        self.config = config
        # (scores key, GP key, bound, sense) of every constraint the safe set must respect
        self.constraints = [(c.score, f"c:{c.score}", c.bound, c.sense) for c in config.constraints]
        self.constraints += [
            (name, f"x:{name}", float(bound), "max") for name, bound in (extra_bounds or {}).items()
        ]
        self.names = [p.name for p in config.parameters]
        lo = [self._to_unit_raw(p, p.low) for p in config.parameters]
        hi = [self._to_unit_raw(p, p.high) for p in config.parameters]
        self._lo, self._hi = np.array(lo), np.array(hi)
        # the search box and the ramp limits in physical units
        self._box_low = np.array([p.low for p in config.parameters])
        self._box_high = np.array([p.high for p in config.parameters])
        self._steps = np.array([p.max_step for p in config.parameters])
        self._sobol = Sobol(len(self.names), seed=config.seed)
        self._sobol_global = Sobol(len(self.names), seed=config.seed + 1)
        self._state: dict[str, dict] = {}
        self._fitted_at: dict[str, int] = {}
        self.summaries: dict[str, dict[str, float]] = {}
        self.mode = "improve"
        self.travel = False
        self.heating_model: SingleTaskGP | None = None  # set by safe_set when heating is used
        self.damage_model: SingleTaskGP | None = None  # set by safe_set
        # what each rule of the last safe_set excluded (reported when nothing is safe)
        self.rules: list[SafetyRule] = []
        self._heating_rules: list[SafetyRule] = []

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
        last = np.asarray(last, dtype=np.float64)
        lows = np.maximum(self._box_low, last - self._steps)
        highs = np.minimum(self._box_high, last + self._steps)
        pts = lows + self._sobol.random(self.config.n_candidates) * (highs - lows)
        corners = [lows, highs, np.clip(last, lows, highs)]
        return np.vstack([pts, *corners])

    def global_candidates(self, settings: np.ndarray | None = None) -> np.ndarray:
        """Physical candidates over the whole search box (possible targets of travel).

        Sobol points, plus a fluence ladder at the other settings of the latest measured
        points, so that the highest safe fluence where data exist is found precisely.
        """
        lows, highs = self._box_low, self._box_high
        pts = [lows + self._sobol_global.random(self.config.n_candidates) * (highs - lows)]
        if settings is not None and len(settings) and "fluence" in self.names:
            j = self.names.index("fluence")
            recent = np.clip(np.asarray(settings, dtype=np.float64)[-LADDER_POINTS:], lows, highs)
            recent = recent[np.all(np.isfinite(recent), axis=1)]
            pts.append(self.fluence_ladder(recent, lows[j], highs[j]))
        return np.vstack(pts)

    def at_other_settings(
        self, settings: np.ndarray, point: np.ndarray, tol: float = 1e-9
    ) -> np.ndarray:
        """Mask of the rows of ``settings`` (n, d) that stand at the settings of ``point``
        (d,) in every parameter but the fluence (relative and absolute tolerance ``tol``)."""
        j = self.names.index("fluence")
        others = [i for i in range(len(self.names)) if i != j]
        close = np.isclose(
            np.array(settings, ndmin=2)[:, others], np.asarray(point)[others], rtol=tol, atol=tol
        )
        return np.all(close, axis=1)

    def frontier(self, cand: np.ndarray, bins: int = FRONTIER_BINS) -> np.ndarray:
        """Indices of the highest-fluence candidates per cell of the other parameters.

        The transformation grows with the excitation, so at given other settings the best
        safe point is the one with the most fluence: these are the points that both can
        improve the objective and expand the safe set (SafeOpt's maximizers and expanders
        coincide on this edge).
        """
        j = self.names.index("fluence")
        others = [i for i in range(len(self.names)) if i != j]
        if not others or len(cand) == 0:
            return np.arange(len(cand)) if len(cand) == 0 else np.array([np.argmax(cand[:, j])])
        u = self.to_model(cand)[:, others]
        lo, hi = u.min(axis=0), u.max(axis=0)
        cell = np.floor((u - lo) / np.maximum(hi - lo, 1e-12) * (bins - 1e-9)).astype(int)
        keys = np.ravel_multi_index(cell.T, (bins,) * len(others))
        best: dict[int, int] = {}
        for i, key in enumerate(keys):
            if key not in best or cand[i, j] > cand[best[key], j]:
                best[key] = i
        return np.array(sorted(best.values()))

    # ------------------------------------------------------------ models
    def _needs_fit(self, key: str, n: int) -> bool:
        last = self._fitted_at.get(key)
        if last is None or n <= 20:
            return True
        return n - last >= self.config.refit_every

    def _build(
        self,
        key: str,
        x: torch.Tensor,
        y: torch.Tensor,
        standardize: bool,
        scale: float,
        linear_mean: bool | tuple[int, ...],
        wavelength_scale: float,
    ) -> SingleTaskGP:
        """One GP on (x, y) with its constraints, warm-started from the last fit of ``key``."""
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
                outcome_transform=Standardize(1, min_stdv=scale) if standardize else None,
                mean_module=_mean(linear_mean, x.shape[-1]),
            )
        if standardize and "wavelength" in self.names:
            # Photon-energy-selective features (exciton lines, the resonance band) are narrow:
            # a finding at one wavelength says little about another 100 nm away.
            j = self.names.index("wavelength")
            upper = torch.full((x.shape[-1],), 100.0, dtype=x.dtype)
            upper[j] = wavelength_scale or WAVELENGTH_MAX_LENGTHSCALE
            model.covar_module.register_constraint(
                "raw_lengthscale", Interval(torch.full_like(upper, 0.01), upper)
            )
            model.covar_module.lengthscale = torch.minimum(
                model.covar_module.lengthscale.detach(), 0.5 * upper
            )
        if not standardize:
            # Unknown = 50 % damage (logit 0): unexplored regions are unsafe by construction.
            model.mean_module.constant.data.fill_(0.0)
            model.mean_module.raw_constant.requires_grad_(False)
            # Short correlation lengths: evidence of safety must not reach far (≤ 25 % of the
            # search range), so the safe set grows in small steps from measured points; over
            # predicted heating the wavelength's effect is already in that input, so the
            # wavelength may correlate across the range.
            upper = torch.full((x.shape[-1],), DAMAGE_MAX_LENGTHSCALE, dtype=x.dtype)
            if self._damage_over_heating() and "wavelength" in self.names:
                upper[self.names.index("wavelength")] = DAMAGE_WAVELENGTH_LENGTHSCALE
            model.covar_module.register_constraint(
                "raw_lengthscale", Interval(torch.full_like(upper, 0.02), upper)
            )
            model.covar_module.lengthscale = 0.5 * upper
        old = self._state.get(key)
        if old is not None:  # warm start from the last fit
            try:
                model.load_state_dict(old, strict=False)
            except RuntimeError:
                pass
        return model

    def _fit(
        self,
        key: str,
        x: torch.Tensor,
        y: torch.Tensor,
        standardize: bool,
        scale: float = 1e-8,
        linear_mean: bool | tuple[int, ...] = False,
        wavelength_scale: float = 0.0,
    ):
        """Fit (warm-started) one GP; ``standardize=False`` marks the damage model.

        ``scale`` is BoTorch's ``Standardize(min_stdv=…)``: outcomes whose standard deviation
        is below it are not scaled (their standard deviation is taken as 1, in the outcome's
        units), so while the data are flat the prior uncertainty stays at 1 instead of
        collapsing to the noise; callers choose the outcome's units so that 1 is a meaningful
        change (log heating, progress, constraints in units of a third of their bound).
        Hyperparameters are refitted at every shot up to 20 observations and then every
        ``refit_every`` shots; in between the warm hyperparameters are kept and only the data
        change (what keeps a proposal under a second at 200 observations).
        """
        build = (standardize, scale, linear_mean, wavelength_scale)
        model = self._build(key, x, y, *build)
        n = int(x.shape[0])
        if self._needs_fit(key, n):
            # Hyperparameters from the latest FIT_MAX_POINTS observations (the region the
            # search is in); the model conditions on all of them.
            fit_model = model
            if n > FIT_MAX_POINTS:
                fit_model = self._build(key, x[-FIT_MAX_POINTS:], y[-FIT_MAX_POINTS:], *build)
            mll = ExactMarginalLogLikelihood(fit_model.likelihood, fit_model)
            try:
                fit_gpytorch_mll(mll, optimizer_kwargs={"options": {"maxiter": 75}})
            except Exception:  # noqa: BLE001 - a failed fit keeps the prior / warm start
                pass
            if fit_model is not model:
                model.load_state_dict(_hyperparameters(fit_model), strict=False)
            self._fitted_at[key] = n
        self._state[key] = _hyperparameters(model)
        model.eval()
        self.summaries[key] = _summary(model, n)
        return model

    def _xy(self, settings: np.ndarray, values: np.ndarray):
        ok = np.isfinite(values) & np.all(np.isfinite(settings), axis=1)
        x = torch.tensor(self.to_model(settings[ok]))
        return x, torch.tensor(np.asarray(values, dtype=np.float64)[ok])[:, None], ok

    def _objective_values(self, scores: dict[str, np.ndarray]) -> np.ndarray:
        return np.asarray(scores.get("objective", scores[self.config.objective]), dtype=float)

    def objective_model(self, settings: np.ndarray, scores: dict[str, np.ndarray]) -> SingleTaskGP:
        """The objective's GP as :meth:`propose` uses it (linear prior mean, warm-started).

        Parameters
        ----------
        settings : (n, d) array
            Measured settings (physical units), in parameter order.
        scores : dict of (n,) arrays
            Score fields per measurement: an ``objective`` column or the config's objective
            field. Measurements whose objective is not finite are left out.

        Raises
        ------
        ValueError
            If no measurement has a finite objective.
        """
        settings = np.array(settings, dtype=np.float64, ndmin=2)
        x, y, ok = self._xy(settings, self._objective_values(scores))
        if not ok.any():
            raise ValueError(
                f"scores: none of the {len(settings)} measurements has a finite objective "
                f"({self.config.objective!r})"
            )
        return self._fit_objective(x, y)

    def _fit_objective(self, x: torch.Tensor, y: torch.Tensor) -> SingleTaskGP:
        return self._fit("objective", x, y, True, self.config.objective_scale, linear_mean=True)

    def safe_set(
        self,
        settings: np.ndarray,
        scores: dict[str, np.ndarray],
        candidates: np.ndarray,
        growth_exempt: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Which physical ``candidates`` are safe, and their damage upper bound (probability).

        Parameters
        ----------
        settings : (n, d) array
            Measured settings (physical units), in parameter order.
        scores : dict of (n,) arrays
            ``damage_prob`` (the damage each setting caused; NaN = unknown), the constraint
            score fields (and the ``extra_bounds`` names) and, for the heating expansion,
            ``heating``. NaN entries are skipped.
        candidates : (m, d) array
        growth_exempt : (m,) bool array, optional
            Candidates exempt from the heating expansion (approach steps, whose growth in
            absorbed energy is known); every other check applies to them.
        """
        cfg = self.config
        settings = np.array(settings, dtype=np.float64, ndmin=2)
        torch.manual_seed(cfg.seed + len(settings))  # model fits restart reproducibly
        cand = torch.tensor(self.to_model(candidates))
        dmg_p = np.asarray(scores["damage_prob"], dtype=np.float64)
        _, y, ok = self._xy(settings, logit(dmg_p) / LOGIT_SCALE)
        if not ok.any():
            raise NoSafeCandidate("no successful measurement to learn from yet")
        self.heating_limit = float("nan")
        self.heating_model = None
        heat_ok = heat_mean = None
        if cfg.heating_growth is not None and "heating" in scores:
            # the heating model first: the damage model works over its predictions
            heat_ok, heat_mean = self._heating_safe(
                settings, scores, candidates, dmg_p, growth_exempt
            )
        x = torch.tensor(self.damage_features(settings[ok]))
        dmg = self._fit("damage", x, y, False)
        self.damage_model = dmg
        with torch.no_grad():
            post = dmg.posterior(torch.tensor(self.damage_features(candidates, heat_mean)))
            ucb = (post.mean + cfg.beta * post.variance.clamp_min(1e-12).sqrt()).squeeze(-1)
        ucb = ucb * LOGIT_SCALE
        safe = ucb <= float(logit(cfg.damage_bound))
        rules = [
            SafetyRule(
                f"damage bound δ = {cfg.damage_bound:g} (damage probability, β = {cfg.beta:g})",
                ~safe.numpy(),
                1.0 / (1.0 + np.exp(-post.mean.squeeze(-1).numpy() * LOGIT_SCALE)),
                1.0 / (1.0 + np.exp(-ucb.numpy())),
            )
        ]
        for key, gp_key, bound, sense in self.constraints:
            # In units of a third of the bound: BoTorch's Standardize leaves outcomes whose
            # spread is below min_stdv unscaled (standard deviation taken as 1), so a GP on raw
            # values assumes a prior spread of 1 whatever the score's size; a constraint such
            # as recon_error ≤ 0.03 then blocked every candidate until the data varied. With
            # the bound as unit, the flat-data prior spread is bound/3 for every score (for
            # line_distance ≤ 3 the unit is 1: unchanged).
            unit = max(abs(bound), 1e-3) / 3.0
            values = np.asarray(scores[key], dtype=np.float64) / unit
            x, y, ok = self._xy(settings, values)
            if ok.sum() < 1:
                continue
            m = self._fit(gp_key, x, y, True, CONSTRAINT_FLAT_SPREAD)
            with torch.no_grad():
                p = m.posterior(cand)
                sd = p.variance.clamp_min(1e-12).sqrt().squeeze(-1)
                mu = p.mean.squeeze(-1)
            if sense == "max":
                passes = mu + cfg.beta * sd <= bound / unit
            else:
                passes = mu - cfg.beta * sd >= bound / unit
            safe &= passes
            sign = 1.0 if sense == "max" else -1.0
            rules.append(
                SafetyRule(
                    f"constraint {key} {'≤' if sense == 'max' else '≥'} {bound:g}",
                    ~passes.numpy(),
                    mu.numpy() * unit,
                    (mu + sign * cfg.beta * sd).numpy() * unit,
                    "lowest" if sense == "max" else "highest",
                )
            )
        if heat_ok is not None:
            safe &= heat_ok
            rules += self._heating_rules
        self.rules = rules
        return safe.numpy(), 1.0 / (1.0 + np.exp(-ucb.numpy()))

    def heating_limit_of(self, heating: np.ndarray, damage: np.ndarray) -> float:
        """Damage limit on heating: ``heating_margin`` × the lowest heating of a shot that
        caused damage (inf while no shot has), and at most the configured ``heating_max``."""
        cap = self.config.heating_max
        cap = float("inf") if cap is None else float(cap)
        h = np.asarray(heating, dtype=np.float64)
        d = np.asarray(damage, dtype=np.float64)
        hurt = np.isfinite(h) & np.isfinite(d) & (d >= 0.5)
        if not hurt.any():
            return cap
        return min(cap, self.config.heating_margin * float(np.min(np.maximum(h[hurt], 0.0))))

    def _heating_features(self, settings: np.ndarray) -> np.ndarray:
        """Inputs of the heating model: log fluence (heating is a power law in it) and the
        other parameters, all scaled to [0, 1]."""
        u = self._sample_side(self.to_model(settings))
        if "fluence" in self.names:
            j = self.names.index("fluence")
            p = self.config.parameter("fluence")
            lo, hi = np.log(p.low), np.log(p.high)
            u[:, j] = (np.log(np.maximum(settings[:, j], 1e-6)) - lo) / (hi - lo)
        return u

    def _at_heating_delay(self, settings: np.ndarray) -> np.ndarray:
        """Mask of the rows of ``settings`` taken where frames read heating: at or after the
        safe start's delay when the delay is steered (see the note under ``PROBE_SETTINGS``),
        every row otherwise."""
        settings = np.array(settings, dtype=np.float64, ndmin=2)
        if "delay" not in self.names:
            return np.ones(len(settings), dtype=bool)
        ref = self.config.parameter("delay").safe_start
        return settings[:, self.names.index("delay")] >= ref - 1e-6

    def _sample_side(self, u: np.ndarray) -> np.ndarray:
        """Model coordinates ``u`` with the probe settings (``PROBE_SETTINGS``) held at 0:
        what the pump does to the sample does not depend on them."""
        for name in PROBE_SETTINGS:
            if name in self.names:
                u[:, self.names.index(name)] = 0.0
        return u

    def _damage_over_heating(self) -> bool:
        """True when the damage model works over the predicted heating (a heating model
        exists and the fluence is steered)."""
        return self.heating_model is not None and "fluence" in self.names

    def damage_features(
        self, settings: np.ndarray, heating_mean: np.ndarray | None = None
    ) -> np.ndarray:
        """Inputs of the damage model for physical ``settings`` (n, d), scaled to [0, 1].

        The model coordinates (:meth:`to_model`), with the fluence column replaced by the
        heating model's predicted log heating (mean) once that model exists: damage depends
        on the absorbed energy, so damage-free shots at a strongly absorbing wavelength vouch
        for the same absorbed energy at a weakly absorbing one, and a high fluence where
        little is absorbed is not unexplored. Where the heating itself is uncertain, the
        heating expansion's upper bound still decides. ``heating_mean``: the heating model's
        mean log heating at ``settings`` when the caller has it already.
        """
        settings = np.array(settings, dtype=np.float64, ndmin=2)
        u = self._sample_side(self.to_model(settings))
        if not self._damage_over_heating():
            return u
        mean = self.heating_posterior(settings)[0] if heating_mean is None else heating_mean
        lo, hi = np.log(DAMAGE_HEATING_RANGE[0]), np.log(DAMAGE_HEATING_RANGE[1])
        u[:, self.names.index("fluence")] = (mean - lo) / (hi - lo)
        return u

    def damage_posterior(self, settings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Damage probability at the damage model's mean, and the standard deviation of its
        logit, at physical ``settings`` (from the model of the last :meth:`safe_set`)."""
        with torch.no_grad():
            p = self.damage_model.posterior(torch.tensor(self.damage_features(settings)))
            mean = p.mean.squeeze(-1).numpy() * LOGIT_SCALE
            sd = p.variance.clamp_min(0).sqrt().squeeze(-1).numpy() * LOGIT_SCALE
        return 1.0 / (1.0 + np.exp(-mean)), sd

    def heating_posterior(self, settings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation of log(heating) at physical ``settings`` (n, d), from
        the heating model of the last :meth:`safe_set` (which must have built one)."""
        if self.heating_model is None:
            raise RuntimeError("no heating model yet: call safe_set with heating scores first")
        settings = np.array(settings, dtype=np.float64, ndmin=2)
        with torch.no_grad():
            p = self.heating_model.posterior(torch.tensor(self._heating_features(settings)))
            mean = p.mean.squeeze(-1).numpy()
            sd = p.variance.clamp_min(0).sqrt().squeeze(-1).numpy()
        return mean, sd

    def _fluence_dims(self) -> tuple[int, ...]:
        """Input columns of the fluence (empty when the fluence is not steered)."""
        return (self.names.index("fluence"),) if "fluence" in self.names else ()

    def _heating_safe(
        self,
        settings,
        scores,
        candidates: np.ndarray,
        dmg_p: np.ndarray,
        growth_exempt: np.ndarray | None = None,
    ) -> tuple[torch.Tensor, np.ndarray | None]:
        """SafeOpt expansion on the heating precursor: which physical ``candidates`` pass,
        and the heating model's mean log heating there (None without a model).

        A GP models log(heating) over (log fluence, other parameters) with a prior mean
        linear in log fluence only (heating is close to a power law of the fluence, scaled by
        the absorbance at each wavelength, which is not extrapolated) and short wavelength
        correlations (exciton lines). Only frames of
        an untransformed lattice (progress < ``HEATING_VALID_PROGRESS``) that caused no
        damage train it: there the Debye–Waller figure is lattice heating. A candidate is
        admitted if the upper bound of its heating stays below ``heating_growth`` × the
        hottest such frame + ``heating_floor`` (the safe set grows in small steps of absorbed
        energy, whatever the absorbance), and below the learned damage limit.
        """
        cfg = self.config
        h = np.asarray(scores["heating"], dtype=np.float64)
        known = np.all(np.isfinite(settings), axis=1) & np.isfinite(dmg_p)
        direct = known & np.isfinite(heating_readings(scores)) & self._at_heating_delay(settings)
        use = direct & (dmg_p < 0.5)
        if not use.any():
            self.heating_limit = self.heating_limit_of(h, dmg_p)
            self._heating_rules = [
                SafetyRule(
                    "heating expansion (no damage-free heating reading yet)",
                    np.ones(len(candidates), dtype=bool),
                )
            ]
            return torch.zeros(len(candidates), dtype=torch.bool), None
        feats = self._heating_features(settings)
        model = self._fit(
            "heating",
            torch.tensor(feats[use]),
            torch.tensor(np.log(np.maximum(h[use], HEATING_NOISE)))[:, None],
            True,
            HEATING_LOG_SCALE,
            # a trend in log fluence only: an absorbance spectrum is no straight line in the
            # wavelength (the C exciton quadruples it below 600 nm), so away from readings the
            # model must fall back to the average absorbance and its uncertainty, not to a
            # trend extrapolated from elsewhere
            linear_mean=self._fluence_dims(),
            wavelength_scale=ABSORBANCE_LENGTHSCALE,
        )
        # Shots on a transforming lattice have no heating reading: they count with the heating
        # the direct readings predict for them. A damage-free one extends the safe set from
        # the lower bound of that prediction (cautious growth), or, where a reading at its
        # other settings and a lower fluence exists, from that reading scaled by the fluence
        # ratio (at one wavelength the absorbed energy is proportional to the fluence; never
        # above the predicted mean): without it a climb through an onset stalls, each partly
        # transformed frame vouching for less than the untransformed one below it. A damaging
        # one sets the limit at its predicted mean (a lower bound far out would forbid all).
        self.heating_model = model
        h_eff = np.where(direct, np.maximum(np.nan_to_num(h), HEATING_NOISE), np.nan)
        h_cap = h_eff.copy()
        inferred = known & ~direct
        if inferred.any():
            mean, sd = self.heating_posterior(settings[inferred])
            below = self._scaled_from_below(settings, h_eff, use, np.flatnonzero(inferred))
            h_eff[inferred] = np.maximum(
                np.exp(mean - cfg.beta * sd), np.minimum(np.exp(mean), below)
            )
            h_cap[inferred] = np.exp(mean)
        self.heating_limit = self.heating_limit_of(h_cap, dmg_p)
        mean, sd = self.heating_posterior(candidates)
        bound = np.exp(mean + cfg.beta * sd)
        clean = known & (dmg_p < 0.5) & np.isfinite(h_eff)
        frontier = cfg.heating_growth * float(h_eff[clean].max()) + cfg.heating_floor
        grows = bound <= frontier
        if growth_exempt is not None:
            grows |= np.asarray(growth_exempt, dtype=bool)
        self._heating_rules = [
            SafetyRule(
                f"heating expansion (upper bound ≤ {cfg.heating_growth:g} × "
                f"{float(h_eff[clean].max()):.3g} + {cfg.heating_floor:g} = {frontier:.3g} Å²)",
                ~grows,
                np.exp(mean),
                bound,
                unit="Å²",
            )
        ]
        if np.isfinite(self.heating_limit):
            cap = cfg.heating_max is not None and self.heating_limit >= cfg.heating_max
            source = "heating_max" if cap else "heating_margin × lowest damaging heating"
            self._heating_rules.append(
                SafetyRule(
                    f"heating limit {self.heating_limit:.3g} Å² ({source})",
                    ~(bound <= self.heating_limit),
                    np.exp(mean),
                    bound,
                    unit="Å²",
                )
            )
        return torch.from_numpy(grows & (bound <= self.heating_limit)), mean

    def _scaled_from_below(
        self, settings: np.ndarray, heating: np.ndarray, readings: np.ndarray, rows: np.ndarray
    ) -> np.ndarray:
        """For each index in ``rows``: the ``heating`` of the reading (mask ``readings``) at
        the same other settings with the highest fluence not above the row's, times the
        fluence ratio; 0 where no such reading exists."""
        out = np.zeros(len(rows))
        if "fluence" not in self.names:
            return out
        j = self.names.index("fluence")
        for k, i in enumerate(rows):
            same = readings & self.at_other_settings(settings, settings[i])
            same &= settings[:, j] <= settings[i, j]
            if same.any():
                nearest = np.flatnonzero(same)[np.argmax(settings[same, j])]
                out[k] = heating[nearest] * settings[i, j] / settings[nearest, j]
        return out

    def propose(
        self, settings: np.ndarray, scores: dict[str, np.ndarray], last: np.ndarray
    ) -> Proposal:
        """Next safe settings.

        Parameters
        ----------
        settings : (n, d) array
            Measured settings (physical units), in parameter order.
        scores : dict of (n,) arrays
            Score fields per measurement (NaN marks a failed measurement): the config's
            objective (or an ``objective`` column computed by the caller), ``damage_prob``,
            the constraint fields and ``heating``.
        last : (d,) array
            The settings the devices are at now (ramp origin).

        Raises
        ------
        NoSafeCandidate
            When no candidate passes the safety bound and the constraints, or none is
            expected to improve the objective.
        """
        cfg = self.config
        settings = np.array(settings, dtype=np.float64, ndmin=2)
        last = np.asarray(last, dtype=np.float64)
        local = self.candidates(last)
        climbing = self.climbing(settings, scores, last)
        rungs = np.arange(0)
        if climbing:
            j = self.names.index("fluence")
            top = min(self._box_high[j], last[j] + self._steps[j])
            ladder = self.fluence_ladder(last, max(self._box_low[j], last[j]), top)
            rungs = np.arange(len(local), len(local) + len(ladder))
            local = np.vstack([local, ladder])
        approach = self.approach_point(settings, scores, last)
        if approach is not None:
            local = np.vstack([local, approach[None]])
        n_local = len(local)
        # the whole search box too: the next target may lie beyond the ramp limit
        cand_phys = np.vstack([local, self.global_candidates(settings)])
        exempt = np.zeros(len(cand_phys), dtype=bool)
        if approach is not None:
            exempt[n_local - 1] = True
        safe, dmg_ucb = self.safe_set(settings, scores, cand_phys, exempt)
        if not safe[:n_local].any():
            raise NoSafeCandidate(
                self._nothing_safe(safe, n_local, last),
                {r.name: int(r.excluded[:n_local].sum()) for r in self.rules},
            )
        x, y, ok = self._xy(settings, self._objective_values(scores))
        if not ok.any():
            raise NoSafeCandidate("no successful measurement of the objective yet")
        obj = self._fit_objective(x, y)
        sampler = SobolQMCNormalSampler(torch.Size([128]), seed=cfg.seed)
        acqf = qLogNoisyExpectedImprovement(obj, X_baseline=x, prune_baseline=True, sampler=sampler)
        pool = np.flatnonzero(safe)
        climb = None
        if len(rungs):
            # the initial climb: the highest safe fluence at the start's other settings, as
            # long as it rises (if nothing above the last shot is safe, the search goes on)
            j = self.names.index("fluence")
            up = rungs[safe[rungs] & (cand_phys[rungs, j] > last[j] * (1 + 1e-3))]
            if len(up):
                climb = int(up[np.argmax(cand_phys[up, j])])
        if cfg.monotone_fluence and "fluence" in self.names:
            pool = pool[self.frontier(cand_phys[pool])]
        flat = float(y.max() - y.min()) < cfg.objective_scale
        hot = self._hottest(cand_phys[pool]) if flat else None
        if hot is not None:
            # Nothing has transformed yet: a cold point cannot show where the threshold is
            # low, so only the candidates near the hottest safe excitation are worth a shot.
            pool = pool[hot]
        choices = torch.tensor(self.to_model(cand_phys[pool]))
        with torch.no_grad():
            values = acqf(choices[:, None, :])
            post = obj.posterior(choices)
            sd = post.variance.clamp_min(0).sqrt().squeeze(-1)
            ucb = post.mean.squeeze(-1) + EXPLORE_BETA * sd
            lcb = post.mean.squeeze(-1) - EXPLORE_BETA * sd
        best = float(y.max())
        gap = max(cfg.target - best, 1e-3)
        k = int(torch.argmax(values))
        value = float(values[k])
        mode = "improve"
        if value < np.log(EI_NEGLIGIBLE * gap):
            # Nothing safe is expected to improve by much: explore the SafeOpt way, at the
            # most uncertain of the points that could still be the best (upper bound above
            # the best lower bound). The campaign stops after ``patience`` shots without
            # improvement.
            maybe = torch.nonzero(ucb >= lcb.max()).squeeze(-1)
            k = int(maybe[torch.argmax(sd[maybe])])
            value = float(values[k])
            mode = "explore"
        target = cand_phys[pool][k]
        index = int(pool[k])
        approaching = approach is not None and safe[n_local - 1]
        if climb is not None or approaching:
            # a partly transformed frame says how much more excitation the target needs here;
            # before anything stands clear of the noise, the climb goes first
            index, mode = (n_local - 1, "approach") if approaching else (climb, "climb")
            target = cand_phys[index]
            with torch.no_grad():
                value = float(acqf(torch.tensor(self.to_model(target[None]))[:, None, :]))
        elif index >= n_local and not self.within_ramp(target, last):
            # The target lies beyond the ramp limit: go the safe way towards it, one ramp
            # step at a time (the closest safe point within reach, in model coordinates).
            reach = np.flatnonzero(safe[:n_local])
            d = self.to_model(local[reach]) - self.to_model(target[None])
            index = int(reach[np.argmin(np.sum(d**2, axis=1))])
        self.mode = mode
        self.travel = mode not in ("approach", "climb") and index != int(pool[k])
        return Proposal(
            settings=dict(zip(self.names, (float(v) for v in cand_phys[index]), strict=True)),
            damage_ucb=float(dmg_ucb[index]),
            acquisition=value,
            n_safe=int(safe[:n_local].sum()),
            n_candidates=n_local,
            heating_limit=self.heating_limit,
            models={k: dict(v) for k, v in self.summaries.items()},
            target=dict(zip(self.names, (float(v) for v in target), strict=True)),
            mode=mode + ("+travel" if self.travel else ""),
        )

    def _nothing_safe(self, safe: np.ndarray, n_local: int, last: np.ndarray) -> str:
        """Why none of the first ``n_local`` candidates (those within the ramp limit of
        ``last``) of the last :meth:`safe_set` is safe: the rules that exclude every one of
        them, or, where none does alone, what each excludes; and whether safe candidates lie
        beyond the ramp limit."""
        reach = slice(0, n_local)
        active = [r for r in self.rules if r.excluded[reach].any()]
        binding = [r for r in active if r.excluded[reach].all()]
        text = f"none of {n_local} candidates within the ramp limit is safe: "
        if binding:
            text += "; ".join(r.describe(reach) for r in binding)
            others = [r for r in active if r not in binding]
            if others:
                text += "; besides, " + "; ".join(r.describe(reach) for r in others)
        elif active:
            text += "no rule alone excludes them all: " + "; ".join(
                r.describe(reach) for r in active
            )
        else:
            text += "no rule was recorded"
        beyond = int(safe[n_local:].sum())
        if beyond:
            steps = ", ".join(f"{n} {s:g}" for n, s in zip(self.names, self._steps, strict=True))
            origin = ", ".join(f"{n} {v:.4g}" for n, v in zip(self.names, last, strict=True))
            text += (
                f"; {beyond} candidates elsewhere in the search box are safe but lie beyond "
                f"the ramp limit (max_step {steps}) of {origin}"
            )
        return text

    def climbing(
        self, settings: np.ndarray, scores: dict[str, np.ndarray], last: np.ndarray
    ) -> bool:
        """True while the initial climb (``climb_heating``) goes on.

        That is while every measurement so far stood at the other settings of ``last``
        (the campaign has not moved from its start), none caused damage (``damage_prob`` ≥
        0.5), the objective is flat (spread below ``objective_scale``) and no heating
        reading (:func:`heating_readings`: frames of an untransformed lattice) has reached
        ``climb_heating``.
        """
        cfg = self.config
        if cfg.climb_heating is None or "fluence" not in self.names or "heating" not in scores:
            return False
        settings = np.array(settings, dtype=np.float64, ndmin=2)
        if not len(settings) or not np.all(np.isfinite(settings)):
            return False
        if not self.at_other_settings(settings, last).all():
            return False
        dmg = np.asarray(scores["damage_prob"], dtype=np.float64)
        if np.any(np.nan_to_num(dmg, nan=0.0) >= 0.5):
            return False
        obj = self._objective_values(scores)
        obj = obj[np.isfinite(obj)]
        if len(obj) and float(obj.max() - obj.min()) >= cfg.objective_scale:
            return False
        # a partly transformed frame's Debye–Waller figure is no heating reading: an onset
        # that lifts it past climb_heating is a reason to climb on, not to leave
        heat = heating_readings(scores)
        return not np.any(np.nan_to_num(heat, nan=0.0) >= cfg.climb_heating)

    def fluence_ladder(
        self, points: np.ndarray, low: float, high: float, rungs: int = LADDER_STEPS
    ) -> np.ndarray:
        """Physical points at the other settings of each of ``points`` with ``rungs``
        fluences from ``low`` to ``high`` (point by point)."""
        j = self.names.index("fluence")
        points = np.array(points, dtype=np.float64, ndmin=2)
        out = np.repeat(points, rungs, axis=0)
        out[:, j] = np.tile(np.linspace(low, high, rungs), len(points))
        return out

    def approach_point(
        self, settings: np.ndarray, scores: dict[str, np.ndarray], last: np.ndarray
    ) -> np.ndarray | None:
        """The approach step from the latest frame, or None (see ``approach_width``).

        If the latest measurement sits at the ramp origin ``last``, caused no damage
        (``damage_prob`` < δ) and reads a progress p with ``APPROACH_FROM`` ≤ p < target,
        a transformation :math:`x = \\sigma((\\varepsilon - \\varepsilon_T)/(w\\,
        \\varepsilon_T))` puts the threshold at :math:`\\varepsilon/(1 + w\\,
        \\mathrm{logit}\\,p)`; the step goes to the same settings with the fluence
        scaled to reach :math:`x = (1 + \\text{target})/2` (at most
        ``APPROACH_MAX_RATIO``, within the ramp limit and the search box), or None where
        those limits leave the model predicting less than the target. The scorer reads an
        early transformation as more progress than it is (0.24 at x = 0.11), so the step
        errs short.
        """
        cfg = self.config
        w = cfg.approach_width
        if w is None or cfg.objective != "progress" or "fluence" not in self.names:
            return None
        settings = np.array(settings, dtype=np.float64, ndmin=2)
        if not len(settings) or "progress" not in scores:
            return None
        here = settings[-1]
        if not np.all(np.isfinite(here)) or not np.allclose(here, last, rtol=1e-9, atol=1e-9):
            return None
        p = float(np.asarray(scores["progress"], dtype=np.float64)[-1])
        d = float(np.asarray(scores["damage_prob"], dtype=np.float64)[-1])
        if not (np.isfinite(p) and np.isfinite(d)) or d >= cfg.damage_bound:
            return None
        if not APPROACH_FROM <= p < cfg.target:
            return None
        j = self.names.index("fluence")
        if len(settings) >= 2:
            # no chains: if the shot before already stood at these other settings with less
            # fluence and a partly transformed frame, this shot was that approach, and it fell
            # short of the model: the transformation is slower here than assumed, or it
            # started above the damage threshold (a flank of the band). A second step fitted
            # through both frames was measured and not kept (it climbed a flank into damage).
            prev = settings[-2]
            p_prev = float(np.asarray(scores["progress"], dtype=np.float64)[-2])
            if (
                self.at_other_settings(prev, here, tol=1e-6)[0]
                and prev[j] < here[j]
                and np.isfinite(p_prev)
                and p_prev >= APPROACH_FROM
            ):
                return None
        # The onset x = σ((F − F_T)/s) at this wavelength, from this frame and the assumed
        # relative width w: F_T = F/(1 + w logit p), s = w·F_T.
        f_t = here[j] / (1.0 + w * float(logit(np.array(p))))
        scale = w * f_t
        f = min(
            f_t + scale * float(logit(np.array((1.0 + cfg.target) / 2.0))),
            here[j] * APPROACH_MAX_RATIO,
            here[j] + self._steps[j],
            self._box_high[j],
        )
        # The step may bypass the heating expansion only because the model says where it
        # lands: if the ramp limit (or the search box) cuts it short of the target, the model
        # itself expects another partial frame, and the climb stays with the heating
        # expansion. (A threshold that far above the frame's fluence is the mark of a
        # wavelength off the resonance, where the damage threshold comes first.)
        if f <= here[j] or (f - f_t) / scale < float(logit(np.array(cfg.target))):
            return None
        point = here.copy()
        point[j] = f
        return point

    def _hottest(self, points: np.ndarray) -> np.ndarray | None:
        """Mask of ``points`` whose predicted heating (GP mean) is at least
        ``explore_excitation`` × the hottest of them; None without a heating model."""
        share = self.config.explore_excitation
        if share is None or self.heating_model is None or len(points) == 0:
            return None
        mean, _ = self.heating_posterior(points)
        return mean >= mean.max() + np.log(share)

    def export_state(self) -> dict[str, dict]:
        """The fitted GP hyperparameters as plain numbers (JSON-ready), per model.

        With :meth:`load_state` a resumed campaign continues warm: its first proposal refits
        only when a refit is due, as it would have without the interruption.
        """
        return {
            key: {
                "fitted_at": self._fitted_at.get(key),
                "state": {name: v.tolist() for name, v in state.items()},
            }
            for key, state in self._state.items()
        }

    def load_state(self, state: dict[str, dict]) -> None:
        """Warm-start the GPs from :meth:`export_state`'s output.

        Raises
        ------
        ValueError
            If ``state`` is not a mapping of model name to ``{"fitted_at", "state"}``.
        """
        try:
            loaded = {
                key: {n: torch.tensor(v, dtype=torch.float64) for n, v in m["state"].items()}
                for key, m in state.items()
            }
            fitted = {key: m["fitted_at"] for key, m in state.items() if m["fitted_at"] is not None}
        except (AttributeError, KeyError, TypeError, ValueError) as err:
            raise ValueError(
                f"state={str(state)[:80]!r} is not a SafeOptimizer.export_state() mapping "
                f"of model name to {{'fitted_at', 'state'}} ({err})"
            ) from None
        self._state.update(loaded)
        self._fitted_at.update({key: int(n) for key, n in fitted.items()})

    def within_ramp(self, point: np.ndarray, last: np.ndarray) -> bool:
        """True if ``point`` is within every parameter's ramp limit of ``last``."""
        return bool(np.all(np.abs(np.asarray(point) - np.asarray(last)) <= self._steps + 1e-9))


class _TrendMean(Mean):
    """Prior mean ``b + Σ_k w_k x_k`` over the input columns ``dims`` only."""

    def __init__(self, dims: tuple[int, ...]) -> None:
        super().__init__()
        self.dims = list(dims)
        self.register_parameter("weights", torch.nn.Parameter(torch.zeros(len(dims), 1)))
        self.register_parameter("bias", torch.nn.Parameter(torch.zeros(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x[..., self.dims] @ self.weights).squeeze(-1) + self.bias


def _mean(linear: bool | tuple[int, ...], d: int) -> Mean | None:
    """The prior mean of a GP: constant (False), linear in every input (True), or linear in
    the given input columns only."""
    if linear is True:
        return LinearMean(d)
    if linear is False:
        return None
    return _TrendMean(linear)


def _hyperparameters(model) -> dict[str, torch.Tensor]:
    """A GP's state without its data or outcome scaling (what carries over to a refit)."""
    return {k: v for k, v in model.state_dict().items() if "train" not in k and "outcome" not in k}


def _summary(model, n: int) -> dict[str, float]:
    """Hyperparameters of a fitted GP as plain numbers (for the campaign's documents)."""
    out: dict[str, float] = {"n": float(n)}
    try:
        ls = model.covar_module.lengthscale.detach().flatten().tolist()
        out.update({f"lengthscale_{i}": float(v) for i, v in enumerate(ls)})
        noise = model.likelihood.noise.detach().flatten()
        out["noise"] = float(noise.mean())
    except AttributeError:  # pragma: no cover - other kernels
        pass
    return out
