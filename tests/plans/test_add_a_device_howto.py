"""docs/howto/add-a-device.md: its example beamline runs as written, satisfies the protocol,
takes frames through a plan, and the refusal it quotes is the one a beamline missing a setting
gets."""

import re
from pathlib import Path

import numpy as np
import pytest
from bluesky import RunEngine

from uedsteer.plans.protocols import Beamline, BeamlineMismatch, check_beamline
from uedsteer.plans.scans import acquire_frames

HOWTO = Path(__file__).resolve().parents[2] / "docs" / "howto" / "add-a-device.md"


def _blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", HOWTO.read_text(encoding="utf-8"), re.S)


@pytest.fixture
def namespace() -> dict:
    ns: dict = {"__name__": "__howto__"}
    (code,) = _blocks("python")
    exec(compile(code, str(HOWTO), "exec"), ns)
    return ns


def test_the_example_beamline_satisfies_the_protocol_and_takes_frames(namespace):
    bl = namespace["bl"]
    assert isinstance(bl, Beamline)
    bl.detector._source = lambda: np.ones((261, 261), dtype=np.float32)
    docs = []
    RE = RunEngine({})
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    RE(acquire_frames(bl, 2))
    start = docs[0][1]
    assert start["motors"] == ["laser", "gun", "delay", "stage"]
    assert start["detectors"] == ["cam"]
    assert sum(name == "event" for name, _ in docs) == 2
    assert bl.shutter.get() == "closed"


def test_the_quoted_refusal_is_the_real_one(namespace):
    bl = namespace["bl"]
    laser = bl.laser
    namespace["MyBeamline"].settings = property(
        lambda self: {
            "fluence": laser.fluence,
            "wavelength": laser.wavelength,
            "delay": bl.delay.delay,
        }
    )
    with pytest.raises(BeamlineMismatch) as err:
        check_beamline(bl)
    (quoted,) = _blocks("text")
    assert str(err.value) == " ".join(quoted.split())
