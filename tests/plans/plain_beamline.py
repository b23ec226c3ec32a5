"""A beamline of plain ophyd devices (no uedsteer device classes), shared by the tests of the
beamline contract. It satisfies :class:`uedsteer.plans.protocols.Beamline` structurally; the
frames come from the physics backend, as an EPICS detector's would come from the instrument."""

from types import SimpleNamespace

import numpy as np
from ophyd import Component as Cpt
from ophyd import Device, DeviceStatus, Signal

from uedsteer.sim_devices.beamline import FrameRenderer
from uedsteer.sim_devices.response import ResponseParams, SampleResponse


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
