"""Resuming a campaign: the recorded configuration and what may change on resume, one line of
runs per campaign, finished campaigns, and the simulated sample (its spots and the record's
proposal figures) coming back. Every test runs short simulated campaigns into an embedded
catalog and resumes them from it."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from helpers import DamagingScorer

from uedsteer.controller.campaign import Campaign
from uedsteer.controller.config import CampaignConfig, ParameterSpec
from uedsteer.controller.record import Step, Stop
from uedsteer.controller.resume_changes import config_changes
from uedsteer.plans.catalog import local_catalog
from uedsteer.plans.resume import AlreadyResumed, children, resume_campaign
from uedsteer.plans.simulate import (
    SIMULATION_KEY,
    restore_simulated_sample,
    resume_simulation,
    simulate_campaign,
)
from uedsteer.sim_devices.beamline import SimulatedBeamline
from uedsteer.sim_devices.response import ResponseParams
from uedsteer.surrogates.scorer import FrameScorer

pytestmark = pytest.mark.filterwarnings("ignore")

BLUE = ParameterSpec(name="wavelength", low=420.0, high=480.0, max_step=30.0, safe_start=450.0)


def blue_config(**fields) -> CampaignConfig:
    """A campaign steering the wavelength in 420–480 nm only (the defaults search 500–1100)."""
    return CampaignConfig(parameters=(CampaignConfig().parameter("fluence"), BLUE), **fields)


@pytest.fixture(scope="module")
def scorer():
    return FrameScorer.pretrained()


@pytest.fixture(scope="module")
def chain(scorer, tmp_path_factory):
    """Run ``a``: two shots at 420–480 nm; run ``b`` resumes it with a budget of 4."""
    path = tmp_path_factory.mktemp("chain") / "cat"
    cat = local_catalog(path)
    simulate_campaign(blue_config(budget=2), scorer=scorer, catalog=cat, seed=1)
    a = cat.values().last().metadata["start"]["uid"]
    camp = resume_campaign(cat, a, changes={"budget": 4})
    simulate_campaign(scorer=scorer, catalog=cat, controller=camp)
    b = cat.values().last().metadata["start"]["uid"]
    return SimpleNamespace(cat=cat, path=path, a=a, b=b, camp=camp)


def _one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text, text
    return text


def test_resume_continues_the_recorded_configuration(chain):
    camp = chain.camp
    assert camp.config == blue_config(budget=4), "the recorded campaign, budget changed only"
    assert camp.resume_changes == {"budget": {"recorded": 2, "resumed": 4}}
    assert len(camp.record) > 2, "the resumed campaign fired"
    assert all(420.0 <= t.settings["wavelength"] <= 480.0 for t in camp.record.trials)
    run = chain.cat[chain.b]
    start = run.metadata["start"]
    assert start["resumed_from"] == chain.a
    assert start["campaign_config"] == blue_config(budget=4).model_dump(mode="json")
    wavelengths = np.asarray(run["primary"]["pump_wavelength"].read())
    assert len(wavelengths) and np.all((wavelengths >= 420.0) & (wavelengths <= 480.0))
    # a full configuration with the defaults (what a budget on the command line gave) is refused
    with pytest.raises(ValueError) as err:
        resume_campaign(chain.cat, chain.b, config=CampaignConfig(budget=9))
    text = _one_line(err)
    assert "parameters[wavelength].low: recorded 420.0, asked 500.0" in text


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"damage_bound": 0.3}, "damage_bound: recorded 0.2, asked 0.3"),
        ({"halt_damage_prob": 0.9}, "halt_damage_prob: recorded 0.8, asked 0.9"),
        ({"halt_consecutive": 3}, "halt_consecutive: recorded 2, asked 3"),
        ({"hurt_spot_frames": None}, "hurt_spot_frames: recorded 3, asked None"),
        ({"beta": 1.0}, "beta: recorded 2.0, asked 1.0"),
        ({"on_damage": "move"}, "on_damage: recorded 'halt', asked 'move'"),
        ({"objective": "heating"}, "objective: recorded 'progress', asked 'heating'"),
        ({"seed": 3}, "seed: recorded 0, asked 3"),
        ({"frames_per_point": 2}, "frames_per_point: recorded 1, asked 2"),
        ({"fixed": {"charge": 40.0, "delay": 10.0}}, "fixed: recorded"),
        ({"bogus": 1}, "bogus: CampaignConfig has no such field"),
        ({"budget": 0}, "budget: recorded 4, asked 0"),
    ],
)
def test_changes_that_loosen_safety_or_change_the_campaign_are_refused(chain, changes, words):
    with pytest.raises(ValueError) as err:
        resume_campaign(chain.cat, chain.b, changes=changes)
    assert f"resume cannot change {words}" in _one_line(err)


def test_budget_target_and_tighter_halting_may_change(chain):
    tighter = {
        "budget": 6,
        "target": 0.9,
        "damage_bound": 0.1,
        "halt_damage_prob": 0.7,
        "halt_consecutive": 1,
        "hurt_spot_frames": 2,
        "beta": 3.0,
        "max_failures": 2,
        "heating_max": 0.05,
        "on_damage": "halt",
    }
    camp = resume_campaign(chain.cat, chain.b, changes=tighter)
    assert camp.config == blue_config(**tighter)
    recorded = blue_config(budget=4).model_dump(mode="json")
    assert camp.resume_changes == {
        k: {"recorded": recorded[k], "resumed": v} for k, v in tighter.items() if k != "on_damage"
    }
    # a configuration file given on resume: its differences become changes
    asked = blue_config(budget=9, damage_bound=0.1)
    assert config_changes(blue_config(budget=4), asked) == {"budget": 9, "damage_bound": 0.1}
    camp = resume_campaign(chain.cat, chain.b, config=asked)
    assert camp.config == asked and set(camp.resume_changes) == {"budget", "damage_bound"}


def test_a_run_already_resumed_is_refused_or_followed(chain):
    assert [r.metadata["start"]["uid"] for r in children(chain.cat, chain.a)] == [chain.b]
    with pytest.raises(AlreadyResumed) as err:
        resume_campaign(chain.cat, chain.a, changes={"budget": 6})
    text = _one_line(err)
    assert f"already resumed by run {chain.b!r}" in text and "follow='newest'" in text
    assert (err.value.uid, err.value.children, err.value.newest) == (chain.a, [chain.b], chain.b)
    camp = resume_campaign(chain.cat, chain.a, changes={"budget": 6}, follow="newest")
    assert camp.resumed_from == chain.b
    assert [t.index for t in camp.record.trials] == list(range(len(chain.camp.record)))
    with pytest.raises(ValueError, match="follow='sideways'"):
        resume_campaign(chain.cat, chain.b, follow="sideways")
    with pytest.raises(ValueError) as err:
        resume_campaign(chain.cat, "no-such-run")
    assert _one_line(err) == f"no run 'no-such-run' in catalog {chain.path.resolve()}"


def test_a_finished_budget_fires_nothing_unless_raised(chain):
    camp = resume_campaign(chain.cat, chain.b)
    n = len(camp.record)
    assert camp.finished_reason == (
        f"shot budget of 4 used (resumed with {n} shots recorded: raise the budget above {n} "
        "to continue)"
    )
    stop = camp.next()
    assert isinstance(stop, Stop) and stop.reason == camp.finished_reason and len(camp.record) == n
    raised = resume_campaign(chain.cat, chain.b, changes={"budget": n + 1})
    assert raised.finished_reason is None
    assert isinstance(raised.next(), Step)


def test_a_reached_target_needs_a_higher_target(scorer, tmp_path):
    cat = local_catalog(tmp_path / "cat")
    cfg = CampaignConfig(budget=3, target=-5.0, constraints=())

    def crash_after_stop(trial):  # the process dies after the stopping shot
        if trial.action == "stop":
            raise RuntimeError("power cut")

    with pytest.raises(RuntimeError, match="power cut"):
        simulate_campaign(cfg, scorer=scorer, catalog=cat, seed=2, on_shot=crash_after_stop)
    uid = cat.values().last().metadata["start"]["uid"]
    assert cat[uid].metadata["stop"]["reason"] == "power cut"
    camp = resume_campaign(cat, uid, changes={"budget": 5})
    assert camp.previous_stop.startswith("target reached")
    assert camp.finished_reason.endswith("(resumed: raise the target above -5.0 to continue)")
    bl = SimulatedBeamline(seed=2)
    rec = simulate_campaign(scorer=scorer, controller=camp, catalog=cat, beamline=bl)
    assert len(rec) == 1 and bl.history == [], "no frame, no pulse"
    assert bl.pump.shutter.get() == "closed"
    empty = cat.values().last()
    assert "primary" not in empty and empty.metadata["stop"]["reason"] == camp.finished_reason
    # the empty run is the campaign's newest: raising the target there continues it
    again = resume_campaign(cat, uid, changes={"target": 5.0}, follow="newest")
    assert again.resumed_from == empty.metadata["start"]["uid"]
    assert again.finished_reason is None


def test_no_safe_candidate_tries_again_only_with_a_higher_budget_or_target(scorer, tmp_path):
    cat = local_catalog(tmp_path / "cat")
    camp = Campaign(CampaignConfig(budget=6))
    simulate_campaign(scorer=DamagingScorer(scorer), catalog=cat, controller=camp, seed=1)
    assert camp.record.stop_reason.startswith("no safe candidate") and len(camp.record) == 1
    uid = cat.values().last().metadata["start"]["uid"]
    same = resume_campaign(cat, uid)
    assert same.finished_reason.endswith("(resumed: raise the budget or the target to try again)")
    assert isinstance(same.next(), Stop) and len(same.record) == 1
    assert resume_campaign(cat, uid, changes={"budget": 7}).finished_reason is None
    assert resume_campaign(cat, uid, changes={"target": 0.9}).finished_reason is None


def test_damage_halts_for_good_unless_a_fresh_spot_is_given(scorer, tmp_path):
    cat = local_catalog(tmp_path / "cat")
    cfg = CampaignConfig(budget=8, on_damage="move")
    camp = Campaign(cfg, spots=[0])
    simulate_campaign(scorer=DamagingScorer(scorer, 3), catalog=cat, controller=camp, seed=1)
    assert camp.record.stop_reason.endswith("no fresh spot left") and len(camp.record) == 5
    uid = cat.values().last().metadata["start"]["uid"]
    same = resume_campaign(cat, uid, changes={"budget": 10}, spots=[0])
    assert "(resumed: every spot given is damaged" in same.finished_reason
    assert isinstance(same.next(), Stop)
    halt = resume_campaign(cat, uid, changes={"on_damage": "halt"}, spots=[0, 1])
    assert halt.finished_reason.endswith("(resumed: a campaign halted by damage does not continue)")
    fresh = resume_campaign(cat, uid, spots=[0, 1])
    assert fresh.finished_reason is None and fresh.spot == 1 and fresh.damaged_spots == [0]


def test_a_crashed_simulated_campaign_resumes_on_the_same_sample_in_the_same_state(
    scorer, tmp_path
):
    cfg = CampaignConfig(budget=4, target=2.0)
    whole = simulate_campaign(cfg, scorer=scorer, sample=205, seed=3)  # never stopped
    cat = local_catalog(tmp_path / "cat")
    crashed = SimulatedBeamline(ResponseParams.random(205), seed=3)

    def crash(trial):
        if trial.index == 1:
            raise RuntimeError("kernel panic")

    with pytest.raises(RuntimeError, match="kernel panic"):
        simulate_campaign(
            cfg, scorer=scorer, catalog=cat, beamline=crashed, sample=205, on_shot=crash
        )
    uid = cat.values().last().metadata["start"]["uid"]
    hidden = ResponseParams.random(205)
    assert cat[uid].metadata["start"][SIMULATION_KEY] == {
        "sample": 205,
        "seed": 3,
        "n_spots": 100,
        "hidden_response": hidden.model_dump(mode="json"),
    }
    camp = resume_campaign(cat, uid)
    assert camp.finished_reason is None, "a crashed campaign continues"
    before = [t.settings for t in whole.trials[:2]]
    assert [t.settings for t in camp.record.trials] == before, "the same campaign so far"

    # the sample and seed the CLI rebuilds the beamline from; another sample is refused
    response, seed, sample = resume_simulation(cat, uid)
    assert (response, seed, sample) == (hidden, 3, 205)
    assert resume_simulation(cat, uid, seed=8)[1] == 8
    with pytest.raises(ValueError, match=r"random\(205\), asked sample random\(5\)"):
        resume_simulation(cat, uid, sample=5)
    with pytest.raises(ValueError, match="continues on the sample it started on"):
        simulate_campaign(scorer=scorer, controller=camp, response=ResponseParams())

    # the spots come back exactly: as the crashed beamline left them, as the run that never
    # stopped had them after the same shot
    fresh = SimulatedBeamline(response, seed=seed)
    truths = restore_simulated_sample(fresh, camp.resumed_runs)
    assert fresh.sample.spots == crashed.sample.spots
    spot = camp.record.trials[-1].spot
    assert fresh.sample.spots[spot].shots == whole.trials[1].truth["shots"] == 3 + 2
    assert fresh.sample.spots[spot].vacancy == whole.trials[1].truth["vacancy"]
    assert [truths[i] for i in (0, 1)] == [t.truth for t in whole.trials[:2]]
    with pytest.raises(ValueError, match="already shot"):
        restore_simulated_sample(fresh, camp.resumed_runs)

    # the proposal figures of the earlier shots come back (the CSV's proposal columns)
    cols = [c for c in whole.to_dataframe() if c.startswith("proposal_")]
    got = camp.record.to_dataframe()[cols]
    assert got["proposal_mode"].tolist() == [t.proposal["mode"] for t in whole.trials[:2]]
    pd.testing.assert_frame_equal(got, whole.to_dataframe()[cols].iloc[:2], check_dtype=False)

    # continued without naming the sample: the recorded one, restored, truth filled in
    rec = simulate_campaign(scorer=scorer, controller=camp, catalog=cat)
    df, ref = rec.to_dataframe(), whole.to_dataframe()
    assert len(df) == 4
    for col in ("truth_shots", "truth_vacancy", "truth_x", "truth_dose"):
        assert df[col].iloc[:2].tolist() == ref[col].iloc[:2].tolist()
    assert df["truth_shots"].tolist() == ref["truth_shots"].tolist() == [4, 5, 6, 7]
    resumed = cat.values().last().metadata["start"]
    assert resumed["resumed_from"] == uid
    assert resumed[SIMULATION_KEY] == cat[uid].metadata["start"][SIMULATION_KEY]
