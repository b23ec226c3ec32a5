"""Check frames (``CampaignConfig.check_frames``): a probe-only frame after each shot, on the
same spot with the pump shutter closed, shows the damage a shot caused before the next shot is
chosen, adds no dose, and is recorded in the catalog and read back on resume."""

import numpy as np
import pytest

from uedsteer.controller.attribution import DAMAGED, attributed_damage, damage_evidence
from uedsteer.controller.config import CampaignConfig
from uedsteer.controller.record import Trial
from uedsteer.plans import documents as doc
from uedsteer.plans.catalog import local_catalog
from uedsteer.plans.resume import resume_campaign, stream_table
from uedsteer.plans.simulate import simulate_campaign
from uedsteer.sim_devices.beamline import SimulatedBeamline
from uedsteer.sim_devices.response import ResponseParams
from uedsteer.surrogates.scorer import FrameScorer

pytestmark = pytest.mark.filterwarnings("ignore")

SHOTS = 3


@pytest.fixture(scope="module")
def scorer():
    return FrameScorer.pretrained()


@pytest.fixture(scope="module")
def written(tmp_path_factory, scorer):
    """A three-shot campaign with check frames on the default sample, into a catalog folder."""
    cat = local_catalog(tmp_path_factory.mktemp("checks") / "cat")
    bl = SimulatedBeamline(ResponseParams(), seed=0)
    record = simulate_campaign(
        CampaignConfig(budget=SHOTS, check_frames=True), scorer=scorer, catalog=cat, beamline=bl
    )
    return cat, cat.values().last(), record, bl


def test_each_shot_has_a_check_frame_with_the_shutter_closed_on_its_spot(written):
    _, run, record, _ = written
    checks = stream_table(run, doc.CHECKS, doc.readout_prefix(doc.CHECK_READOUT))
    shots = stream_table(run, doc.SHOTS, doc.readout_prefix(doc.SHOT_READOUT))
    assert checks["shot"].tolist() == list(range(SHOTS)) == shots["shot"].tolist()
    assert checks["spot"].tolist() == shots["spot"].tolist()
    table = stream_table(run, doc.CHECKS)
    shutter = next(k for k in table if k.endswith("shutter"))
    assert set(map(str, table[shutter])) == {"closed"}
    pumped = stream_table(run, doc.SHOTS)
    assert set(map(str, pumped[shutter])) == {"open"}, "the shots themselves pump"
    recorded = [t.scores["check_damage_prob"] for t in record.trials]
    assert np.allclose(checks["damage_prob"], recorded)
    assert all(0 <= p < DAMAGED for p in recorded), "the default sample is not hurt here"


def test_check_frames_add_no_dose(written):
    """The last shot's truth was read before its check frame: the check probed the spot (one
    more frame on it) but added no dose and no vacancies."""
    _, _, record, bl = written
    last = record.trials[-1]
    after = bl.truth(last.spot)
    assert after["shots"] == last.truth["shots"] + 1, "the check frame probed the same spot"
    assert after["dose"] == last.truth["dose"] > 0
    assert after["vacancy"] == last.truth["vacancy"]


def test_resume_reads_the_check_frames_back(written):
    cat, run, record, _ = written
    camp = resume_campaign(cat, run.metadata["start"]["uid"])
    got = [t.scores["check_damage_prob"] for t in camp.record.trials]
    assert np.allclose(got, [t.scores["check_damage_prob"] for t in record.trials])
    assert np.allclose(camp.attributed_damage(), attributed_damage(record.trials))


def test_damage_a_shot_caused_is_known_before_the_next_shot(scorer):
    """A sample that the safe start already damages (threshold 0.015 absorbed mJ/cm²): the
    shot's own frame cannot show it (it shows in the frames after), its check frame does, so
    the damage model has it before the next proposal; without check frames it has nothing."""
    fragile = ResponseParams(damage_threshold=0.015, transform_threshold=0.012)
    one = CampaignConfig(budget=1, check_frames=True)
    (shot,) = simulate_campaign(one, response=fragile, scorer=scorer).trials
    assert shot.truth["vacancy"] >= 0.02, "the first shot hurt the spot"
    assert shot.scores["damage_prob"] < DAMAGED, "its own frame does not show it"
    assert shot.scores["check_damage_prob"] >= DAMAGED
    assert attributed_damage([shot])[0] >= DAMAGED
    (blind,) = simulate_campaign(CampaignConfig(budget=1), response=fragile, scorer=scorer).trials
    assert "check_damage_prob" not in blind.scores
    assert attributed_damage([blind])[0] < DAMAGED


def _trial(i, spot, own, check):
    return Trial(
        index=i,
        settings={"fluence": 1.0 + i},
        spot=spot,
        scores={"damage_prob": own, "check_damage_prob": check},
    )


def test_a_spot_a_check_frame_showed_hurt_teaches_the_damage_model_nothing():
    """The pumped frame of a shot can read a hurt spot as undamaged (0.001 where the check
    frame before it read 0.97): the shots after a damaged check frame on its spot are left out,
    so a cold shot there is not taken for one that caused damage (its heating would set the
    learned heating limit below every setting)."""
    trials = [
        _trial(0, 0, 0.0, 0.0),
        _trial(1, 0, 0.0, 0.98),  # this shot hurt the spot
        _trial(2, 0, 0.001, 0.97),  # cold, on the hurt spot
        _trial(3, 1, 0.0, 0.0),  # a fresh spot
    ]
    att = attributed_damage(trials)
    assert att[1] >= DAMAGED and np.isnan(att[2]) and att[3] < DAMAGED and att[0] < DAMAGED


def test_a_check_frame_that_shows_damage_leaves_the_spot_and_denies_the_target(scorer, tmp_path):
    """A sample the safe start transforms and damages at once: the shot's own frame reads the
    target progress and no damage, its check frame reads the damage. That shot has not reached
    the target; with ``halt_consecutive=1`` its check frame moves the campaign off the spot
    (``on_damage="move"``) before another shot lands on it. The move is recorded with the
    check frame, and a resumed campaign knows the spot was left."""
    fragile = ResponseParams(damage_threshold=0.015, transform_threshold=0.012)
    cfg = CampaignConfig(budget=3, check_frames=True, on_damage="move", halt_consecutive=1)
    cat = local_catalog(tmp_path / "cat")
    record = simulate_campaign(cfg, response=fragile, scorer=scorer, catalog=cat)
    first = record.trials[0]
    assert first.scores["progress"] >= cfg.target and first.scores["damage_prob"] < DAMAGED
    assert first.scores["check_damage_prob"] >= cfg.halt_damage_prob
    assert first.action == "move" and not record.stop_reason.startswith("target reached")
    assert all(t.spot != first.spot for t in record.trials[1:])
    run = cat.values().last()
    checks = stream_table(run, doc.CHECKS, doc.readout_prefix(doc.CHECK_READOUT))
    assert str(checks["action"][0]) == "move"
    camp = resume_campaign(cat, run.metadata["start"]["uid"], changes={"budget": 4})
    assert camp.record.trials[0].action == "move"
    assert first.spot in camp.damaged_spots and camp.spot != first.spot


def test_only_a_check_frame_vouches_for_a_shot_it_saw():
    """A pumped frame can read a hurt spot as undamaged: whether a probe-only frame right
    after a shot saw its spot is recorded beside the attributed damage, and only such shots
    vouch for a fluence step at their wavelength without the heating model."""
    nan = float("nan")
    trials = [
        _trial(0, 0, 0.0, nan),  # a later pumped frame on spot 0 (shot 1): not a check
        _trial(1, 0, 0.0, nan),
        _trial(2, 1, 0.0, 0.0),  # its check frame saw it
        _trial(3, 1, 0.0, nan),  # the latest shot, no check frame
    ]
    damage, checked = damage_evidence(trials)
    assert checked.tolist() == [False, False, True, False]
    assert np.array_equal(damage, attributed_damage(trials), equal_nan=True)
