"""Campaign state: damage attribution, halting rules and resume (the record: :mod:`.record`).

A :class:`Campaign` is the controller's side of the loop. The bluesky plan
(:func:`uedsteer.plans.campaign`) asks it for the next settings (:meth:`Campaign.next`), moves
the devices, acquires and scores a frame, and hands the result back (:meth:`Campaign.ingest`),
which applies the halting rules and says what to do next.

Damage attribution. Damage is irreversible and shows in the frames *after* the shot that
caused it. The damage evidence of a shot is therefore the damage probability of the next frame
on the same spot (its own frame's while no later frame exists). A frame that already shows
damage says nothing about its own settings (the spot was hurt before), so such shots are left
out of the damage model; they stay in the record.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from uedsteer.sim_devices.contracts import SETTING_NAMES

from .config import SCORE_NAMES, CampaignConfig
from .errors import NoSafeCandidate
from .record import CampaignRecord, Step, Stop, Trial, failed_scores, score_row
from .safe.optimizer import Proposal, SafeOptimizer

DAMAGED = 0.5
"""A frame whose damage probability reaches this shows a hurt spot (for attribution)."""

ScoreFn = Callable[[Mapping[str, Any]], float]


def _damage_free(damage: np.ndarray) -> np.ndarray:
    """Indices of the shots whose attributed damage is known and below ``DAMAGED``, latest
    first (failed shots and shots on a hurt spot have none)."""
    d = np.asarray(damage, dtype=np.float64)
    ok = np.flatnonzero(np.isfinite(d) & (d < DAMAGED))
    return ok[::-1]


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
        if len(self.record) >= self.config.budget:
            return f"shot budget of {self.config.budget} used"
        return None

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
        """Settings the next proposal must stay within the ramp limit of.

        The last shot, unless it caused or showed damage: then the latest shot with no damage
        evidence (the devices ramp back to it with no shot in between), or the safe start.
        Ramping on from a setting known to hurt the sample would carry the damage along.
        """
        clean = _damage_free(self.attributed_damage())
        if len(clean):
            return dict(self.record.trials[clean[0]].settings)
        return self.start_settings()

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
        cols["damage_prob"] = self.attributed_damage()
        return x, cols

    def attributed_damage(self) -> np.ndarray:
        """Damage evidence per shot: the next frame's damage probability on the same spot
        (own frame's for the latest shot); NaN for failed shots and shots on a spot that was
        already hurt."""
        trials = self.record.trials
        out = np.full(len(trials), np.nan)
        for i, t in enumerate(trials):
            own = t.scores.get("damage_prob", math.nan)
            if t.status != "ok" or not np.isfinite(own) or own >= DAMAGED:
                continue
            nxt = next(
                (
                    u
                    for u in trials[i + 1 :]
                    if u.spot == t.spot
                    and u.status == "ok"
                    and np.isfinite(u.scores.get("damage_prob", math.nan))
                ),
                None,
            )
            out[i] = own if nxt is None else max(own, nxt.scores["damage_prob"])
        return out

    # ------------------------------------------------------------------ the loop
    def next(self) -> Step | Stop:
        """The next shot's settings, or why the campaign is over."""
        cfg = self.config
        if self.stopped:
            return Stop(self.record.stop_reason or "")
        finished = self._finished_on_resume()
        if finished:
            return self._stop(finished)
        if len(self.record) >= cfg.budget:
            return self._stop(f"shot budget of {cfg.budget} used")
        ok_trials = [t for t in self.record.trials if t.status == "ok"]
        if len(ok_trials) < cfg.n_initial:
            start = self.start_settings()
            return Step(self._ramped(start), self.spot)
        x, cols = self.observations()
        last = np.array([self.ramp_origin()[n] for n in self.optimizer.names])
        t0 = time.perf_counter()
        try:
            prop = self._propose(x, cols, last)
        except NoSafeCandidate as err:
            self.proposal_seconds.append(time.perf_counter() - t0)
            return self._stop(f"no safe candidate: {err}")
        self.proposal_seconds.append(time.perf_counter() - t0)
        if prop.strategy == "explore" and self._shots_since_best() >= cfg.patience:
            return self._stop(
                f"no safe candidate is expected to improve the objective: no better "
                f"{cfg.objective if self.objective_fn is None else 'objective'} for "
                f"{cfg.patience} shots and expected improvement below 1 % of the gap"
            )
        settings = self.fixed_settings()
        settings.update(prop.settings)
        return Step(settings, self.spot, prop)

    def _propose(self, x: np.ndarray, cols: dict[str, np.ndarray], last: np.ndarray) -> Proposal:
        """A proposal within reach of ``last``; if nothing there is safe any more (damage
        shrank the safe set), one from the latest measured setting the models still call
        safe. Raises :class:`NoSafeCandidate` when there is neither."""
        try:
            return self.optimizer.propose(x, cols, last)
        except NoSafeCandidate:
            origin = self._safe_origin(x, cols, last)
            if origin is None:
                raise
        return self.optimizer.propose(x, cols, origin)

    def _safe_origin(
        self, x: np.ndarray, cols: dict[str, np.ndarray], last: np.ndarray
    ) -> np.ndarray | None:
        """The latest measured damage-free setting (or the safe start) that the models still
        call safe, other than ``last``; None if there is none.

        The devices ramp back to it between shots (no shot on the way), so the next proposal
        stays within the ramp limit of a setting known not to hurt the sample.
        """
        options = [x[i] for i in _damage_free(cols["damage_prob"])]
        start = self.start_settings()
        options.append(np.array([start[n] for n in self.optimizer.names]))
        points = np.array([o for o in options if np.any(np.abs(o - last) > 1e-9)])
        if not len(points):
            return None
        try:
            found = self.optimizer.safe_set(x, cols, points)
        except NoSafeCandidate:
            return None
        self.optimizer.keep_warm(found)  # the next proposal starts from these fits
        hits = np.flatnonzero(found.safe)
        if not len(hits):
            return None
        return points[hits[0]]

    def _shots_since_best(self) -> int:
        vals = [t.scores.get("objective", math.nan) for t in self.record.trials]
        vals = [v if np.isfinite(v) else -np.inf for v in vals]
        if not vals:
            return 0
        return len(vals) - 1 - int(np.argmax(vals))

    def _ramped(self, target: dict[str, float]) -> dict[str, float]:
        """``target`` clipped to the ramp limit around :meth:`ramp_origin`."""
        last = self.ramp_origin()
        out = dict(target)
        for p in self.config.parameters:
            lo, hi = last[p.name] - p.max_step, last[p.name] + p.max_step
            out[p.name] = float(min(max(target[p.name], lo), hi))
        return out

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

    def _rules(self, trial: Trial) -> str:
        cfg = self.config
        if trial.status != "ok":
            self._consecutive_failures += 1
            if self._consecutive_failures >= cfg.max_failures:
                self._stop(
                    f"{self._consecutive_failures} failed shots in a row (last: {trial.error})"
                )
                return "stop"
            return "continue"
        self._consecutive_failures = 0
        what = self._damage_reason(trial, cfg)
        if what:
            self.damaged_spots.append(trial.spot)
            if cfg.on_damage == "move" and self.spot_index + 1 < len(self.spots):
                self.spot_index += 1
                return "move"
            self._stop(what + ("" if cfg.on_damage == "halt" else "; no fresh spot left"))
            return "stop"
        if self._target_met(trial.scores):
            self._stop(self._target_reason(trial, cfg))
            return "stop"
        if len(self.record) >= cfg.budget:
            self._stop(f"shot budget of {cfg.budget} used")
            return "stop"
        return "continue"

    def _damage_reason(self, trial: Trial, cfg: CampaignConfig) -> str:
        """Why the frames up to ``trial`` (the latest) show a damaged spot ("" if they don't)."""
        if self._damage_run(cfg.halt_damage_prob) >= cfg.halt_consecutive:
            return (
                f"damage on spot {trial.spot}: damage probability ≥ {cfg.halt_damage_prob} "
                f"in {cfg.halt_consecutive} consecutive frames"
            )
        if cfg.hurt_spot_frames is not None and self._damage_run(DAMAGED) >= cfg.hurt_spot_frames:
            return (
                f"damage on spot {trial.spot}: damage probability ≥ {DAMAGED} in "
                f"{cfg.hurt_spot_frames} consecutive frames"
            )
        return ""

    def _target_reason(self, trial: Trial, cfg: CampaignConfig) -> str:
        name = cfg.objective if self.objective_fn is None else "objective"
        return (
            f"target reached: {name} = {trial.scores['objective']:.3f} ≥ {cfg.target} on shot "
            f"{trial.index}"
        )

    def _damage_run(self, level: float) -> int:
        """Successful frames in a row, at the end of the record on the current shot's spot,
        whose damage probability reaches ``level`` (failed shots are skipped)."""
        trials = self.record.trials
        if not trials:
            return 0
        run = 0
        for t in reversed(trials):
            if t.spot != trials[-1].spot:
                break
            if t.status != "ok":
                continue
            if not t.scores.get("damage_prob", 0.0) >= level:
                break
            run += 1
        return run

    def _target_met(self, s: Mapping[str, float], cfg: CampaignConfig | None = None) -> bool:
        cfg = cfg or self.config
        if not (s["objective"] >= cfg.target and s["damage_prob"] <= cfg.damage_bound):
            return False
        for c in cfg.constraints:
            v = s[c.score]
            if not np.isfinite(v) or (v > c.bound if c.sense == "max" else v < c.bound):
                return False
        for name, (_, bound) in self.extra_constraints.items():
            v = s.get(f"constraint_{name}", math.nan)
            if not np.isfinite(v) or v > bound:
                return False
        return True

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
        trials = self.record.trials
        if not trials or trials[-1].action != "stop" or trials[-1].status != "ok":
            return ""
        last = trials[-1]
        what = self._damage_reason(last, config)
        if what:
            return what + ("" if config.on_damage == "halt" else "; no fresh spot left")
        if self._target_met(last.scores, config):
            return self._target_reason(last, config)
        if len(trials) >= config.budget:
            return f"shot budget of {config.budget} used"
        return ""

    def _raised(self, name: str) -> bool:
        change = self.resume_changes.get(name)
        return change is not None and change["resumed"] > change["recorded"]

    def _finished_on_resume(self) -> str | None:
        """Why a resumed campaign whose run had finished fires nothing (None: it continues).

        Only before its first new shot. A run that stopped on the target continues when the
        target was raised; on the budget, when the budget now exceeds the shots recorded; on
        "no safe candidate", when the budget or the target was raised; on damage, only with
        ``on_damage="move"`` and a fresh spot. A run stopped by the user, a signal, repeated
        failures or a crash continues.
        """
        if self.resumed_from is None or len(self.record) != self._shots_at_resume:
            return None
        cfg, reason, n = self.config, self.previous_stop, len(self.record)
        if reason.startswith("target reached") and not self._raised("target"):
            return f"{reason} (resumed: raise the target above {cfg.target} to continue)"
        if reason.startswith("damage"):
            if cfg.on_damage != "move":
                return f"{reason} (resumed: a campaign halted by damage does not continue)"
            if all(s in self.damaged_spots for s in self.spots):
                return (
                    f"{reason} (resumed: every spot given is damaged; give fresh spots with "
                    "spots=[...] to continue on one)"
                )
        if reason.startswith("no safe candidate") and not (
            self._raised("budget") or self._raised("target")
        ):
            return f"{reason} (resumed: raise the budget or the target to try again)"
        if n >= cfg.budget:
            return (
                f"shot budget of {cfg.budget} used (resumed with {n} shots recorded: raise the "
                f"budget above {n} to continue)"
            )
        return None
