"""The safe optimizer: proposes the next settings from (settings, scores) observations.

:meth:`SafeOptimizer.safe_set` fits the safety models (:func:`~.evidence.gather`) and asks
every rule (:mod:`.rules`) about the candidates; it returns a :class:`SafeSet` and changes
nothing in the optimizer. :meth:`SafeOptimizer.propose` draws candidates within reach and over
the whole box, takes the safe set, and picks among the safe candidates: the initial climb, the
approach step (:mod:`.strategies`), or the acquisition's target (:mod:`.acquisition`) among the
highest safe fluences; a target beyond the ramp limit is approached through the safe set (the
safe point within reach closest to it, ``travel``). The proposal says why (``strategy``,
``travel``) and what bound it (``heating_limit``).

State: a proposal advances the candidates' Sobol sequences and keeps the GP fits it made warm
for the next one (:attr:`SafeOptimizer.gp_state`, exported into the campaign's documents).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
from botorch.models import SingleTaskGP

from ..config import CampaignConfig
from ..errors import ModelFittingError, ModelFitWarning, NoSafeCandidate
from .acquisition import ExpectedImprovement
from .candidates import CandidateGenerator, fluence_ladder, frontier
from .coordinates import SearchSpace
from .evidence import Candidates, Evidence, ScoreBound, gather
from .fitting import GPState, fit
from .models import ObjectiveGP
from .rules import Verdict, refusal_message, rules_for
from .strategies import approach_point, climbing, hottest, objective_values


@dataclass(frozen=True, eq=False)
class SafeSet:
    """Which candidates are safe, and why.

    Attributes
    ----------
    safe : (m,) bool array
        Admitted by every rule.
    damage_ucb : (m,) array
        Upper confidence bound of the damage probability.
    verdicts : tuple of Verdict
        What each rule that applied made of the candidates, in :data:`~.rules.RULES` order.
    heating_limit : float
        The learned heating limit (Å²; inf before any damage, NaN without the heating rules).
    evidence : Evidence
        The fitted safety models.
    gp_state : GPState
        The warm-start state after these fits (:meth:`SafeOptimizer.keep_warm` keeps it).
    """

    safe: np.ndarray
    damage_ucb: np.ndarray
    verdicts: tuple[Verdict, ...]
    heating_limit: float
    evidence: Evidence
    gp_state: GPState

    @property
    def fit_failures(self) -> tuple[ModelFittingError, ...]:
        """The safety models whose fit failed (they kept warm or prior hyperparameters)."""
        return self.evidence.failures

    def heating_posterior(self, settings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation of log(heating) at physical ``settings``."""
        return self.evidence.heating_posterior(settings)

    def damage_posterior(self, settings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Damage probability at the model's mean and the standard deviation of its logit."""
        return self.evidence.damage_posterior(settings)

    def damage_features(self, settings: np.ndarray) -> np.ndarray:
        """Inputs of the damage model at physical ``settings``."""
        return self.evidence.damage_features(settings)


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
    strategy: str = "improve"
    """Why this point: ``improve`` (expected improvement), ``explore`` (nothing safe is
    expected to improve: the most uncertain candidate that could still be best), ``climb``
    (the initial climb in fluence at the safe start's other settings) or ``approach`` (the
    approach step after a partly transformed frame)."""
    travel: bool = False
    """True when the settings are a ramp step towards a target beyond the ramp limit."""
    fit_failures: tuple[str, ...] = ()
    """Keys of the models whose fit failed for this proposal (kept warm or prior)."""

    @property
    def mode(self) -> str:
        """``strategy``, with ``+travel`` when travelling (as the campaign records it)."""
        return self.strategy + ("+travel" if self.travel else "")


def score_bounds(
    config: CampaignConfig, extra_bounds: Mapping[str, float] | None = None
) -> tuple[ScoreBound, ...]:
    """Every score constraint: the configured ones (GP keys ``c:<score>``), then those
    computed by the caller (``x:<name>``, ``scores[name] <= bound``)."""
    out = [ScoreBound(c.score, f"c:{c.score}", c.bound, c.sense) for c in config.constraints]
    out += [ScoreBound(n, f"x:{n}", float(b), "max") for n, b in (extra_bounds or {}).items()]
    return tuple(out)


def _warn(failures: tuple[ModelFittingError, ...] | list[ModelFittingError]) -> None:
    for failure in failures:
        warnings.warn(
            f"{failure}; the model keeps its warm or prior hyperparameters",
            ModelFitWarning,
            stacklevel=3,
        )


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
        self.space = SearchSpace(config)
        self.names = self.space.names
        self.bounds = score_bounds(config, extra_bounds)
        self.rules = rules_for(config, self.bounds)
        self.generator = CandidateGenerator(self.space, config.n_candidates, config.seed)
        self.gp_state = GPState()

    # ------------------------------------------------------------ warm start
    def export_state(self) -> dict[str, dict]:
        """The fitted GP hyperparameters as plain numbers (JSON-ready), per model.

        With :meth:`load_state` a resumed campaign continues warm: its first proposal refits
        only when a refit is due, as it would have without the interruption.
        """
        return self.gp_state.to_json()

    def load_state(self, state: dict[str, dict]) -> None:
        """Warm-start the GPs from :meth:`export_state`'s output.

        Raises
        ------
        GPStateError
            (a ValueError) If ``state`` is not a mapping of model name to
            ``{"fitted_at", "state"}``.
        """
        self.gp_state = self.gp_state.updated_from_json(state)

    def keep_warm(self, found: SafeSet) -> None:
        """Start the next fits from those of ``found`` (as a proposal does with its own)."""
        self.gp_state = found.gp_state

    # ------------------------------------------------------------ models and the safe set
    def safe_set(
        self,
        settings: np.ndarray,
        scores: dict[str, np.ndarray],
        candidates: np.ndarray,
        growth_exempt: np.ndarray | None = None,
    ) -> SafeSet:
        """Which physical ``candidates`` are safe. Changes nothing in the optimizer.

        Fits start from :attr:`gp_state`; torch's random numbers are seeded with
        ``config.seed + len(settings)`` (:func:`~.evidence.gather`). Failed fits are announced
        with a :class:`~uedsteer.controller.errors.ModelFitWarning` and listed in
        :attr:`SafeSet.fit_failures`.

        Parameters
        ----------
        settings : (n, d) array
            Measured settings (physical units), in parameter order.
        scores : dict of (n,) arrays
            ``damage_prob`` (the damage each setting caused; NaN = unknown), the constraint
            score fields (and the ``extra_bounds`` names) and, for the heating rules,
            ``heating``. NaN entries are skipped.
        candidates : (m, d) array
        growth_exempt : (m,) bool array, optional
            Candidates exempt from the heating expansion (approach steps, whose growth in
            absorbed energy is known); every other rule applies to them.

        Raises
        ------
        NoSafeCandidate
            If no measurement has a known damage probability.
        """
        evidence, state = gather(
            self.space, self.config, self.bounds, settings, scores, self.gp_state
        )
        cands = Candidates(candidates, evidence, growth_exempt)
        verdicts = [v for rule in self.rules if (v := rule.judge(cands, evidence)) is not None]
        safe = np.ones(len(cands), dtype=bool)
        for verdict in verdicts:
            safe &= verdict.admitted
        _, ucb = cands.damage(self.config.beta)
        _warn(evidence.failures)
        return SafeSet(
            safe,
            1.0 / (1.0 + np.exp(-ucb.numpy())),
            tuple(verdicts),
            evidence.heating_limit,
            evidence,
            state,
        )

    def objective_model(self, settings: np.ndarray, scores: dict[str, np.ndarray]) -> SingleTaskGP:
        """The objective's GP as :meth:`propose` fits it, from :attr:`gp_state`; changes
        nothing in the optimizer.

        Parameters
        ----------
        settings : (n, d) array
            Measured settings (physical units), in parameter order.
        scores : dict of (n,) arrays
            An ``objective`` column or the config's objective field; measurements whose
            objective is not finite are left out.

        Raises
        ------
        ValueError
            If no measurement has a finite objective.
        """
        settings = np.array(settings, dtype=np.float64, ndmin=2)
        x, y, ok = self.space.training_data(settings, objective_values(scores, self.config))
        if not ok.any():
            raise ValueError(
                f"scores: none of the {len(settings)} measurements has a finite objective "
                f"({self.config.objective!r})"
            )
        return self._fit_objective(x, y, self.gp_state).model

    def _fit_objective(self, x: torch.Tensor, y: torch.Tensor, state: GPState):
        recipe = ObjectiveGP(self.config.objective_scale, self.space.wavelength)
        fitted = fit(recipe, x, y, state, self.config.refit_every)
        _warn([fitted.failure] if fitted.failure else [])
        return fitted

    # ------------------------------------------------------------ the proposal
    def propose(
        self, settings: np.ndarray, scores: dict[str, np.ndarray], last: np.ndarray
    ) -> Proposal:
        """Next safe settings; keeps the fits it made warm (module doc), even when it raises.

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
            When no candidate within reach passes every rule (its message names the rules
            that bound), or no measurement has an objective yet.
        """
        cfg, space = self.config, self.space
        settings = np.array(settings, dtype=np.float64, ndmin=2)
        last = np.asarray(last, dtype=np.float64)
        local = self.generator.local(last)
        rungs = np.arange(0)
        if climbing(space, cfg, settings, scores, last):
            j = space.fluence
            top = min(space.box_high[j], last[j] + space.steps[j])
            ladder = fluence_ladder(space, last, max(space.box_low[j], last[j]), top)
            rungs = np.arange(len(local), len(local) + len(ladder))
            local = np.vstack([local, ladder])
        approach = approach_point(space, cfg, settings, scores, last)
        if approach is not None:
            local = np.vstack([local, approach[None]])
        n_local = len(local)
        # the whole search box too: the next target may lie beyond the ramp limit
        cand = np.vstack([local, self.generator.whole_box(settings)])
        exempt = np.zeros(len(cand), dtype=bool)
        if approach is not None:
            exempt[n_local - 1] = True
        found = self.safe_set(settings, scores, cand, exempt)
        self.keep_warm(found)
        safe = found.safe
        if not safe[:n_local].any():
            raise NoSafeCandidate(
                refusal_message(list(found.verdicts), safe, n_local, space, last),
                {v.name: int(v.excluded[:n_local].sum()) for v in found.verdicts},
            )
        x, y, ok = space.training_data(settings, objective_values(scores, cfg))
        if not ok.any():
            raise NoSafeCandidate("no successful measurement of the objective yet")
        fitted = self._fit_objective(x, y, self.gp_state)
        self.gp_state = fitted.state
        ei = ExpectedImprovement(fitted.model, x, cfg.seed)
        pool = np.flatnonzero(safe)
        climb = None
        if len(rungs):
            # the highest safe fluence at the start's other settings, as long as it rises (if
            # nothing above the last shot is safe, the search goes on)
            j = space.fluence
            up = rungs[safe[rungs] & (cand[rungs, j] > last[j] * (1 + 1e-3))]
            if len(up):
                climb = int(up[np.argmax(cand[up, j])])
        if cfg.monotone_fluence and space.fluence is not None:
            pool = pool[frontier(space, cand[pool])]
        flat = float(y.max() - y.min()) < cfg.objective_scale
        hot = hottest(cand[pool], found.evidence, cfg.explore_excitation) if flat else None
        if hot is not None:
            pool = pool[hot]
        k, value, strategy = ei.choose(
            torch.tensor(space.to_model(cand[pool])), float(y.max()), cfg.target
        )
        target = cand[pool][k]
        index = int(pool[k])
        approaching = approach is not None and safe[n_local - 1]
        if climb is not None or approaching:
            # a partly transformed frame says how much more excitation the target needs here;
            # before anything stands clear of the noise, the climb goes first
            index, strategy = (n_local - 1, "approach") if approaching else (climb, "climb")
            target = cand[index]
            value = float(ei.value(torch.tensor(space.to_model(target[None]))))
        elif index >= n_local and not space.within_ramp(target, last):
            # the target lies beyond the ramp limit: the closest safe point within reach (in
            # model coordinates), one ramp step at a time
            reach = np.flatnonzero(safe[:n_local])
            d = space.to_model(local[reach]) - space.to_model(target[None])
            index = int(reach[np.argmin(np.sum(d**2, axis=1))])
        failures = (*found.fit_failures, *([fitted.failure] if fitted.failure else []))
        return Proposal(
            settings=dict(zip(self.names, (float(v) for v in cand[index]), strict=True)),
            damage_ucb=float(found.damage_ucb[index]),
            acquisition=value,
            n_safe=int(safe[:n_local].sum()),
            n_candidates=n_local,
            heating_limit=found.heating_limit,
            models={key: dict(v) for key, v in self.gp_state.summaries.items()},
            target=dict(zip(self.names, (float(v) for v in target), strict=True)),
            strategy=strategy,
            travel=strategy not in ("approach", "climb") and index != int(pool[k]),
            fit_failures=tuple(f.model for f in failures),
        )
