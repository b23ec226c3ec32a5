"""Closed-loop campaign: ramp limits between shots, halting, failed trials, catalog, resume."""

import json
import math
import threading
import time

import numpy as np
import pytest
from helpers import DamagingScorer, score_row

from uedsteer.controller.campaign import Campaign
from uedsteer.controller.config import CampaignConfig, ParameterSpec
from uedsteer.controller.plots import gp_maps
from uedsteer.controller.record import Step
from uedsteer.plans.catalog import local_catalog
from uedsteer.plans.resume import resume_campaign
from uedsteer.plans.simulate import simulate_campaign
from uedsteer.sim_devices.beamline import SimulatedBeamline
from uedsteer.sim_devices.response import ResponseParams
from uedsteer.surrogates.scorer import FrameScorer

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture(scope="module")
def scorer():
    return FrameScorer.pretrained()


def _row(progress=0.1, damage=0.0, heating=0.002):
    return score_row(progress, damage, heating)


def test_damage_is_attributed_to_the_shot_before_it_shows():
    camp = Campaign(CampaignConfig(halt_consecutive=5))
    step = Step(camp.start_settings(), 0)
    for d in (0.0, 0.0, 0.9, 0.95):
        camp.ingest(step, _row(damage=d))
    att = camp.attributed_damage()
    assert att[0] == 0.0 and att[1] == pytest.approx(0.9), "the shot before the damage"
    assert np.isnan(att[2]) and np.isnan(att[3]), "frames of a hurt spot say nothing new"


def test_ramp_origin_is_the_last_damage_free_shot():
    """After damage the next proposal ramps from the last setting that did no harm."""
    camp = Campaign(CampaignConfig(halt_consecutive=5))
    base = camp.start_settings()
    for f, d in ((1.0, 0.0), (2.0, 0.0), (3.5, 0.0), (5.0, 0.9)):
        row = _row(progress=0.03, damage=d, heating=0.002 * f)
        camp.ingest(Step({**base, "fluence": f}, 0), row)
    # shot 3.5 caused the damage seen in the 5.0 frame: the origin is the 2.0 shot
    assert camp.ramp_origin()["fluence"] == 2.0
    step = camp.next()
    assert isinstance(step, Step)
    assert abs(step.settings["fluence"] - 2.0) <= camp.config.parameter("fluence").max_step
    assert step.settings["fluence"] < 3.5, "never back to the setting that hurt the spot"
    fresh = Campaign(CampaignConfig())
    assert fresh.ramp_origin() == fresh.start_settings()


def test_a_spot_whose_frames_keep_showing_damage_counts_as_damaged():
    """Damage probabilities hovering at 0.6-0.8 never give two frames in a row at 0.8, yet the
    spot is hurt: three frames in a row at 0.5 or more move the campaign (or halt it)."""
    base = Campaign(CampaignConfig(on_damage="move")).start_settings()
    moved = Campaign(CampaignConfig(on_damage="move"), spots=[0, 1])
    actions = [moved.ingest(Step(base, moved.spot), _row(damage=d)).action for d in (0.7, 0.6)]
    assert actions == ["continue", "continue"]
    assert moved.ingest(Step(base, 0), _row(damage=0.75)).action == "move"
    assert moved.spot == 1 and moved.damaged_spots == [0]
    # a frame below 0.5 ends the run; frames on the fresh spot start a new one
    for d in (0.7, 0.3, 0.7, 0.7):
        assert moved.ingest(Step(base, 1), _row(damage=d)).action == "continue"
    halted = Campaign(CampaignConfig())
    for d in (0.6, 0.7, 0.6):
        halted.ingest(Step(base, 0), _row(damage=d))
    assert halted.stopped and "≥ 0.5 in 3 consecutive frames" in halted.record.stop_reason
    lenient = Campaign(CampaignConfig(hurt_spot_frames=None))
    for d in (0.6, 0.7, 0.6, 0.7):
        lenient.ingest(Step(base, 0), _row(damage=d))
    assert not lenient.stopped


def test_callable_objective_and_failed_shots_are_kept():
    camp = Campaign(CampaignConfig(), objective=lambda s: 1.0 - s["line_distance"])
    step = Step(camp.start_settings(), 0)
    t0 = camp.ingest(step, _row())
    t1 = camp.ingest(step, None, error="det: detector fault on trigger")
    t2 = camp.ingest(step, {**_row(), "valid": False, "flag": "nan"})
    assert t0.scores["objective"] == pytest.approx(0.7)
    assert t1.status == "failed" and "fault" in t1.error
    assert t2.status == "failed" and "nan" in t2.error and math.isnan(t2.scores["progress"])
    assert len(camp.record) == 3
    df = camp.record.to_dataframe()
    assert list(df["status"]) == ["ok", "failed", "failed"]
    camp.ingest(step, None, error="again")
    assert camp.stopped and "failed shots in a row" in camp.record.stop_reason
    # the approach step models the onset of progress, not a Python objective
    assert camp.optimizer.config.approach_width is None
    assert camp.config.approach_width == 0.1 and Campaign().optimizer.config.approach_width == 0.1


def test_short_simulated_campaign_keeps_ramp_limits_and_closes_shutter(scorer):
    cfg = CampaignConfig(budget=5)
    bl = SimulatedBeamline(seed=3)
    rec = simulate_campaign(cfg, scorer=scorer, beamline=bl)
    df = rec.to_dataframe()
    assert 1 <= len(df) <= 5
    for col in (
        "fluence",
        "wavelength",
        "progress",
        "damage_prob",
        "heating",
        "truth_x",
        "truth_vacancy",
        "truth_molten",
    ):
        assert col in df
    steps = np.abs(np.diff(df[["fluence", "wavelength"]].to_numpy(), axis=0))
    assert np.all(steps <= np.array([1.5, 150.0]) + 1e-9), "ramp limit between shots"
    assert df["fluence"].max() <= 12.0 and df["fluence"].min() >= 0.2
    assert bl.pump.shutter.get() == "closed"
    assert rec.stop_reason
    # the hidden truth is consistent with the beamline's own history
    assert df["truth_x"].tolist() == pytest.approx([h["x"] for h in bl.history[3:]])


def test_halting_on_damage_closes_shutter_and_records_reason(scorer, tmp_path):
    cat = local_catalog(tmp_path / "cat")
    bl = SimulatedBeamline(seed=1)
    rec = simulate_campaign(
        CampaignConfig(budget=12), scorer=DamagingScorer(scorer, 4), beamline=bl, catalog=cat
    )
    assert rec.stop_reason.startswith("damage on spot 0"), rec.stop_reason
    assert len(rec) == 6, "halts on the second damaged frame"
    assert rec.trials[5].settings["fluence"] <= rec.trials[3].settings["fluence"], "backs off"
    assert rec.trials[-1].action == "stop"
    assert bl.pump.shutter.get() == "closed"
    run = cat.values().last()
    assert run.metadata["stop"]["reason"].startswith("damage on spot 0")
    assert list(np.asarray(run["primary"]["campaign_action"].read()))[-1] == "stop"


def test_move_policy_goes_to_a_fresh_spot(scorer):
    bl = SimulatedBeamline(seed=1)
    camp = Campaign(CampaignConfig(budget=6, on_damage="move"))
    rec = simulate_campaign(scorer=DamagingScorer(scorer, 3), beamline=bl, controller=camp)
    assert [t.spot for t in rec.trials[:5]] == [0] * 5
    assert rec.trials[4].action == "move" and camp.spot == 1 and camp.damaged_spots == [0]
    assert int(bl.stage.spot.get()) == 1
    # the damaging setting (shot 3, seen in frame 4) is outside the safe set from now on
    x, cols = camp.observations()
    safe = camp.optimizer.safe_set(x, cols, x[3:4]).safe
    assert not safe[0]
    if len(rec) > 5:
        assert rec.trials[5].spot == 1


def test_detector_faults_become_failed_trials_in_the_catalog(scorer, tmp_path):
    cat = local_catalog(tmp_path / "cat")
    bl = SimulatedBeamline(seed=2)
    bl.detector.inject_fault("raise", after=3 + 1)  # 3 reference frames, then 1 good shot
    rec = simulate_campaign(CampaignConfig(budget=3), scorer=scorer, beamline=bl, catalog=cat)
    assert [t.status for t in rec.trials] == ["ok", "failed", "ok"]
    assert "detector fault" in rec.trials[1].error
    run = cat.values().last()
    assert np.asarray(run["failures"]["campaign_shot"].read()).tolist() == [1]
    assert np.asarray(run["primary"]["campaign_shot"].read()).tolist() == [0, 2]
    # why each point was chosen is recorded with the proposal, and in the record
    modes = [str(m) for m in np.asarray(run["proposals"]["proposal_mode"].read())]
    assert modes == [t.proposal["mode"] for t in rec.trials]
    why = ("climb", "improve", "explore", "approach")
    assert modes[0] == "initial" and modes[-1].split("+")[0] in why


def test_campaign_runs_in_the_ipython_session_namespace(tmp_path):
    from uedsteer.plans.session import make_session

    ns = make_session(tmp_path / "cat", seed=4, live_table=False)
    camp = ns["Campaign"](ns["CampaignConfig"](budget=2))
    ns["RE"](ns["campaign"](ns["bl"], ns["scorer"], camp))
    run = ns["db"].values().last()
    assert run.metadata["start"]["plan_name"] == "campaign"
    assert run.metadata["stop"]["reason"] == "shot budget of 2 used"
    assert np.asarray(run["primary"]["campaign_shot"].read()).tolist() == [0, 1]
    assert ns["bl"].pump.shutter.get() == "closed"
    # the plots of the campaign so far, from the session
    paths = ns["campaign_plots"](camp, ns["scorer"].line, tmp_path / "plots")
    assert sorted(p.name for p in paths) == [
        "campaign_gp_maps.png",
        "campaign_latent.png",
        "campaign_objective.png",
    ]
    assert all(p.stat().st_size > 10_000 for p in paths)
    with pytest.raises(ValueError, match="no shot"):
        ns["campaign_plots"](ns["Campaign"](), ns["scorer"].line, tmp_path / "none")


def test_nan_frames_become_failed_trials_and_train_nothing(scorer):
    bl = SimulatedBeamline(seed=2)
    bl.detector.inject_fault("nan", after=3 + 1)
    camp = Campaign(CampaignConfig(budget=3))
    rec = simulate_campaign(scorer=scorer, beamline=bl, controller=camp)
    assert [t.status for t in rec.trials] == ["ok", "failed", "ok"]
    assert rec.trials[1].error == "invalid frame (nan)"
    assert math.isnan(rec.trials[1].scores["progress"])
    _, cols = camp.observations()
    assert np.isnan(cols["objective"][1]) and np.isnan(cols["damage_prob"][1])


def test_interrupt_closes_the_shutter_and_the_campaign_resumes(scorer, tmp_path):
    from bluesky import RunEngine
    from bluesky.utils import RunEngineInterrupted

    cat = local_catalog(tmp_path / "cat")
    RE = RunEngine({}, context_managers=[])
    bl = SimulatedBeamline(seed=7)

    def pause_after_two(trial):
        if trial.index == 1:  # what Ctrl-C does, from another thread like a signal handler
            threading.Thread(target=RE.request_pause, kwargs={"defer": True}).start()
            time.sleep(0.5)

    camp = Campaign(CampaignConfig(budget=6))
    with pytest.raises(RunEngineInterrupted):
        simulate_campaign(
            scorer=scorer,
            beamline=bl,
            controller=camp,
            catalog=cat,
            RE=RE,
            on_shot=pause_after_two,
        )
    RE.abort("user interrupt")
    assert bl.pump.shutter.get() == "closed"
    run = cat.values().last()
    assert run.metadata["stop"]["exit_status"] == "abort"
    again = resume_campaign(cat, run.metadata["start"]["uid"])
    n = len(camp.record)
    assert 2 <= n < 6, "paused between shots, before the budget"
    assert [t.index for t in again.record.trials] == list(range(n))


def test_cli_campaign_writes_plots_and_resumes(tmp_path, capsys):
    from uedsteer.controller.cli import main

    cat, out = str(tmp_path / "cat"), tmp_path / "out"
    assert main(["campaign", "--budget", "2", "--catalog", cat, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "stop: shot budget of 2 used" in text and "hidden truth" in text
    for name in ("campaign_gp_maps.png", "campaign_objective.png", "campaign_latent.png"):
        assert (out / name).stat().st_size > 10_000
    uid = text.split("--resume ")[1].split()[0]  # printed when the run opens
    assert (
        main(["campaign", "--budget", "3", "--catalog", cat, "--out", str(out), "--resume", uid])
        == 0
    )
    assert "resuming" in capsys.readouterr().out
    import pandas as pd

    assert pd.read_csv(out / "campaign.csv")["shot"].tolist() == [0, 1, 2]


def test_a_steered_charge_keeps_its_ramp_limit_and_the_gun_follows(scorer, tmp_path):
    base = CampaignConfig()
    charge = ParameterSpec(name="charge", low=5.0, high=100.0, max_step=20.0, safe_start=20.0)
    cfg = CampaignConfig(parameters=(*base.parameters, charge), fixed={"delay": 10.0}, budget=7)
    # sample 205's band lies away from 800 nm: after the climb the search moves every setting
    bl = SimulatedBeamline(ResponseParams.random(205), seed=0)
    camp = Campaign(cfg)
    df = simulate_campaign(scorer=scorer, controller=camp, beamline=bl).to_dataframe()
    assert df["charge"].iloc[0] == 20.0 and df["charge"].nunique() > 1
    steps = np.abs(np.diff(df[["fluence", "wavelength", "charge"]].to_numpy(), axis=0))
    assert np.all(steps <= np.array([1.5, 150.0, 20.0]) + 1e-9), "ramp limits between shots"
    assert df["charge"].between(5.0, 100.0).all() and (df["delay"] == 10.0).all()
    assert bl.gun.charge.get() == pytest.approx(df["charge"].iloc[-1])
    # the maps are a fluence × wavelength slice at the last charge
    assert gp_maps(camp, tmp_path / "maps.png").stat().st_size > 10_000


def test_drawing_the_gp_maps_leaves_the_controller_unchanged(scorer, tmp_path):
    camp = Campaign(CampaignConfig(budget=4))
    simulate_campaign(scorer=scorer, controller=camp, seed=2)
    before = json.dumps(camp.optimizer.export_state(), sort_keys=True)
    gp_maps(camp, tmp_path / "maps.png")
    # the warm-started GP state the next proposal starts from is untouched
    assert json.dumps(camp.optimizer.export_state(), sort_keys=True) == before


def test_frames_per_point_averages_every_frame_and_is_restored(scorer):
    bl = SimulatedBeamline(seed=6)
    simulate_campaign(CampaignConfig(budget=2, frames_per_point=3), scorer=scorer, beamline=bl)
    # 3 reference frames and 2 shots, each an average of 3 detector frames (3 pump pulses)
    assert [h["shutter"] for h in bl.history] == ["closed"] * 9 + ["open"] * 6
    assert bl.detector.frames_per_point.get() == 1
