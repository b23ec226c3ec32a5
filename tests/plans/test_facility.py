"""``uedsteer facility``: the whole stack from one command, on real processes (issue 31).

``facility up`` runs as its own process and ends; the servers it started (Redis, the served
catalog, ``uedsteer ioc``, the RE Manager) must outlive it, on 127.0.0.1 only, with the EPICS
loopback rule in their environments. Then, in this process: ``status``, a short campaign
queued with ``facility campaign`` and read back shot by shot with the *reader* key, ``down``
(every process gone, every port closed) and ``down`` again. Two cheap tests: a bad argument is
one line, and a server that cannot start stops what was started and names its log.
"""

from __future__ import annotations

import json
import socket
import stat
import subprocess
import sys
import time

import numpy as np
import psutil
import pytest
import yaml
from helpers import run_main

from uedsteer.plans import documents as doc
from uedsteer.sim_devices.epics_env import LOOPBACK_ENVIRONMENT

pytestmark = pytest.mark.filterwarnings("ignore")

UEDSTEER = [sys.executable, "-m", "uedsteer.controller.cli"]
# fewer candidates per proposal (the same plan, faster); no target and a move on damage, so
# the campaign runs to its budget
FAST = {"n_candidates": 64, "target": 5.0, "on_damage": "move"}
SHOTS = 5
SHOT = doc.readout_key(doc.SHOT_READOUT, "shot")


def gone(pid: int) -> bool:
    """The process ended (a zombie waiting for its parent counts as ended)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def logs(folder) -> str:
    return "\n".join(
        f"---- {p}\n{p.read_text(errors='replace')[-3000:]}"
        for p in sorted(folder.rglob("*.log"))
        if p.is_file()
    )


def kill_leftovers(folder) -> None:
    """Kill, by pid, whatever still runs from ``folder`` (a failed ``up`` that wrote no state):
    a test must not leave servers behind."""
    for proc in psutil.process_iter(["cmdline", "cwd"]):
        try:
            if str(folder) in " ".join(proc.info["cmdline"] or []) + (proc.info["cwd"] or ""):
                proc.kill()
        except psutil.Error:
            pass


def error_lines(res: subprocess.CompletedProcess) -> list[str]:
    assert "Traceback" not in res.stderr, res.stderr
    return [line for line in res.stderr.splitlines() if ": error: " in line]


@pytest.mark.timeout(480)  # about 90 s alone; more beside a busy suite
def test_facility_up_campaign_down(tmp_path, monkeypatch):
    """One stack, every step in order (a second stack would cost both cores for a minute)."""
    folder = tmp_path / "facility"
    monkeypatch.setenv("UEDSTEER_JOURNAL", str(tmp_path / "journal-test"))
    up = subprocess.run(
        [*UEDSTEER, "facility", "up", "--folder", str(folder)],
        capture_output=True,
        text=True,
        timeout=420,
    )
    try:
        assert up.returncode == 0, up.stdout + up.stderr + logs(folder)
        state_file = folder / "facility.json"
        state = json.loads(state_file.read_text())
        pids = {p["name"]: p["pid"] for p in state["processes"]}
        ports = [port for p in state["processes"] for port in p["ports"]]
        assert set(pids) == {"redis", "catalog", "ioc", "manager", "monitor"}
        children = the_stack_outlives_up_on_loopback_with_its_keys(up, state, state_file)
        status_says_everything_runs(folder)
        uid = a_queued_campaign_reads_back_with_the_reader_key(folder, state, tmp_path)
        the_monitor_follows_the_run_with_the_reader_key(state, uid)
    finally:
        down = run_main(["facility", "down", "--folder", str(folder)])
        kill_leftovers(folder)
    assert down.returncode == 0, down.stderr
    assert not state_file.exists()
    for name, pid in pids.items():
        assert gone(pid), f"{name} pid {pid} still runs"
    assert all(gone(p) for p in children), "the RE Manager's worker and watchdog"
    for port in ports:
        assert not port_open(port), f"port {port} still open"
    again = run_main(["facility", "down", "--folder", str(folder)])
    assert again.returncode == 0 and "nothing to stop" in again.stdout
    # the catalog and its keys stay: the run is still in the folder
    assert (folder / "catalog" / "catalog.db").exists() and uid


def the_stack_outlives_up_on_loopback_with_its_keys(up, state, state_file) -> list[int]:
    """``up`` has ended; its servers run, listen on 127.0.0.1 only, the IOC and the RE Manager
    with the EPICS loopback rule; the state file is the owner's only; both keys printed."""
    assert stat.S_IMODE(state_file.stat().st_mode) == 0o600
    assert up.stdout.count("TILED_API_KEY=") == 2
    assert f"TILED_API_KEY={state['writer_key']}" in up.stdout
    assert f"TILED_API_KEY={state['reader_key']}" in up.stdout
    assert state["writer_key"] != state["reader_key"]
    assert state["catalog_url"] in up.stdout and state["control_address"] in up.stdout
    for address in (state["catalog_url"], state["control_address"], state["info_address"]):
        assert "//127.0.0.1:" in address
    assert state["redis_address"].startswith("127.0.0.1:")
    procs = {p["name"]: psutil.Process(p["pid"]) for p in state["processes"]}
    children = procs["manager"].children(recursive=True)
    assert len(children) >= 2, "the RE Manager's manager and worker processes"
    for proc in [*procs.values(), *children]:
        assert proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
        for c in proc.net_connections(kind="inet"):
            assert c.laddr.ip == "127.0.0.1", (proc.name(), c)
            assert not c.raddr or c.raddr.ip == "127.0.0.1", (proc.name(), c)
    for name in ("ioc", "manager"):
        environ = procs[name].environ()
        for key, value in LOOPBACK_ENVIRONMENT.items():
            assert environ.get(key) == value, (name, key)
        assert environ["EPICS_CA_SERVER_PORT"] == str(state["ca_port"])
    assert procs["manager"].environ()["TILED_API_KEY"] == state["writer_key"]
    for record in state["processes"]:
        assert all(port_open(port) for port in record["ports"]), record
    return [c.pid for c in children]


def status_says_everything_runs(folder) -> None:
    res = run_main(["facility", "status", "--folder", str(folder)])
    assert res.returncode == 0, res.stdout + res.stderr
    for name in ("redis", "catalog", "ioc", "manager"):
        line = next(ln for ln in res.stdout.splitlines() if ln.split()[:1] == [name])
        assert " running " in line, line
    assert "worker environment open" in res.stdout


def a_queued_campaign_reads_back_with_the_reader_key(folder, state, tmp_path) -> str:
    """``facility campaign`` queues the item, starts the queue and waits; every shot of its run
    is in the served catalog, read with the reader key."""
    from uedsteer.plans.catalog import connect_catalog, read_frames

    config = tmp_path / "campaign.yaml"
    config.write_text(yaml.safe_dump(FAST))
    res = run_main(
        ["facility", "campaign", "--folder", str(folder), "--config", str(config)]
        + ["--budget", str(SHOTS), "--timeout", "300"]
    )
    assert res.returncode == 0, res.stdout + res.stderr + logs(folder)
    (uid,) = [ln.split()[1].rstrip(":") for ln in res.stdout.splitlines() if ln.startswith("run ")]
    assert "read it with the reader key" in res.stdout and state["reader_key"] in res.stdout

    reader = connect_catalog(state["catalog_url"], api_key=state["reader_key"])
    deadline = time.monotonic() + 30
    while "stop" not in (reader[uid].metadata or {}) and time.monotonic() < deadline:
        time.sleep(0.2)
    run = reader[uid]
    start, stop = run.metadata["start"], run.metadata["stop"]
    assert stop["exit_status"] == "success", stop
    assert start[doc.CONFIG_KEY]["budget"] == SHOTS
    assert start[doc.CONFIG_KEY]["n_candidates"] == FAST["n_candidates"]
    shots = np.asarray(run["primary"][SHOT].read()).tolist()
    assert shots == list(range(SHOTS)), "every shot, once, in order"
    frames = read_frames(run)
    assert frames.shape == (SHOTS, 261, 261) and np.isfinite(frames).all() and frames.max() > 0
    assert len(run["proposals"][doc.readout_key(doc.PROPOSAL_READOUT, "shot")].read()) == SHOTS
    return uid


def the_monitor_follows_the_run_with_the_reader_key(state, uid) -> None:
    """The monitor ``up`` started (with the reader key, in its command line) shows the run the
    queue just made, all its shots."""
    import httpx

    (monitor,) = [p for p in state["processes"] if p["name"] == "monitor"]
    assert monitor["address"].startswith("http://127.0.0.1:")
    assert state["reader_key"] in psutil.Process(monitor["pid"]).cmdline()
    assert state["writer_key"] not in psutil.Process(monitor["pid"]).cmdline()
    seen: dict = {}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        seen = httpx.get(monitor["address"] + "api/state", timeout=5).json()
        if seen.get("uid") == uid and seen.get("shots") == SHOTS:
            break
        time.sleep(0.5)
    assert seen.get("uid") == uid and seen.get("shots") == SHOTS, seen
    assert "uedsteer" in httpx.get(monitor["address"], timeout=5).text


def test_bad_arguments_are_one_line_and_start_nothing(tmp_path):
    folder = tmp_path / "facility"
    res = run_main(["facility", "up", "--folder", str(folder), "--prefix", "UED 1"])
    (line,) = error_lines(res)
    assert res.returncode == 2
    assert "--prefix" in line and "'UED 1'" in line and "letters, digits" in line
    assert not folder.exists(), "nothing started"
    res = run_main(["facility", "campaign", "--folder", str(folder), "--budget", "0"])
    (line,) = error_lines(res)
    assert "--budget" in line and "'0'" in line and ">= 1" in line
    res = run_main(["facility", "campaign", "--folder", str(folder)])
    (line,) = error_lines(res)
    assert "no facility runs" in line and "facility up" in line
    bad = tmp_path / "bad.yaml"
    bad.write_text("damage_bound: 2\n")
    res = run_main(["facility", "campaign", "--folder", str(folder), "--config", str(bad)])
    (line,) = error_lines(res)
    assert "--config" in line and "damage_bound" in line
    res = run_main(["facility", "status", "--folder", str(folder)])
    assert res.returncode == 1 and "no facility runs" in res.stdout


def test_a_server_that_cannot_start_stops_the_others(tmp_path, monkeypatch):
    """The catalog's server exits at once (here a stand-in for ``tiled serve`` that fails as
    it does on a port in use, without its seconds of imports): ``up`` stops Redis and the IOC
    it had started, writes no state and says in one line what failed and where its log is."""
    from uedsteer.plans.served_catalog import ServedCatalog

    failing = [sys.executable, "-c", "import sys; sys.exit('[Errno 98] address already in use')"]
    monkeypatch.setattr(ServedCatalog, "command", lambda self: failing)
    folder = tmp_path / "facility"
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    res = run_main(["facility", "up", "--folder", str(folder)])
    (line,) = error_lines(res)
    assert res.returncode == 2
    assert "the catalog" in line and "failed to start" in line and "exited with 1" in line
    assert str(folder / "catalog" / "server.log") in line
    assert "address already in use" in (folder / "catalog" / "server.log").read_text()
    (redis,) = [ln.split() for ln in res.stdout.splitlines() if ln.startswith("redis ")]
    assert gone(int(redis[3])), "Redis had started, and was stopped"
    assert not port_open(int(redis[1].rsplit(":", 1)[1]))
    assert not (folder / "facility.json").exists()
    started = [p.pid for p in psutil.Process().children(recursive=True) if p.pid not in before]
    assert all(gone(pid) for pid in started), "every process it started has ended"
    assert not any(
        "redis-server" in " ".join(p.cmdline()) for p in psutil.Process().children(recursive=True)
    )
