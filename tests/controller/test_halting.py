"""The halting rules, one behaviour each, on small hand-made records (no scorer, no optimizer)."""

import math

import pytest
from helpers import score_row

from uedsteer.controller import halting
from uedsteer.controller.campaign import Campaign
from uedsteer.controller.config import CampaignConfig, ConstraintSpec
from uedsteer.controller.record import Step, Trial

SETTINGS = {"fluence": 0.5, "wavelength": 800.0, "charge": 20.0, "delay": 10.0}


def _shot(index=0, damage=0.0, spot=0, status="ok", objective=0.1, action="continue", **scores):
    row = {"damage_prob": damage, "objective": objective, "line_distance": 0.3, **scores}
    return Trial(index, dict(SETTINGS), spot, status=status, scores=row, action=action)


def _record(*damages, spot=0):
    return [_shot(i, d, spot) for i, d in enumerate(damages)]


def _row(damage=0.0, progress=0.1):
    return score_row(progress, damage)


def test_failed_shots_in_a_row_stop_and_a_good_shot_resets_the_count():
    cfg = CampaignConfig(max_failures=2)
    failed = _shot(status="failed")
    failed.error = "det: fault"
    assert halting.failures_reason(1, failed, cfg) == ""
    assert halting.failures_reason(2, failed, cfg) == "2 failed shots in a row (last: det: fault)"
    camp = Campaign(cfg)
    step = Step(camp.start_settings(), 0)
    actions = [camp.ingest(step, None, error="x").action, camp.ingest(step, _row()).action]
    actions += [camp.ingest(step, None, error="y").action, camp.ingest(step, None).action]
    assert actions == ["continue", "continue", "continue", "stop"]
    assert camp.record.stop_reason.startswith("2 failed shots in a row")


def test_damaged_frames_in_a_row_on_the_spot_mean_damage():
    cfg = CampaignConfig(halt_damage_prob=0.8, halt_consecutive=2, hurt_spot_frames=None)
    assert halting.damage_reason(_record(0.0, 0.9), cfg) == ""
    assert halting.damage_reason(_record(0.9, 0.9), cfg) == (
        "damage on spot 0: damage probability ≥ 0.8 in 2 consecutive frames"
    )
    # a failed shot between them is skipped; a frame below the level or another spot ends it
    trials = _record(0.9, 0.9)
    trials.insert(1, _shot(1, math.nan, status="failed"))
    assert halting.damage_run(trials, 0.8) == 2
    assert halting.damage_reason(_record(0.9, 0.5, 0.9), cfg) == ""
    other = [_shot(0, 0.9, spot=0), _shot(1, 0.9, spot=1)]
    assert halting.damage_run(other, 0.8) == 1 and halting.damage_reason(other, cfg) == ""
    assert halting.damage_run([], 0.8) == 0


def test_a_lightly_hurt_spot_counts_as_damaged():
    cfg = CampaignConfig(hurt_spot_frames=3)
    assert halting.damage_reason(_record(0.6, 0.7), cfg) == ""
    assert halting.damage_reason(_record(0.6, 0.7, 0.6), cfg) == (
        "damage on spot 0: damage probability ≥ 0.5 in 3 consecutive frames"
    )
    assert (
        halting.damage_reason(
            _record(0.6, 0.7, 0.6), cfg.model_copy(update={"hurt_spot_frames": None})
        )
        == ""
    )


def test_damage_halts_or_moves_until_no_fresh_spot_is_left():
    assert halting.damage_stop("damage on spot 0", CampaignConfig()) == "damage on spot 0"
    move = CampaignConfig(on_damage="move")
    assert halting.damage_stop("damage", move) == "damage; no fresh spot left"
    camp = Campaign(move, spots=[0, 1])
    assert [camp.ingest(Step(SETTINGS, 0), _row(damage=0.9)).action for _ in "ab"] == [
        "continue",
        "move",
    ]
    assert camp.spot == 1 and camp.damaged_spots == [0] and not camp.stopped
    for action in ("continue", "stop"):
        assert camp.ingest(Step(SETTINGS, 1), _row(damage=0.9)).action == action
    assert camp.record.stop_reason.endswith("; no fresh spot left")


def test_the_target_needs_a_safe_frame_within_every_constraint():
    cfg = CampaignConfig(target=0.8, damage_bound=0.2)
    assert halting.target_met(_shot(objective=0.8).scores, cfg)
    assert not halting.target_met(_shot(objective=0.79).scores, cfg)
    assert not halting.target_met(_shot(objective=0.9, damage=0.3).scores, cfg), "damage bound"
    assert not halting.target_met(_shot(objective=0.9, line_distance=3.5).scores, cfg)
    assert not halting.target_met(_shot(objective=0.9, line_distance=math.nan).scores, cfg)
    low = cfg.model_copy(
        update={"constraints": (ConstraintSpec(score="heating", bound=0.01, sense="min"),)}
    )
    assert not halting.target_met(_shot(objective=0.9, heating=0.005).scores, low)
    assert halting.target_met(_shot(objective=0.9, heating=0.02).scores, low)
    extra = _shot(objective=0.9, constraint_cost=2.0).scores
    assert halting.target_met(extra, cfg, {"cost": 2.0})
    assert not halting.target_met(extra, cfg, {"cost": 1.0})
    assert not halting.target_met(_shot(objective=0.9).scores, cfg, {"cost": 1.0}), "unmeasured"
    shot = _shot(index=7, objective=0.8312)
    assert halting.target_reason(shot, cfg) == "target reached: progress = 0.831 ≥ 0.8 on shot 7"
    assert halting.target_reason(shot, cfg, custom_objective=True).startswith(
        "target reached: objective = 0.831"
    )


def test_the_budget_counts_every_shot():
    cfg = CampaignConfig(budget=3)
    assert halting.budget_reason(2, cfg) == ""
    assert halting.budget_reason(3, cfg) == "shot budget of 3 used"
    camp = Campaign(cfg)
    actions = [camp.ingest(Step(SETTINGS, 0), r).action for r in (_row(), None, _row())]
    assert actions == ["continue", "continue", "stop"]
    assert camp.finished_reason == "shot budget of 3 used"


def test_exploring_without_a_better_objective_for_patience_shots_stops():
    cfg = CampaignConfig(patience=3)
    trials = [_shot(i, objective=v) for i, v in enumerate((0.1, 0.5, 0.2, 0.3))]
    assert halting.shots_since_best(trials) == 2 and halting.stalled_reason(trials, cfg) == ""
    trials.append(_shot(4, status="failed", objective=math.nan))
    assert halting.shots_since_best(trials) == 3
    assert halting.stalled_reason(trials, cfg) == (
        "no safe candidate is expected to improve the objective: no better progress for 3 "
        "shots and expected improvement below 1 % of the gap"
    )
    assert halting.shots_since_best([]) == 0


def test_no_safe_candidate_stops_with_the_optimizer_s_reason():
    assert halting.no_safe_reason(ValueError("damage bound")) == "no safe candidate: damage bound"


def test_the_record_says_which_rule_stopped_it():
    cfg = CampaignConfig(budget=3)
    assert halting.recorded_stop([], cfg) == ""
    assert halting.recorded_stop(_record(0.0, 0.0, 0.0), cfg) == "", "the last shot continued"
    budget = _record(0.0, 0.0) + [_shot(2, action="stop")]
    assert halting.recorded_stop(budget, cfg) == "shot budget of 3 used"
    target = [_shot(0, objective=0.9, action="stop")]
    assert halting.recorded_stop(target, cfg).startswith("target reached: progress = 0.900")
    damage = _record(0.9) + [_shot(1, 0.9, action="stop")]
    assert halting.recorded_stop(damage, cfg).startswith("damage on spot 0")
    failed = _record(0.0) + [_shot(1, status="failed", action="stop")]
    assert halting.recorded_stop(failed, cfg) == "", "a campaign stopped by failures continues"
    assert halting.recorded_stop(budget, cfg.model_copy(update={"budget": 4})) == ""


@pytest.mark.parametrize(
    ("stop", "changes", "config", "finished"),
    [
        ("target reached: x", {}, {}, "(resumed: raise the target above 0.8 to continue)"),
        ("target reached: x", {"target": (0.8, 0.9)}, {}, None),
        ("damage on spot 0", {}, {}, "(resumed: a campaign halted by damage does not continue)"),
        ("damage on spot 0", {}, {"on_damage": "move"}, "(resumed: every spot given is damaged"),
        ("no safe candidate: x", {}, {}, "(resumed: raise the budget or the target to try again)"),
        ("no safe candidate: x", {"budget": (40, 41)}, {}, None),
        ("no safe candidate: x", {"target": (0.8, 0.9)}, {}, None),
        ("no safe candidate: x", {"target": (0.8, 0.7)}, {}, "(resumed: raise the budget"),
        ("user interrupt", {}, {}, None),
        ("user interrupt", {}, {"budget": 2}, "shot budget of 2 used (resumed with 2 shots"),
    ],
)
def test_a_finished_campaign_continues_on_resume_only_when_its_stop_is_lifted(
    stop, changes, config, finished
):
    cfg = CampaignConfig(**config)
    recorded = {k: {"recorded": a, "resumed": b} for k, (a, b) in changes.items()}
    got = halting.finished_on_resume(stop, 2, cfg, recorded, spots=[0], damaged_spots=[0])
    if finished is None:
        assert got is None
    else:
        assert finished in got
    fresh = halting.finished_on_resume(
        "damage on spot 0", 2, CampaignConfig(on_damage="move"), {}, [0, 1], [0]
    )
    assert fresh is None, "a fresh spot continues a campaign moved by damage"
