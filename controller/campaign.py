"""Campaign state: the controller's side of the closed loop.

A :class:`Campaign` is the controller's side of the loop. The bluesky plan
(:func:`uedsteer.plans.campaign`) asks it for the next settings (:meth:`Campaign.next`), moves
the devices, acquires and scores a frame, and hands the result back (:meth:`Campaign.ingest`),
which applies the halting rules and says what to do next.

It composes the record of shots (:mod:`.record`), damage attribution (:mod:`.attribution`),
the ramp limits (:mod:`.ramp`), the halting rules (:mod:`.halting`) and the safe optimizer
(:mod:`.safe.optimizer`); it holds the state between shots: the record, the spot in use, the
damaged spots and what a resume changed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from uedsteer.sim_devices.contracts import SETTING_NAMES

from . import halting
from .attribution import attributed_damage, damage_evidence
from .config import SCORE_NAMES, CampaignConfig
from .errors import NoSafeCandidate
from .ramp import propose_within_reach, ramp_origin, ramped
from .record import CampaignRecord, Step, Stop, Trial, failed_scores, score_row
from .safe.evidence import DAMAGE_CHECKED
from .safe.optimizer import Proposal, SafeOptimizer

ScoreFn = Callable[[Mapping[str, Any]], float]


_CHECK_REDECIDES = ("", "target", "budget")
"""Decisions a check frame may change (:meth:`Campaign.note_check`); one by the damage or
failure rules stands."""


class Campaign:
    """State of one closed-loop campaign.

    Parameters
    ----------
    config : CampaignConfig
    objective : callable, optional
        ``f(scores) -> float`` on a shot's score row; overrides ``config.objective``.
    constraints : dict, optional
        Extra constraints as ``{name: (f, bound)}`` with ``f(scores) <= bound`` required:
        modelled by their own GP and enforced in the safe set like configured constraints.
    spots : sequence of int, optional
        Sample spots this campaign may use, in order (default 0 … 99): the first is used
        first, the next ones only after damage with ``on_damage="move"``.
    """

    classes: tuple[str, ...] | None = None
    """Class names of the scorer's rows (``p_<class>`` of a failed shot's row), learned from
    the scored shots; None until one names them (then
    :func:`~uedsteer.controller.record.default_classes`)."""

    def __init__(
        self,
        config: CampaignConfig | None = None,
        objective: ScoreFn | None = None,
        constraints: Mapping[str, tuple[ScoreFn, float]] | None = None,
        spots: list[int] | None = None,
    ) -> None:
        self.config = config or CampaignConfig()
        self.objective_fn = objective
        self.extra_constraints = dict(constraints or {})
        if self.extra_constraints:
            for name, (fn, bound) in self.extra_constraints.items():
                if not callable(fn):
                    raise ValueError(f"constraints[{name!r}] must be (callable, bound)")
                float(bound)
        # the approach step models the onset of the transformation's progress; a Python
        # objective is some other quantity, so it goes without the step
        opt_cfg = self.config
        if objective is not None and opt_cfg.approach_width is not None:
            opt_cfg = opt_cfg.model_copy(update={"approach_width": None})
        self.optimizer = SafeOptimizer(
            opt_cfg, {name: bound for name, (_, bound) in self.extra_constraints.items()}
        )
        self.record = CampaignRecord()
        self.spots = list(range(100)) if spots is None else list(spots)
        if not self.spots:
            raise ValueError("spots is empty: give at least one sample spot")
        self.spot_index = 0
        self.damaged_spots: list[int] = []
        self.reference: np.ndarray | None = None
        self.resumed_from: str | None = None
        self.resumed_runs: list[Any] = []
        self.resume_changes: dict[str, dict[str, Any]] = {}
        self.previous_stop = ""
        self._shots_at_resume = 0
        self.proposal_seconds: list[float] = []
        self._consecutive_failures = 0

    # ------------------------------------------------------------------ views
    @property
    def spot(self) -> int:
        """The sample spot in use."""
        return self.spots[self.spot_index]

    @property
    def stopped(self) -> bool:
        """True once a stop condition was met."""
        return self.record.stop_reason is not None

    @property
    def finished_reason(self) -> str | None:
        """Why :meth:`next` will fire no further shot, or None while it asks for one.

        Known before a run opens: a stop already met, the shot budget used, or a resumed
        campaign whose run had finished and whose changes do not reopen it (the text says what
        to raise). None does not promise a shot: the optimizer may still find no safe one.
        """
        if self.record.stop_reason is not None:
            return self.record.stop_reason
        finished = self._finished_on_resume()
        if finished:
            return finished
        return halting.budget_reason(len(self.record), self.config) or None

    def fixed_settings(self) -> dict[str, float]:
        """Settings held constant, completed with the device defaults."""
        base = {"charge": 20.0, "delay": 10.0}
        base.update(self.config.fixed)
        return base

    def start_settings(self) -> dict[str, float]:
        """The known-safe start (steered parameters) plus the fixed settings."""
        out = self.fixed_settings()
        out.update({p.name: p.safe_start for p in self.config.parameters})
        return out

    def last_settings(self) -> dict[str, float]:
        """Settings of the last shot, or the safe start."""
        if not self.record.trials:
            return self.start_settings()
        return dict(self.record.trials[-1].settings)

    def ramp_origin(self) -> dict[str, float]:
        """Settings the next proposal must stay within the ramp limit of: the last shot's, or
        after damage the latest damage-free shot's, or the safe start (:mod:`.ramp`)."""
        return ramp_origin(self.record.trials, self.attributed_damage(), self.start_settings())

    def objective_of(self, scores: Mapping[str, Any]) -> float:
        """The objective value of one score row (NaN for a failed shot)."""
        try:
            if self.objective_fn is not None:
                return float(self.objective_fn(scores))
            return float(scores[self.config.objective])
        except (KeyError, TypeError, ValueError):
            return math.nan

    # ------------------------------------------------------------------ data for the optimizer
    def observations(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """(settings (n, d), outcome columns) of all shots, damage attributed (module doc)."""
        names = self.optimizer.names
        trials = self.record.trials
        x = np.array([[t.settings[n] for n in names] for t in trials], dtype=np.float64)
        cols: dict[str, np.ndarray] = {}
        for k in SCORE_NAMES:
            cols[k] = np.array([t.scores.get(k, math.nan) for t in trials], dtype=np.float64)
        cols["objective"] = np.array(
            [t.scores.get("objective", math.nan) for t in trials], dtype=np.float64
        )
        for name in self.extra_constraints:
            cols[name] = np.array(
                [t.scores.get(f"constraint_{name}", math.nan) for t in trials], dtype=np.float64
            )
        damage, checked = damage_evidence(trials)
        cols["damage_prob"] = damage
        cols[DAMAGE_CHECKED] = checked.astype(np.float64)
        return x, cols

    def attributed_damage(self) -> np.ndarray:
        """Damage evidence per shot: the next frame's damage probability on the same spot
        (own frame's for the latest shot); NaN for failed shots and shots on a spot that was
        already hurt (:mod:`.attribution`)."""
        return attributed_damage(self.record.trials)

    # ------------------------------------------------------------------ the loop
    def next(self) -> Step | Stop:
        """The next shot's settings, or why the campaign is over."""
        cfg = self.config
        if self.stopped:
            return Stop(self.record.stop_reason or "")
        finished = self._finished_on_resume()
        if finished:
            return self._stop(finished)
        used = halting.budget_reason(len(self.record), cfg)
        if used:
            return self._stop(used)
        ok_trials = [t for t in self.record.trials if t.status == "ok"]
        if len(ok_trials) < cfg.n_initial:
            start = self.start_settings()
            return Step(ramped(start, self.ramp_origin(), cfg.parameters), self.spot)
        x, cols = self.observations()
        last = np.array([self.ramp_origin()[n] for n in self.optimizer.names])
        t0 = time.perf_counter()
        try:
            prop = self._propose(x, cols, last)
        except NoSafeCandidate as err:
            self.proposal_seconds.append(time.perf_counter() - t0)
            return self._stop(halting.no_safe_reason(err))
        self.proposal_seconds.append(time.perf_counter() - t0)
        if prop.strategy == "explore":
            stalled = halting.stalled_reason(self.record.trials, cfg, self._custom_objective)
            if stalled:
                return self._stop(stalled)
        settings = self.fixed_settings()
        settings.update(prop.settings)
        return Step(settings, self.spot, prop)

    def _propose(self, x: np.ndarray, cols: dict[str, np.ndarray], last: np.ndarray) -> Proposal:
        """A proposal within reach of ``last``, or of a setting the models still call safe
        (:func:`~uedsteer.controller.ramp.propose_within_reach`)."""
        return propose_within_reach(self.optimizer, x, cols, last, self.start_settings())

    @property
    def _custom_objective(self) -> bool:
        """Whether the objective is a Python function rather than a score field."""
        return self.objective_fn is not None

    def _extra_bounds(self) -> dict[str, float]:
        """The bound of each extra constraint, by name."""
        return {name: bound for name, (_, bound) in self.extra_constraints.items()}

    def _stop(self, reason: str) -> Stop:
        self.record.stop_reason = reason
        return Stop(reason)

    def stop(self, reason: str) -> None:
        """Record a stop from outside (user interrupt, plan error)."""
        if self.record.stop_reason is None:
            self.record.stop_reason = reason

    def ingest(
        self,
        step: Step,
        scores: Mapping[str, Any] | None,
        error: str = "",
        truth: dict | None = None,
    ) -> Trial:
        """Record one shot and apply the halting rules.

        Parameters
        ----------
        step : Step
            What was asked for (settings and spot).
        scores : mapping or None
            The frame's scores (``Scores.row``); None when the device failed.
        error : str
            The device fault, when ``scores`` is None.
        truth : dict, optional
            Hidden truth (simulation harness only).

        Returns
        -------
        Trial
            With ``action`` set: ``continue``, ``move`` (go to :attr:`spot`, which has
            already advanced) or ``stop`` (see ``record.stop_reason``).
        """
        if scores is not None and scores.get("classes"):
            self.classes = tuple(scores["classes"])
        row = failed_scores(classes=self.classes) if scores is None else score_row(scores)
        valid = scores is not None and bool(scores.get("valid", True))
        if scores is not None and not valid:
            error = f"invalid frame ({scores.get('flag') or 'flagged'})"
        if not valid:
            row = {k: math.nan for k in row}
        row["objective"] = self.objective_of(scores) if valid else math.nan
        for name, (fn, _) in self.extra_constraints.items():
            try:
                row[f"constraint_{name}"] = float(fn(scores)) if valid else math.nan
            except (KeyError, TypeError, ValueError):
                row[f"constraint_{name}"] = math.nan
        trial = Trial(
            index=len(self.record),
            settings={k: float(step.settings[k]) for k in SETTING_NAMES},
            spot=int(step.spot),
            status="ok" if valid else "failed",
            scores=row,
            error=error if not valid else "",
            proposal=step.info(),
            truth=truth,
        )
        self.record.trials.append(trial)
        trial.action = self._rules(trial)
        return trial

    def note_check(self, trial: Trial, damage_prob: float) -> str:
        """Record the damage probability of the probe-only frame taken right after ``trial``'s
        shot (``check_frames``) and decide the shot again with it; returns the shot's action.

        Its damage attribution (:mod:`.attribution`) counts it, so damage the shot caused
        bounds the next proposal, not the one after. The halting rules (:meth:`_decide`) count
        it too: a spot whose check frames show damage is left (or the campaign stops) before
        another shot lands on it, and a shot whose check frame shows damage has not reached
        the target. A decision by the damage or failure rules stands.
        """
        latest = self.record.trials[-1:] == [trial]
        redecide = latest and self._decide(trial)[0] in _CHECK_REDECIDES
        trial.scores["check_damage_prob"] = float(damage_prob)
        if redecide:
            if trial.action == "stop":
                self.record.stop_reason = None
            trial.action = self._act(trial, *self._decide(trial))
        return trial.action

    def _rules(self, trial: Trial) -> str:
        """Count ``trial``, the latest shot, among the consecutive failures and apply the
        halting rules (:meth:`_decide`, :meth:`_act`); returns its action."""
        self._consecutive_failures = 0 if trial.status == "ok" else self._consecutive_failures + 1
        return self._act(trial, *self._decide(trial))

    def _decide(self, trial: Trial) -> tuple[str, str]:
        """Which halting rule (:mod:`.halting`) decides after ``trial``, the latest shot, and
        why: ``("failures" | "damage" | "target" | "budget", text)``, or ``("", "")`` when
        none does. Changes nothing, so a check frame can ask again what decided a shot."""
        cfg = self.config
        if trial.status != "ok":
            failed = halting.failures_reason(self._consecutive_failures, trial, cfg)
            return ("failures", failed) if failed else ("", "")
        what = halting.damage_reason(self.record.trials, cfg)
        if what:
            return "damage", what
        if halting.target_met(trial.scores, cfg, self._extra_bounds()):
            return "target", halting.target_reason(trial, cfg, self._custom_objective)
        used = halting.budget_reason(len(self.record), cfg)
        return ("budget", used) if used else ("", "")

    def _act(self, trial: Trial, rule: str, why: str) -> str:
        """Carry out :meth:`_decide`'s decision: move to a fresh spot on damage with
        ``on_damage="move"``, stop with ``why``, or continue; returns the action."""
        if rule == "damage":
            return self._damaged(trial, why)
        if rule:
            self._stop(why)
            return "stop"
        return "continue"

    def _damaged(self, trial: Trial, what: str) -> str:
        """``trial``'s spot is damaged (``what`` says how): move to a fresh spot with
        ``on_damage="move"`` while one is left, else stop; returns the action."""
        self.damaged_spots.append(trial.spot)
        if self.config.on_damage == "move" and self.spot_index + 1 < len(self.spots):
            self.spot_index += 1
            return "move"
        self._stop(halting.damage_stop(what, self.config))
        return "stop"

    # ------------------------------------------------------------------ persistence
    def restore_trials(self, trials: list[Trial], damaged_spots: list[int]) -> None:
        """Rebuild the state from recorded shots (used by
        :func:`uedsteer.plans.resume.resume_campaign`).

        The spot in use is the last shot's, or the next undamaged one after it.
        """
        self.record.trials = list(trials)
        self.damaged_spots = list(damaged_spots)
        self.spot_index = 0
        last_spot = trials[-1].spot if trials else self.spots[0]
        if last_spot in self.spots:
            self.spot_index = self.spots.index(last_spot)
        while self.spot in self.damaged_spots and self.spot_index + 1 < len(self.spots):
            self.spot_index += 1
        self._shots_at_resume = len(self.record)

    def recorded_stop(self, config: CampaignConfig) -> str:
        """Why the halting rules of ``config`` stopped after the record's last shot.

        The record itself says whether the campaign finished, also for a run that ended before
        its stop document or crashed after its stopping shot. "" when the last shot did not
        stop it, or when a failed shot did (a campaign stopped by failures may continue).
        """
        return halting.recorded_stop(
            self.record.trials, config, self._extra_bounds(), self._custom_objective
        )

    def _finished_on_resume(self) -> str | None:
        """Why a resumed campaign whose run had finished fires nothing (None: it continues);
        only before its first new shot (:func:`~uedsteer.controller.halting.finished_on_resume`).
        """
        if self.resumed_from is None or len(self.record) != self._shots_at_resume:
            return None
        return halting.finished_on_resume(
            self.previous_stop,
            len(self.record),
            self.config,
            self.resume_changes,
            self.spots,
            self.damaged_spots,
        )
