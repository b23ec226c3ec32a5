"""The halting rules: after each shot, and before each proposal, whether the campaign goes on.

Each rule is one function of the record (and the configuration) that returns why it stops the
campaign, or ``""`` when it does not; the rule is stated once, in its docstring.
:class:`~uedsteer.controller.campaign.Campaign` applies them in this order after a shot:
:func:`failures_reason` (failed shots), :func:`damage_reason` (the spot is damaged: move to a
fresh spot with ``on_damage="move"``, else :func:`damage_stop`), :func:`target_met`
(:func:`target_reason`), :func:`budget_reason`. Before a proposal: :func:`budget_reason`, then
after it :func:`stalled_reason`. :func:`recorded_stop` reads which of them stopped a recorded
campaign, and :func:`finished_on_resume` says whether a resumed one may go on.

The reasons' first words (``damage``, ``target reached``, ``no safe candidate``) are what
:func:`finished_on_resume` recognises a recorded stop by; :func:`stalled_reason`'s also begins
with ``no safe candidate`` and is treated alike.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .attribution import DAMAGED
from .config import CampaignConfig
from .record import Trial


def failures_reason(failures: int, trial: Trial, config: CampaignConfig) -> str:
    """Rule: ``config.max_failures`` failed shots in a row (device fault, invalid frame) stop
    the campaign; ``failures`` is the run of failed shots ending with ``trial``."""
    if failures >= config.max_failures:
        return f"{failures} failed shots in a row (last: {trial.error})"
    return ""


def damage_run(trials: Sequence[Trial], level: float, frame: str = "damage_prob") -> int:
    """Frames in a row, at the end of the record on the latest shot's spot, whose damage
    probability reaches ``level``: the shots' own frames (``frame="damage_prob"``; failed
    shots are skipped) or their check frames (``"check_damage_prob"``; shots without one are
    skipped)."""
    if not trials:
        return 0
    run = 0
    for t in reversed(trials):
        if t.spot != trials[-1].spot:
            break
        p = t.scores.get(frame, math.nan)
        if t.status != "ok" or not np.isfinite(p):
            continue
        if not p >= level:
            break
        run += 1
    return run


def damage_reason(trials: Sequence[Trial], config: CampaignConfig) -> str:
    """Rule: the spot of the latest shot is damaged when its last ``config.halt_consecutive``
    successful frames in a row reach a damage probability of ``config.halt_damage_prob``, or
    its last ``config.hurt_spot_frames`` reach :data:`~uedsteer.controller.attribution.DAMAGED`
    (a lightly hurt spot, whose damage probabilities hover below the halt level).

    The shots' frames and, with ``check_frames``, the check frames are counted apart: a pumped
    frame can read a hurt spot as undamaged where the probe-only frame of the shot before did
    not, so the two kinds interleaved would never make a run.
    """
    spot = trials[-1].spot
    for frame, kind in (("damage_prob", "frames"), ("check_damage_prob", "check frames")):
        if damage_run(trials, config.halt_damage_prob, frame) >= config.halt_consecutive:
            return (
                f"damage on spot {spot}: damage probability ≥ {config.halt_damage_prob} "
                f"in {config.halt_consecutive} consecutive {kind}"
            )
        if config.hurt_spot_frames is not None and damage_run(trials, DAMAGED, frame) >= (
            config.hurt_spot_frames
        ):
            return (
                f"damage on spot {spot}: damage probability ≥ {DAMAGED} in "
                f"{config.hurt_spot_frames} consecutive {kind}"
            )
    return ""


def damage_stop(reason: str, config: CampaignConfig) -> str:
    """Why a damaged spot stops the campaign: with ``on_damage="halt"`` the damage itself, with
    ``"move"`` because no fresh spot is left to move to."""
    return reason + ("" if config.on_damage == "halt" else "; no fresh spot left")


def target_met(
    scores: Mapping[str, float],
    config: CampaignConfig,
    extra_bounds: Mapping[str, float] | None = None,
) -> bool:
    """Rule: a shot reaches the target when its objective is at least ``config.target``, its
    damage probability (and its check frame's, once taken) at most ``config.damage_bound``,
    and every score constraint and extra constraint (``constraint_<name>`` at most its bound
    in ``extra_bounds``) holds with a finite value."""
    s = scores
    if not (s["objective"] >= config.target and s["damage_prob"] <= config.damage_bound):
        return False
    if s.get("check_damage_prob", 0.0) > config.damage_bound:
        return False  # the probe-only frame after the shot shows the damage it did
    for c in config.constraints:
        v = s[c.score]
        if not np.isfinite(v) or (v > c.bound if c.sense == "max" else v < c.bound):
            return False
    for name, bound in (extra_bounds or {}).items():
        v = s.get(f"constraint_{name}", math.nan)
        if not np.isfinite(v) or v > bound:
            return False
    return True


def _objective_name(config: CampaignConfig, custom_objective: bool) -> str:
    return config.objective if not custom_objective else "objective"


def target_reason(trial: Trial, config: CampaignConfig, custom_objective: bool = False) -> str:
    """Why ``trial``, which met the target (:func:`target_met`), stopped the campaign
    (``custom_objective``: the objective is a Python function, not a score field)."""
    name = _objective_name(config, custom_objective)
    return (
        f"target reached: {name} = {trial.scores['objective']:.3f} ≥ {config.target} on shot "
        f"{trial.index}"
    )


def budget_reason(n_shots: int, config: CampaignConfig) -> str:
    """Rule: the campaign stops once it has fired ``config.budget`` shots, failed ones too."""
    if n_shots >= config.budget:
        return f"shot budget of {config.budget} used"
    return ""


def shots_since_best(trials: Sequence[Trial]) -> int:
    """Shots after the one with the best objective so far (failed shots count as worst)."""
    vals = [t.scores.get("objective", math.nan) for t in trials]
    vals = [v if np.isfinite(v) else -np.inf for v in vals]
    if not vals:
        return 0
    return len(vals) - 1 - int(np.argmax(vals))


def stalled_reason(
    trials: Sequence[Trial], config: CampaignConfig, custom_objective: bool = False
) -> str:
    """Rule: while the optimizer only explores (no candidate is expected to improve the
    objective by 1 % of the gap), ``config.patience`` shots without a better objective stop
    the campaign. Call it only for a proposal whose strategy is ``explore``."""
    if shots_since_best(trials) < config.patience:
        return ""
    name = _objective_name(config, custom_objective)
    return (
        f"no safe candidate is expected to improve the objective: no better "
        f"{name} for {config.patience} shots and expected improvement below 1 % of the gap"
    )


def no_safe_reason(error: Exception) -> str:
    """Rule: the campaign stops when the optimizer finds no safe candidate (``error`` says
    which rules bind)."""
    return f"no safe candidate: {error}"


def recorded_stop(
    trials: Sequence[Trial],
    config: CampaignConfig,
    extra_bounds: Mapping[str, float] | None = None,
    custom_objective: bool = False,
) -> str:
    """Why the halting rules of ``config`` stopped after the record's last shot.

    The record itself says whether the campaign finished, also for a run that ended before
    its stop document or crashed after its stopping shot. "" when the last shot did not
    stop it, or when a failed shot did (a campaign stopped by failures may continue).
    """
    if not trials or trials[-1].action != "stop" or trials[-1].status != "ok":
        return ""
    last = trials[-1]
    what = damage_reason(trials, config)
    if what:
        return damage_stop(what, config)
    if target_met(last.scores, config, extra_bounds):
        return target_reason(last, config, custom_objective)
    return budget_reason(len(trials), config)


def raised(changes: Mapping[str, Mapping[str, Any]], name: str) -> bool:
    """Whether the resume ``changes`` raised the configuration field ``name``."""
    change = changes.get(name)
    return change is not None and change["resumed"] > change["recorded"]


def finished_on_resume(
    previous_stop: str,
    n_shots: int,
    config: CampaignConfig,
    changes: Mapping[str, Mapping[str, Any]],
    spots: Sequence[int],
    damaged_spots: Sequence[int],
) -> str | None:
    """Rule: why a resumed campaign whose run had finished fires nothing (None: it continues).

    Applies before the resumed campaign's first new shot. A run that stopped on the target
    (``previous_stop``) continues when the target was raised (``changes``); on the budget,
    when the budget now exceeds the ``n_shots`` recorded; on "no safe candidate", when the
    budget or the target was raised; on damage, only with ``on_damage="move"`` and a fresh
    spot among ``spots``. A run stopped by the user, a signal, repeated failures or a crash
    continues.
    """
    reason, n = previous_stop, n_shots
    if reason.startswith("target reached") and not raised(changes, "target"):
        return f"{reason} (resumed: raise the target above {config.target} to continue)"
    if reason.startswith("damage"):
        if config.on_damage != "move":
            return f"{reason} (resumed: a campaign halted by damage does not continue)"
        if all(s in damaged_spots for s in spots):
            return (
                f"{reason} (resumed: every spot given is damaged; give fresh spots with "
                "spots=[...] to continue on one)"
            )
    if reason.startswith("no safe candidate") and not (
        raised(changes, "budget") or raised(changes, "target")
    ):
        return f"{reason} (resumed: raise the budget or the target to try again)"
    if n >= config.budget:
        return (
            f"shot budget of {config.budget} used (resumed with {n} shots recorded: raise the "
            f"budget above {n} to continue)"
        )
    return None
