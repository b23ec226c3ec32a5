import numpy as np
import pytest
from bluesky import RunEngine
from ophyd.utils.errors import LimitError as OphydLimitError

from uedsteer.plans import acquire_frames, delay_scan, fluence_scan, grid_scan
from uedsteer.sim_devices.beamline import FrameRenderer, SimulatedBeamline
from uedsteer.sim_devices.devices import LimitError

SMALL = {"supercell": (20, 12)}


def make_bl(seed=0, **kw):
    return SimulatedBeamline(seed=seed, renderer=FrameRenderer(**SMALL), **kw)


def run(plan, RE=None):
    RE = RE or RunEngine({}, call_returns_result=False)
    docs = []
    try:
        RE(plan, lambda name, doc: docs.append((name, doc)))
    except Exception as err:  # returned for the caller to inspect
        return docs, err
    return docs, None


@pytest.mark.parametrize(
    "attr,low,high",
    [
        ("pump.fluence", -0.1, 20.5),
        ("pump.wavelength", 399.0, 1601.0),
        ("gun.charge", 0.5, 201.0),
        ("delay.delay", -11.0, 1001.0),
        ("stage.spot", -1, 100),
    ],
)
def test_devices_enforce_hard_limits(attr, low, high):
    bl = make_bl()
    dev, sig = attr.split(".")
    signal = getattr(getattr(bl, dev), sig)
    before = signal.get()
    for bad in (low, high, float("nan")):
        with pytest.raises(LimitError) as info:
            signal.set(bad)
        assert isinstance(info.value, OphydLimitError) and isinstance(info.value, ValueError)
        assert signal.name in str(info.value)
        assert signal.get() == before, "nothing moved"
    lo, hi = signal.limits
    assert signal.describe()[signal.name]["upper_ctrl_limit"] == hi
    signal.set(hi).wait(1)
    assert signal.get() == hi


def test_limit_message_names_value_and_limit():
    bl = make_bl()
    with pytest.raises(LimitError, match=r"35 mJ/cm\^2 is above the hard limit 20 mJ/cm\^2"):
        bl.pump.fluence.set(35)
    with pytest.raises(ValueError, match="'ajar'"):
        bl.pump.shutter.set("ajar")


def test_out_of_limit_scan_fails_before_anything_moves():
    bl = make_bl()
    docs, err = run(fluence_scan(bl, [1.0, 2.0, 35.0]))
    assert isinstance(err, LimitError)
    assert docs == [] and bl.pump.fluence.get() == 0.0 and bl.sample.spots[0].shots == 0


def test_same_seed_same_frames():
    frames = []
    for _ in range(2):
        bl = make_bl(seed=7)
        docs, err = run(fluence_scan(bl, [1.0, 4.0]))
        assert err is None
        frames.append([d["data"]["det_image"] for n, d in docs if n == "event"])
    assert all(np.array_equal(a, b) for a, b in zip(*frames, strict=True))
    other = make_bl(seed=8)
    docs, _ = run(fluence_scan(other, [1.0, 4.0]))
    assert not np.array_equal(
        frames[0][0], [d for n, d in docs if n == "event"][0]["data"]["det_image"]
    )


def test_dose_only_with_shutter_open_and_damage_per_spot():
    bl = make_bl()
    RE = RunEngine({})
    hot = 15.0  # 800 nm: absorbed 0.75 mJ/cm² > damage threshold 0.45
    bl.pump.fluence.set(hot).wait(1)
    bl.detector.trigger().wait(1)  # shutter closed: probe only
    assert bl.truth()["vacancy"] == 0.0 and bl.truth()["dose"] == 0.0
    run(acquire_frames(bl, n=3), RE)
    damaged = bl.truth()
    assert damaged["vacancy"] > 0.05 and damaged["dose"] > 0
    assert bl.sample.truth() == damaged and "x" in damaged
    assert bl.pump.shutter.get() == "closed"
    bl.pump.fluence.set(0.5).wait(1)
    run(acquire_frames(bl, n=2), RE)
    assert bl.truth()["vacancy"] >= damaged["vacancy"], "irreversible"
    bl.stage.spot.set(1).wait(1)
    fresh = bl.truth()
    assert fresh["vacancy"] == 0.0 and fresh["shots"] == 0 and not fresh["molten"]


def _bragg_fraction(frame, grid):
    # share of the signal in the brightest 2 % of pixels: high for a crystal, low for damage
    vals = np.sort(frame[grid.q > 0.2].ravel())
    return vals[-len(vals) // 50 :].sum() / vals.sum()


def test_fresh_spot_gives_pristine_frames():
    bl = make_bl()
    grid = bl.renderer.grid
    bl.pump.fluence.set(0.0).wait(1)
    bl.detector.trigger().wait(1)
    pristine = _bragg_fraction(bl.detector.image.get(), grid)
    docs, _ = run(fluence_scan(bl, [15.0] * 6))
    bl.pump.fluence.set(0.0).wait(1)
    bl.detector.trigger().wait(1)
    damaged = _bragg_fraction(bl.detector.image.get(), grid)
    bl.stage.spot.set(1).wait(1)
    bl.detector.trigger().wait(1)
    fresh = _bragg_fraction(bl.detector.image.get(), grid)
    assert damaged < 0.9 * pristine
    assert fresh == pytest.approx(pristine, rel=0.05)


def test_scans_record_settings_and_metadata():
    bl = make_bl()
    docs, err = run(
        grid_scan(
            bl, [1.0, 2.0], [700.0, 900.0], fresh_spot_per_point=True, md={"operator": "test"}
        )
    )
    assert err is None
    start = docs[0][1]
    assert start["plan_name"] == "grid_scan" and start["operator"] == "test"
    assert start["plan_args"]["wavelengths"] == [700.0, 900.0] and start["num_points"] == 4
    assert start["settings"]["shutter"] == "closed" and start["sample"]
    events = [d["data"] for n, d in docs if n == "event"]
    assert [(e["pump_wavelength"], e["pump_fluence"], e["stage_spot"]) for e in events] == [
        (700.0, 1.0, 0),
        (700.0, 2.0, 1),
        (900.0, 1.0, 2),
        (900.0, 2.0, 3),
    ]
    assert all(e["pump_shutter"] == "open" for e in events)
    assert docs[-1][1]["exit_status"] == "success" and bl.pump.shutter.get() == "closed"
    docs, err = run(delay_scan(bl, [-1.0, 0.5, 5.0], n_per_point=2))
    assert err is None and len([n for n, _ in docs if n == "event"]) == 6


@pytest.mark.parametrize("kind", ["raise", "timeout"])
def test_detector_fault_is_a_recorded_failure_and_shutter_closes(kind):
    bl = make_bl()
    bl.detector.trigger_timeout = 0.3
    bl.detector.inject_fault(kind, after=2)
    docs, err = run(fluence_scan(bl, [1.0, 2.0, 3.0, 4.0]))
    assert err is not None
    names = [n for n, _ in docs]
    assert names.count("event") == 2, "frames taken before the fault are kept"
    stop = docs[-1][1]
    assert names[-1] == "stop" and stop["exit_status"] == "fail" and stop["reason"]
    assert bl.pump.shutter.get() == "closed"


def test_nan_and_saturated_frames_are_flagged_not_dropped():
    bl = make_bl()
    bl.detector.inject_fault("nan", after=1)
    docs, err = run(acquire_frames(bl, n=3))
    assert err is None
    events = [d["data"] for n, d in docs if n == "event"]
    assert [e["det_quality"] for e in events] == ["ok", "nan", "ok"]
    assert events[1]["det_n_nan"] > 0
    bl.detector.inject_fault("saturate")
    docs, _ = run(acquire_frames(bl, n=1))
    assert [d["data"]["det_quality"] for n, d in docs if n == "event"] == ["saturated"]


def test_abort_closes_the_shutter():
    import bluesky.plan_stubs as bps
    import bluesky.preprocessors as bpp

    bl = make_bl()
    RE = RunEngine({})
    docs = []
    state = {"paused": False}

    def pause_after_first_event(msg):
        # what an operator's Ctrl-C (or a suspender) does mid-scan
        if msg.command == "save" and not state["paused"]:
            state["paused"] = True

            def head():
                ret = yield msg
                yield from bps.pause()
                return ret

            return head(), None
        return None, None

    plan = bpp.plan_mutator(delay_scan(bl, [1.0, 2.0, 3.0, 4.0]), pause_after_first_event)
    from bluesky.utils import RunEngineInterrupted

    with pytest.raises(RunEngineInterrupted):
        RE(plan, lambda name, doc: docs.append((name, doc)))
    assert RE.state == "paused" and bl.pump.shutter.get() == "open"
    RE.abort("operator abort")
    assert bl.pump.shutter.get() == "closed"
    assert docs[-1][0] == "stop" and docs[-1][1]["exit_status"] == "abort"
    assert len([n for n, _ in docs if n == "event"]) == 1


def test_unknown_spot_and_bad_arguments():
    bl = make_bl(n_spots=4)
    with pytest.raises(LimitError, match="stage_spot 4"):
        bl.stage.spot.set(4)
    with pytest.raises(LimitError, match="stage_spot"):
        list(grid_scan(bl, [1.0, 2.0, 3.0], [800.0, 900.0], fresh_spot_per_point=True))
    with pytest.raises(ValueError, match="n=0"):
        list(acquire_frames(bl, n=0))
    with pytest.raises(ValueError, match="delays is empty"):
        list(delay_scan(bl, []))
    with pytest.raises(ValueError, match="kind="):
        bl.detector.inject_fault("smoke")
