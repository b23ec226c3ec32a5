"""Check frames (``CampaignConfig.check_frames``): a probe-only frame after each shot, on the
same spot with the pump shutter closed, shows the damage a shot caused before the next shot is
chosen, adds no dose, and is recorded in the catalog and read back on resume."""

import numpy as np
import pytest

from uedsteer.controller.attribution import DAMAGED, attributed_damage
from uedsteer.controller.config import CampaignConfig
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
