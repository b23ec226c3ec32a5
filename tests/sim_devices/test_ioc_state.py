"""The simulated IOC's device state across a restart (``uedsteer ioc --state FILE``)."""

import json
import subprocess
import sys

import pytest

from uedsteer.sim_devices.beamline import SimulatedBeamline
from uedsteer.sim_devices.ioc import beamline_ioc
from uedsteer.sim_devices.ioc_state import restore_state, save_state


def test_a_restarted_ioc_comes_back_where_the_devices_were(tmp_path):
    """Saved on one beamline, restored on a fresh one: the settings, the spot and an open
    shutter come back, and the PVs serve them from the start."""
    path = tmp_path / "state.json"
    first = SimulatedBeamline(seed=0)
    first.settings["fluence"].put(3.25)
    first.settings["wavelength"].put(650.0)
    first.spot.put(7)
    first.shutter.put("open")
    save_state(first, path)
    again = SimulatedBeamline(seed=0)
    assert again.shutter.get() == "closed"
    ioc = beamline_ioc(again, "T:", state_file=path)
    assert again.settings["fluence"].get() == 3.25 and again.spot.get() == 7
    assert again.shutter.get() == "open"
    assert ioc.fluence.value == pytest.approx(3.25) and ioc.shutter.value == "open"
    assert restore_state(SimulatedBeamline(seed=0), tmp_path / "none.json") is None


def test_a_bad_state_file_is_one_line_naming_it(tmp_path):
    path = tmp_path / "state.json"
    state = {"settings": {"fluence": 1e6}, "spot": 0, "shutter": "open"}
    path.write_text(json.dumps(state))
    with pytest.raises(ValueError, match=f"state file {path}: no value for charge"):
        restore_state(SimulatedBeamline(seed=0), path)
    state["settings"] = {"fluence": 1e6, "wavelength": 800, "charge": 20, "delay": 10}
    path.write_text(json.dumps(state))
    with pytest.raises(ValueError, match=f"state file {path}: .*fluence"):
        restore_state(SimulatedBeamline(seed=0), path)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "uedsteer.controller.cli",
            "ioc",
            "--prefix",
            "T:",
            "--state",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("uedsteer ioc: error: state file") and "fluence" in line
