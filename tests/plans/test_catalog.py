"""Round trips through the embedded Tiled catalog: nothing a plan emits is lost."""

import subprocess
import sys

import numpy as np
import pytest
from bluesky import RunEngine

from uedsteer.plans import (
    acquire_frames,
    event_columns,
    fluence_scan,
    local_catalog,
    read_frames,
    subscribe,
)
from uedsteer.sim_devices.beamline import FrameRenderer, SimulatedBeamline

SETTINGS = [
    "pump_fluence",
    "pump_wavelength",
    "pump_shutter",
    "gun_charge",
    "delay_delay",
    "stage_spot",
    "det_quality",
    "det_n_nan",
]


@pytest.fixture
def session(tmp_path):
    client = local_catalog(tmp_path / "cat")
    RE = RunEngine({})
    subscribe(RE, client)
    docs = []
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    bl = SimulatedBeamline(seed=3, renderer=FrameRenderer(supercell=(20, 12)))
    return client, RE, bl, docs, tmp_path / "cat"


def test_scan_round_trips_bit_for_bit(session):
    client, RE, bl, docs, _ = session
    (uid,) = RE(fluence_scan(bl, [0.5, 2.0, 6.0], n_per_point=2, md={"purpose": "test"}))
    run = client[-1]
    assert run.start["uid"] == uid and run.start["purpose"] == "test"
    assert run.start["plan_args"]["fluences"] == [0.5, 2.0, 6.0]
    assert run.stop["exit_status"] == "success"
    events = [d for n, d in docs if n == "event"]
    frames = read_frames(run)
    assert frames.dtype == np.float32 and frames.shape == (6, 261, 261)
    sent = np.stack([e["data"]["det_image"] for e in events])
    assert np.array_equal(frames.view(np.uint32), sent.view(np.uint32))
    cols = event_columns(run, SETTINGS)
    for key in SETTINGS:
        assert list(cols[key]) == [e["data"][key] for e in events], key


def test_failed_run_keeps_what_was_written_and_nan_frames(session):
    client, RE, bl, docs, _ = session
    bl.detector.inject_fault("nan", after=1)
    RE(acquire_frames(bl, n=2))
    nan_run = client[-1]
    assert list(event_columns(nan_run, ["det_quality"])["det_quality"]) == ["ok", "nan"]
    assert np.isnan(read_frames(nan_run)[1]).any(), "a NaN frame is stored as it was, flagged"
    bl.detector.inject_fault("raise", after=2)
    with pytest.raises(Exception, match="detector fault"):
        RE(fluence_scan(bl, [1.0, 2.0, 3.0, 4.0]))
    run = client[-1]
    assert run.stop["exit_status"] == "fail" and "detector fault" in run.stop["reason"]
    assert read_frames(run).shape[0] == 2
    assert bl.pump.shutter.get() == "closed"
    assert len(list(client)) == 2


def test_catalog_persists_across_processes(session):
    client, RE, bl, _, path = session
    (uid,) = RE(acquire_frames(bl, n=2))
    expected = read_frames(client[uid])
    np.save(path.parent / "expected.npy", expected)
    code = (
        "import sys, numpy as np\n"
        "from uedsteer.plans import local_catalog, read_frames\n"
        f"c = local_catalog({str(path)!r})\n"
        f"run = c[{uid!r}]\n"
        f"ok = np.array_equal(read_frames(run), np.load({str(path.parent / 'expected.npy')!r}))\n"
        "print('SAME' if ok and run.stop['exit_status'] == 'success' else 'DIFFERENT')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "SAME" in out.stdout, out.stderr[-2000:]


def test_unwritable_catalog_path_is_a_clear_error(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(ValueError, match="catalog path=.*cannot be created"):
        local_catalog(blocker / "cat")
