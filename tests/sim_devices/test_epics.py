"""The simulated beamline over EPICS: ``uedsteer ioc`` in a subprocess, ``EpicsBeamline`` in
this one, Channel Access on the loopback interface only.

Each IOC runs on its own Channel Access port (``EPICS_CA_SERVER_PORT``, free when it starts)
and under a random PV prefix, so that IOCs of parallel test workers never answer each other's
searches; the fixture waits until its PVs answer and stops it by its process id."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psutil
import pytest
from epics_ioc import Ioc, read_pv, running_ioc
from epics_ioc import stop_process as _stop

from uedsteer.sim_devices.contracts import SETTING_NAMES, SETTINGS
from uedsteer.sim_devices.epics_env import (
    LOOPBACK_ENVIRONMENT,
    loopback_environment,
    off_loopback,
)
from uedsteer.sim_devices.epics_pvs import PV_KEYS, default_pv_names

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture(scope="module")
def ioc(tmp_path_factory) -> Iterator[Ioc]:
    with running_ioc(tmp_path_factory.mktemp("ioc")) as ioc:
        yield ioc


@pytest.fixture(scope="module")
def beamline(ioc):
    from uedsteer.sim_devices.epics_beamline import EpicsBeamline

    return EpicsBeamline(ioc.prefix, connection_timeout=20)


def wait_for_line(ioc: Ioc, text: str, timeout: float = 10.0) -> str:
    """The first line of the IOC's output holding ``text`` (polled until ``timeout``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = [line for line in ioc.output().splitlines() if text in line]
        if lines:
            return lines[0]
        time.sleep(0.05)
    pytest.fail(f"no {text!r} in the IOC's output:\n{ioc.output()}")


# ---- the network rule -------------------------------------------------------------------


def test_loopback_environment_overrides_whatever_was_there():
    env = {"EPICS_CA_AUTO_ADDR_LIST": "YES", "EPICS_CA_ADDR_LIST": "10.0.0.255", "PATH": "/bin"}
    before = loopback_environment(env)
    assert off_loopback(env) == []
    assert {k: env[k] for k in LOOPBACK_ENVIRONMENT} == dict(LOOPBACK_ENVIRONMENT)
    assert before["EPICS_CA_ADDR_LIST"] == "10.0.0.255"
    assert before["EPICS_CAS_INTF_ADDR_LIST"] is None
    assert env["PATH"] == "/bin"
    assert off_loopback({"EPICS_CA_ADDR_LIST": "10.0.0.255"})[0] == "EPICS_CA_AUTO_ADDR_LIST unset"


def test_channel_access_stays_on_loopback(ioc, beamline):
    """The IOC started with the loopback variables (set before it started), says so itself,
    and every socket it holds is bound to (and sends to) 127.0.0.1; this process's client
    searches there too, from a socket bound to 127.0.0.1 (caproto's binds to every
    interface unless told otherwise)."""
    import ophyd

    assert {k: ioc.env[k] for k in LOOPBACK_ENVIRONMENT} == dict(LOOPBACK_ENVIRONMENT)
    assert off_loopback() == [], "this process's client"
    assert ophyd.cl.name in ("caproto", "pyepics")
    said = wait_for_line(ioc, "channel access:")
    for key, value in LOOPBACK_ENVIRONMENT.items():
        assert f"{key}={value}" in said
    conns = psutil.Process(ioc.proc.pid).net_connections(kind="inet")
    assert conns, "the IOC listens"
    for c in conns:
        assert c.laddr.ip == "127.0.0.1", c
        assert not c.raddr or c.raddr.ip == "127.0.0.1", c
    assert any(c.laddr.port == ioc.port and c.type == socket.SOCK_DGRAM for c in conns)
    if ophyd.cl.name == "caproto":  # pyepics (libca) binds its own sockets
        mine = psutil.Process().net_connections(kind="udp")
        assert mine, "the client's search socket"
        assert all(c.laddr.ip == "127.0.0.1" for c in mine), mine


def test_a_client_socket_made_later_binds_to_loopback_too():
    """After bind_client_to_loopback, caproto's broadcast sockets bind to 127.0.0.1 when asked
    for every interface, and keep their options; an explicit address is kept."""
    import caproto

    from uedsteer.sim_devices.epics_env import bind_client_to_loopback

    bind_client_to_loopback()
    bind_client_to_loopback()  # idempotent: wrapped once
    assert caproto.bcast_socket.uedsteer_loopback
    with caproto.bcast_socket() as sock:
        sock.bind(("", 0))
        assert sock.getsockname()[0] == "127.0.0.1"
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST) == 1
    with caproto.bcast_socket() as sock:
        sock.bind(("127.0.0.1", 0))
        assert sock.getsockname()[0] == "127.0.0.1"


# ---- the PVs and the limits -------------------------------------------------------------


def test_the_pv_map_has_a_pv_for_every_setting_in_order():
    from uedsteer.sim_devices.devices import SHUTTER_STATES
    from uedsteer.sim_devices.ioc import SHUTTER_ENUM

    assert PV_KEYS[: len(SETTING_NAMES)] == SETTING_NAMES
    assert set(SHUTTER_ENUM) == set(SHUTTER_STATES) and SHUTTER_ENUM[0] == "closed"
    assert default_pv_names("UED:")["fluence"] == "UED:Pump:Fluence"


def test_the_ioc_prints_its_prefix_and_every_pv(ioc):
    assert ioc.prefix in wait_for_line(ioc, "uedsteer ioc: prefix")
    text = ioc.output()
    for name in default_pv_names(ioc.prefix).values():
        assert name in text


def test_the_beamline_satisfies_the_protocol_and_reads_units_from_the_pvs(beamline):
    from uedsteer.plans.protocols import check_beamline

    check_beamline(beamline)
    beamline.check_units()
    assert beamline.units() == {n: SETTINGS[n].device_units for n in SETTING_NAMES}
    desc = beamline.detector.describe()["det_image"]
    assert desc["shape"] == [261, 261] and desc["dtype_numpy"] == "<f4"


def test_limits_reach_the_client_and_a_move_outside_is_refused(ioc, beamline):
    from uedsteer.sim_devices.devices import LimitError

    fluence = beamline.settings["fluence"]
    assert fluence.limits == (0.0, 20.0)
    assert beamline.settings["wavelength"].limits == (400.0, 1600.0)
    assert beamline.settings["charge"].limits == (1.0, 200.0)
    assert beamline.settings["delay"].limits == (-10.0, 1000.0)
    assert beamline.spot.limits == (0, 99)
    desc = fluence.describe()["pump_fluence"]
    assert desc["units"] == "mJ/cm^2" and desc["upper_ctrl_limit"] == 20.0
    assert read_pv(f"{ioc.prefix}Pump:Fluence.DRVH") == 20.0
    assert read_pv(f"{ioc.prefix}Pump:Fluence.DRVL") == 0.0
    fluence.set(1.5).wait(10)
    with pytest.raises(LimitError, match=r"pump_fluence 35 mJ/cm\^2 is above the hard limit 20"):
        fluence.set(35.0)
    with pytest.raises(LimitError, match="below the hard limit 400 nm"):
        beamline.settings["wavelength"].set(300.0)
    with pytest.raises(LimitError, match="stage_spot=2.5 must be an integer"):
        beamline.spot.set(2.5)
    with pytest.raises(ValueError, match="pump_shutter='ajar' is not allowed"):
        beamline.shutter.set("ajar")
    assert read_pv(fluence.pvname) == 1.5, "nothing moved"
    # the IOC refuses it too: a put that skips the client's check
    fluence.put(35.0, force=True, use_complete=False)
    assert "CannotExceedLimits" in wait_for_line(ioc, "CannotExceedLimits")
    assert read_pv(fluence.pvname) == 1.5, "nothing moved"


def test_a_ramp_step_is_not_held_up_by_nagle(beamline):
    """The four puts of a ramp step, in flight together, complete in a few ms: the IOC turns
    Nagle's algorithm off on each circuit (with it on, every try took >= 40 ms, the client's
    delayed acknowledgement). The fastest of ten tries, so a busy machine does not fail it."""
    settings = beamline.settings
    now = {k: float(s.get()) for k, s in settings.items()}  # nothing moves
    tries = []
    for _ in range(10):
        t = time.perf_counter()
        statuses = [settings[k].set(v) for k, v in now.items()]
        for status in statuses:
            status.wait(10)
        tries.append(time.perf_counter() - t)
    assert min(tries) < 0.03, [round(t * 1e3, 1) for t in tries]


def test_the_end_of_a_frame_reaches_the_client_at_once(beamline):
    """The acquire PV's return to 0 (which completes a trigger) arrives within a few ms of the
    IOC's timestamp: it is the only update after the frame (an alarm write before it made
    caproto hold it about 10 ms to batch the two). The fastest of five probe-only frames."""
    det, shutter = beamline.detector, beamline.shutter
    was = shutter.get()
    shutter.set("closed").wait(10)
    lags: list[float] = []

    def ended(value=None, old_value=None, timestamp=None, **kwargs) -> None:
        if old_value == 1 and value == 0:
            lags.append(time.time() - timestamp)

    token = det.acquire.subscribe(ended, run=False)
    try:
        for _ in range(5):
            det.trigger().wait(30)
            time.sleep(0.05)
    finally:
        det.acquire.unsubscribe(token)
        shutter.set(was).wait(10)
    assert lags and min(lags) < 0.006, [round(x * 1e3, 1) for x in lags]


def test_no_delay_turns_nagle_off_on_an_accepted_socket():
    from uedsteer.sim_devices.ioc import no_delay

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM, 0) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        with socket.create_connection(listener.getsockname()) as _client:
            accepted, _ = listener.accept()
            with accepted:
                assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
                no_delay(accepted)
                assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    no_delay(None)  # no socket: nothing to do


def test_a_bad_pv_map_is_refused_in_one_line(tmp_path):
    from uedsteer.sim_devices.epics_beamline import EpicsBeamline, resolve_pv_names

    cases = {
        "pvs:\n  flunce: X:F\n": "pvs: 'flunce' is not a PV key; allowed: fluence, wavelength",
        "prefix: 'U:'\ncolour: red\n": "colour is not a key of the PV map; allowed: prefix, pvs",
        "pvs:\n  fluence: X:F\n": "prefix '' and no PV for wavelength, charge",
        "- a\n- b\n": "the file holds list, not a mapping",
        "prefix: 'U:'\ntrigger_timeout: -1\n": "trigger_timeout: Input should be greater than 0",
        "prefix: [U\n": "not YAML",
    }
    for i, (text, expected) in enumerate(cases.items()):
        path = tmp_path / f"map{i}.yaml"
        path.write_text(text)
        with pytest.raises(ValueError) as err:
            EpicsBeamline.from_yaml(path)
        message = str(err.value)
        assert expected in message and str(path) in message, message
        assert "\n" not in message
    with pytest.raises(ValueError, match="pv_map fluence: 'A B' is not a PV name"):
        resolve_pv_names("U:", {"fluence": "A B"})
    names = resolve_pv_names("U:", {"fluence": "LAS:FLU"})
    assert names["fluence"] == "LAS:FLU" and names["charge"] == "U:Gun:Charge"


def test_a_yaml_map_points_the_beamline_at_the_pvs(ioc, tmp_path):
    from uedsteer.sim_devices.epics_beamline import EpicsBeamline

    path = tmp_path / "pvs.yaml"
    path.write_text(
        'prefix: "NOWHERE:"\npvs:\n'
        + "".join(f'  {k}: "{v}"\n' for k, v in default_pv_names(ioc.prefix).items())
        + "connection_timeout: 20\ntrigger_timeout: 20\nwrite_timeout: 45\n"
    )
    bl = EpicsBeamline.from_yaml(path)
    assert bl.settings["charge"].pvname == f"{ioc.prefix}Gun:Charge"
    assert bl.detector.trigger_timeout == 20
    assert {s.write_timeout for s in (*bl.settings.values(), bl.shutter, bl.spot)} == {45.0}
    assert bl.settings["charge"].get() == pytest.approx(read_pv(f"{ioc.prefix}Gun:Charge"))


def test_a_move_the_ioc_never_reports_done_fails_within_the_write_timeout(ioc):
    """An IOC that stops answering while it holds a put (frozen here; killed mid-put, it is
    the same: the completion never comes) fails the move's status after ``write_timeout``:
    the plan records a failed shot instead of waiting for ever."""
    import signal as sig

    from ophyd.utils import StatusTimeoutError

    from uedsteer.sim_devices.epics_beamline import EpicsBeamline

    bl = EpicsBeamline(ioc.prefix, connection_timeout=20, write_timeout=1.0)
    bl.shutter.set("closed").wait(10)
    ioc.proc.send_signal(sig.SIGSTOP)
    try:
        t0 = time.monotonic()
        status = bl.shutter.set("open")
        with pytest.raises(StatusTimeoutError):  # the status itself failed, in ~1 s
            status.wait(10)
        assert time.monotonic() - t0 < 5 and not status.success
    finally:
        ioc.proc.send_signal(sig.SIGCONT)
    bl.shutter.set("closed").wait(10)
    assert read_pv(f"{ioc.prefix}Pump:Shutter", string=True) == "closed"


def test_the_howto_pv_map_is_valid():
    """docs/howto/run-against-epics.md: its YAML map validates and names what it says."""
    import re

    import yaml

    from uedsteer.sim_devices.epics_beamline import EpicsPVMap, resolve_pv_names

    howto = Path(__file__).resolve().parents[2] / "docs" / "howto" / "run-against-epics.md"
    (block,) = re.findall(r"```yaml\n(.*?)```", howto.read_text(encoding="utf-8"), re.S)
    cfg = EpicsPVMap.model_validate(yaml.safe_load(block))
    names = resolve_pv_names(cfg.prefix, cfg.pvs)
    assert names["fluence"] == "LAS:PUMP:FLUENCE" and names["charge"] == "UED:Gun:Charge"
    assert (cfg.connection_timeout, cfg.trigger_timeout) == (5, 30)


def test_no_ioc_is_one_line_naming_the_pvs():
    from uedsteer.sim_devices.epics_beamline import EpicsBeamline

    with pytest.raises(
        TimeoutError,
        match=r"no answer within 0.5 s from NOBODY\w+:Pump:Fluence, NOBODY\w+:Pump:Wavelength",
    ):
        EpicsBeamline(f"NOBODY{uuid.uuid4().hex[:6]}:", connection_timeout=0.5)


def test_the_ioc_moves_the_simulated_devices_and_alarms_when_no_frame_comes():
    """The IOC's PVs without a server: puts move the very SimulatedBeamline behind them, limits
    and the read-only drive limits are refused, and a frame the detector fails to make returns
    acquire to 0 with a MAJOR alarm that the next good frame clears."""
    import asyncio

    from caproto import AlarmSeverity

    from uedsteer.sim_devices.beamline import SimulatedBeamline
    from uedsteer.sim_devices.ioc import beamline_ioc

    bl = SimulatedBeamline(seed=1, n_spots=10)
    ioc = beamline_ioc(bl, "X:", frame_timeout=0.5)
    assert ioc.pv_names["spot"] == "X:Stage:Spot"
    assert (ioc.spot.lower_ctrl_limit, ioc.spot.upper_ctrl_limit) == (0, 9)

    async def go() -> None:
        await ioc.fluence.write(5.0)
        await ioc.shutter.write("open")
        await ioc.spot.write(2)
        assert (bl.settings["fluence"].get(), bl.shutter.get(), bl.spot.get()) == (5.0, "open", 2)
        for pv, value in ((ioc.fluence, 35.0), (ioc.spot, 10), (ioc.delay, -11.0)):
            with pytest.raises(ValueError, match="Limits are set to"):  # CannotExceedLimits
                await pv.write(value)
        assert (bl.settings["fluence"].get(), bl.spot.get()) == (5.0, 2), "nothing moved"
        drvh = ioc.fluence.field_inst.drive_high_limit
        with pytest.raises(ValueError, match="read-only"):
            await drvh.write(50.0)
        assert ioc.fluence.upper_ctrl_limit == 20.0
        await ioc.acquire.write(1)
        assert ioc.acquire.value == "Done" and bl.sample.spots[2].shots == 1
        np.testing.assert_array_equal(ioc.image.value, np.ravel(bl.detector.image.get()))
        for fault in ("raise", "timeout"):
            bl.detector.inject_fault(fault)
            with pytest.raises(RuntimeError, match="X:Det:Acquire: no frame"):
                await ioc.acquire.write(1)
            assert ioc.acquire.value == "Done"
            assert ioc.acquire.alarm.severity == AlarmSeverity.MAJOR_ALARM
        await ioc.acquire.write(1)
        assert ioc.acquire.alarm.severity == AlarmSeverity.NO_ALARM

    asyncio.run(go())
    with pytest.raises(ValueError, match="prefix '' is not allowed"):
        beamline_ioc(bl, "")


def test_a_frame_the_ioc_could_not_make_fails_the_trigger(beamline):
    """acquire back at 0 with an alarm: the trigger's status fails with a DetectorFault."""
    from caproto import AlarmSeverity
    from ophyd import DeviceStatus

    from uedsteer.sim_devices.contracts import DetectorFault

    det = beamline.detector
    status = DeviceStatus(det)
    det._pending = status
    det._acquire_changed(value=0, old_value=1, severity=AlarmSeverity.MAJOR_ALARM)
    with pytest.raises(DetectorFault, match="ended in alarm: no frame"):
        status.wait(5)
    assert det._pending is None


# ---- frames: the same physics as in-process --------------------------------------------


def test_frames_through_epics_are_the_in_process_physics(tmp_path):
    """A fresh IOC and an in-process SimulatedBeamline with the same seed, moved and triggered
    alike, give the same frames: pristine, pumped, and on a spot the pump has damaged; SIGTERM
    then stops the IOC with status 0."""
    from uedsteer.sim_devices.beamline import SimulatedBeamline
    from uedsteer.sim_devices.epics_beamline import EpicsBeamline

    local = SimulatedBeamline(seed=7)
    with running_ioc(tmp_path, "--seed", "7") as ioc:
        remote = EpicsBeamline(ioc.prefix, connection_timeout=20)
        steps = [
            {"shutter": "closed"},
            {"shutter": "closed"},
            {"shutter": "open", "fluence": 4.0, "wavelength": 900.0, "delay": 20.0},
            {"shutter": "open", "fluence": 16.0, "charge": 50.0},
            {"shutter": "open"},
            {"shutter": "open"},
            {"shutter": "closed", "spot": 3},
        ]
        frames = []
        for step in steps:
            pair = []
            for bl in (local, remote):
                for key, value in step.items():
                    sig = {"shutter": bl.shutter, "spot": bl.spot}.get(key) or bl.settings[key]
                    sig.set(value).wait(10)
                bl.detector.trigger().wait(30)
                pair.append(np.asarray(bl.detector.image.get()))
            frames.append(pair)
        damaged = local.truth(0)
        assert read_pv(f"{ioc.prefix}Pump:Shutter", string=True) == "closed"
        _stop(ioc.proc)
        assert ioc.proc.returncode == 0 and "uedsteer ioc: stopped" in ioc.output()
    for (mine, theirs), step in zip(frames, steps, strict=True):
        assert theirs.shape == (261, 261) and theirs.dtype == np.float32
        np.testing.assert_allclose(theirs, mine, rtol=1e-5, atol=1e-4, err_msg=str(step))
    means = [float(m.mean()) for m, _ in frames]
    assert all(0.1 < m < 1e4 for m in means), means
    assert damaged["vacancy"] > 0, "the pump damaged spot 0"
    assert not np.allclose(frames[0][1], frames[3][1], rtol=0.05), "the pump changed the frame"


# ---- a campaign through EPICS ------------------------------------------------------------


def test_a_short_campaign_through_epics_closes_the_shutter(ioc, beamline, tmp_path):
    from bluesky import RunEngine

    from uedsteer.controller.campaign import Campaign
    from uedsteer.controller.config import CampaignConfig
    from uedsteer.plans.campaign import campaign
    from uedsteer.plans.catalog import local_catalog, read_frames, subscribe
    from uedsteer.surrogates.scorer import FrameScorer

    db = local_catalog(tmp_path / "cat")
    RE = RunEngine({}, context_managers=[])
    subscribe(RE, db, batch_size=1)
    camp = Campaign(CampaignConfig(budget=4))
    RE(campaign(beamline, FrameScorer.pretrained(), camp))
    run = db.values().last()
    assert run.metadata["stop"]["exit_status"] == "success"
    assert len(camp.record) == 4 and all(t.status == "ok" for t in camp.record.trials)
    frames = read_frames(run)
    assert frames.shape == (4, 261, 261) and np.all(np.isfinite(frames))
    fluence = np.asarray(run["primary"]["pump_fluence"].read())
    assert fluence.tolist() == pytest.approx([t.settings["fluence"] for t in camp.record.trials])
    assert np.asarray(run["primary"]["pump_shutter"].read()).tolist() == ["open"] * 4
    assert run.metadata["start"]["motors"] == ["pump", "gun", "delay", "stage"]
    assert read_pv(f"{ioc.prefix}Pump:Shutter", string=True) == "closed"
    last = camp.record.trials[-1].settings["fluence"]
    assert read_pv(f"{ioc.prefix}Pump:Fluence") == pytest.approx(last)
