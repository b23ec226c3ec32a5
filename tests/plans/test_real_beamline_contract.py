"""The device contract: a beamline of plain ophyd devices (no uedsteer device classes) runs a
campaign into the catalog. It satisfies :class:`uedsteer.plans.protocols.Beamline` structurally
(settings by name, shutter, spot, detector, motors); the frames come from the physics backend,
as an EPICS detector's would come from the instrument."""

from types import SimpleNamespace

import numpy as np
import pytest
from ophyd import Component as Cpt
from ophyd import Device, DeviceStatus, Signal

from uedsteer.controller.campaign import Campaign
from uedsteer.controller.config import CampaignConfig
from uedsteer.plans.campaign import campaign
from uedsteer.plans.catalog import local_catalog, read_frames, subscribe
from uedsteer.sim_devices.beamline import FrameRenderer
from uedsteer.sim_devices.response import ResponseParams, SampleResponse
from uedsteer.surrogates.scorer import FrameScorer

pytestmark = pytest.mark.filterwarnings("ignore")


class Pump(Device):
    fluence = Cpt(Signal, value=0.0, kind="hinted")
    wavelength = Cpt(Signal, value=800.0, kind="hinted")
    shutter = Cpt(Signal, value="closed", kind="normal")


class Gun(Device):
    charge = Cpt(Signal, value=20.0, kind="hinted")


class Delay(Device):
    delay = Cpt(Signal, value=10.0, kind="hinted")


class Stage(Device):
    spot = Cpt(Signal, value=0, kind="hinted")


class Camera(Device):
    """A detector with nothing but ``image`` (no frame count, no quality flags)."""

    image = Cpt(Signal, value=np.zeros((261, 261), dtype=np.float32), kind="normal")

    def __init__(self, *args, source, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._source = source

    def trigger(self) -> DeviceStatus:
        self.image.put(self._source())
        status = DeviceStatus(self)
        status.set_finished()
        return status


def plain_beamline(seed: int = 0) -> SimpleNamespace:
    sample = SampleResponse(ResponseParams(), n_spots=10)
    renderer = FrameRenderer()
    rng = np.random.default_rng(seed)
    bl = SimpleNamespace(
        pump=Pump(name="pump"),
        gun=Gun(name="gun"),
        delay=Delay(name="delay"),
        stage=Stage(name="stage"),
    )
    bl.shots = []

    def frame() -> np.ndarray:
        p = bl.pump
        state = sample.shoot(
            int(bl.stage.spot.get()),
            float(p.fluence.get()),
            float(p.wavelength.get()),
            float(bl.delay.delay.get()),
            pumped=p.shutter.get() == "open",
        )
        bl.shots.append((float(p.fluence.get()), p.shutter.get()))
        return renderer.render(state, float(bl.gun.charge.get()), rng)

    bl.detector = Camera(name="cam", source=frame)
    # the protocol's accessors: nothing else of this namespace is read by the plans
    bl.settings = {
        "fluence": bl.pump.fluence,
        "wavelength": bl.pump.wavelength,
        "charge": bl.gun.charge,
        "delay": bl.delay.delay,
    }
    bl.shutter = bl.pump.shutter
    bl.spot = bl.stage.spot
    bl.motors = [bl.pump, bl.gun, bl.delay, bl.stage]
    return bl


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
    again = Campaign.resume(db, run.metadata["start"]["uid"], config=CampaignConfig(budget=5))
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
