"""The device contract: a beamline of plain ophyd devices (no uedsteer device classes) runs a
campaign into the catalog. It satisfies :class:`uedsteer.plans.protocols.Beamline` structurally
(settings by name, shutter, spot, detector, motors); the frames come from the physics backend,
as an EPICS detector's would come from the instrument."""

import numpy as np
import pytest
from plain_beamline import plain_beamline

from uedsteer.controller.campaign import Campaign
from uedsteer.controller.config import CampaignConfig
from uedsteer.plans.campaign import campaign
from uedsteer.plans.catalog import local_catalog, read_frames, subscribe
from uedsteer.plans.resume import resume_campaign
from uedsteer.surrogates.scorer import FrameScorer

pytestmark = pytest.mark.filterwarnings("ignore")


def test_a_beamline_of_plain_ophyd_devices_runs_a_campaign_into_the_catalog(tmp_path):
    from bluesky import RunEngine

    bl = plain_beamline()
    db = local_catalog(tmp_path / "cat")
    RE = RunEngine({})
    subscribe(RE, db, batch_size=1)
    camp = Campaign(CampaignConfig(budget=3))
    RE(campaign(bl, FrameScorer.pretrained(), camp))
    run = db.values().last()
    assert run.metadata["stop"]["exit_status"] == "success"
    assert run.metadata["stop"]["reason"] == camp.record.stop_reason
    assert len(camp.record) == 3 and all(t.status == "ok" for t in camp.record.trials)
    # three reference frames with the shutter closed, then the shots with it open
    assert [s for _, s in bl.shots] == ["closed"] * 3 + ["open"] * 3
    frames = read_frames(run)
    assert frames.shape == (3, 261, 261)
    assert np.asarray(run["primary"]["campaign_shot"].read()).tolist() == [0, 1, 2]
    fluence = np.asarray(run["primary"]["pump_fluence"].read())
    assert fluence.tolist() == pytest.approx([t.settings["fluence"] for t in camp.record.trials])
    assert bl.pump.shutter.get() == "closed"
    # resumed from the catalog, on the same devices: no reference retaken, no shot repeated
    again = resume_campaign(db, run.metadata["start"]["uid"], config=CampaignConfig(budget=5))
    RE(campaign(bl, FrameScorer.pretrained(), again))
    assert [t.index for t in again.record.trials] == [0, 1, 2, 3, 4]
    assert [s for _, s in bl.shots] == ["closed"] * 3 + ["open"] * 5
    assert read_frames(db.values().last()).shape == (2, 261, 261)


def test_averaging_needs_a_detector_that_can_average():
    from bluesky import RunEngine

    bl = plain_beamline()
    with pytest.raises(ValueError, match="frames_per_point=2.*'cam'"):
        RunEngine({})(campaign(bl, None, Campaign(CampaignConfig(frames_per_point=2))))
    assert bl.shots == []  # refused before anything moved or fired
