"""The beamline protocol: the simulated beamline and a beamline of plain ophyd devices satisfy
it structurally; an object that lacks part of it is refused in one line before a run opens;
plans reach the simulator only where they simulate, and the controller reaches the plans only
from its command line."""

import ast
from pathlib import Path

import pytest
from bluesky import RunEngine
from bluesky.protocols import Movable
from plain_beamline import plain_beamline

from uedsteer.controller.campaign import Campaign
from uedsteer.controller.config import CampaignConfig
from uedsteer.plans.campaign import campaign
from uedsteer.plans.protocols import (
    Beamline,
    BeamlineMismatch,
    check_beamline,
    event_devices,
    setting_signals,
)
from uedsteer.plans.scans import acquire_frames, fluence_scan, settings_of
from uedsteer.sim_devices.beamline import SimulatedBeamline
from uedsteer.sim_devices.contracts import SETTING_NAMES

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("make", [SimulatedBeamline, plain_beamline], ids=["simulated", "plain"])
def test_both_beamlines_satisfy_the_protocol(make):
    bl = make()
    assert isinstance(bl, Beamline)
    check_beamline(bl)  # nothing raised
    assert tuple(setting_signals(bl)) == SETTING_NAMES
    assert all(isinstance(s, Movable) for s in bl.settings.values())
    assert event_devices(bl)[0] is bl.detector and event_devices(bl)[1:] == list(bl.motors)
    # metadata in the order runs have always recorded it
    assert list(settings_of(bl))[:6] == [
        "fluence",
        "wavelength",
        "shutter",
        "charge",
        "delay",
        "spot",
    ]


def test_the_simulated_beamline_maps_each_setting_to_its_device():
    bl = SimulatedBeamline()
    assert bl.settings["fluence"] is bl.pump.fluence and bl.settings["charge"] is bl.gun.charge
    assert bl.shutter is bl.pump.shutter and bl.spot is bl.stage.spot
    assert bl.devices == [bl.detector, bl.pump, bl.gun, bl.delay, bl.stage]


def _refusal(bl, plan) -> str:
    docs = []
    RE = RunEngine({})
    RE.subscribe(lambda name, doc: docs.append(name))
    with pytest.raises(BeamlineMismatch) as err:
        RE(plan(bl))
    assert docs == [], "refused before the run opened"
    text = str(err.value)
    assert "\n" not in text and isinstance(err.value, ValueError)
    return text


def test_a_beamline_missing_a_setting_is_refused_in_one_line():
    bl = plain_beamline()
    del bl.settings["charge"]
    text = _refusal(bl, lambda b: campaign(b, None, Campaign(CampaignConfig(budget=2))))
    assert text == (
        "beamline SimpleNamespace does not satisfy uedsteer.plans.protocols.Beamline: no signal "
        "for setting charge (electron bunch charge, fC) in settings"
    )
    assert "no signal for setting charge" in _refusal(bl, lambda b: acquire_frames(b, 1))
    assert bl.shots == [] and bl.pump.shutter.get() == "closed", "nothing moved or fired"


def test_a_beamline_by_attribute_paths_only_names_what_it_lacks():
    """The contract before the protocol (pump, gun, delay, stage, devices) is refused, naming
    the accessors to add."""
    bl = plain_beamline()
    for name in ("settings", "shutter", "spot", "motors"):
        delattr(bl, name)
    text = _refusal(bl, lambda b: fluence_scan(b, [0.5]))
    assert text.endswith("Beamline: no settings, shutter, spot, motors")


def test_a_setting_that_cannot_move_and_a_detector_that_cannot_trigger_are_named():
    bl = plain_beamline()
    bl.settings["fluence"] = 0.5
    bl.detector = bl.pump.fluence  # readable, but no trigger and no image
    text = _refusal(bl, lambda b: acquire_frames(b, 1))
    assert "settings['fluence'] is a float, not a Movable" in text
    assert "detector is a Signal, not a triggerable, readable device with an image" in text


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def test_layers_import_downwards_only():
    """The plans reach the simulated devices only to simulate (simulate, session, stem); the
    controller reaches the plans only from its command line."""
    simulator = ("uedsteer.sim_devices.devices", "uedsteer.sim_devices.beamline")
    for path in sorted((ROOT / "plans").glob("*.py")):
        if path.stem in ("simulate", "session", "stem"):
            continue
        assert not _imports(path) & set(simulator), path.name
    for path in sorted((ROOT / "controller").rglob("*.py")):
        if "cli" in path.relative_to(ROOT / "controller").parts[0]:
            continue
        wrong = {m for m in _imports(path) if m.startswith("uedsteer.plans")}
        assert not wrong, f"{path.name} imports {wrong}"
