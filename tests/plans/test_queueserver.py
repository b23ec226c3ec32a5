"""Campaigns queued through the bluesky queueserver, end to end, on real processes.

One stack for the module, every server on 127.0.0.1 and stopped by its pid: Redis
(:class:`uedsteer.plans.redis_server.RedisServer`), a served Tiled catalog, ``uedsteer ioc``
(the simulated beamline over EPICS, :mod:`epics_ioc`, keeping its devices' state across a
restart as hardware does) and ``start-re-manager`` with uedsteer's profile
(:class:`uedsteer.plans.qserver_manager.REManager`), whose RE Worker drives the IOC's PVs
through ``EpicsBeamline``. This process talks to the RE Manager through
``bluesky_queueserver_api`` and reads the catalog and the shutter PV as any client would. The
last steps kill the IOC and then the RE Manager mid-campaign (SIGKILL, as a crash).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest
from epics_ioc import Ioc, read_pv, running_ioc

from uedsteer.plans import documents as doc
from uedsteer.plans.campaign import N_REFERENCE
from uedsteer.plans.qserver_profile import EXISTING_PLANS_AND_DEVICES, STARTUP_MODULE
from uedsteer.sim_devices.epics_env import loopback_environment, off_loopback

pytestmark = pytest.mark.filterwarnings("ignore")

OPEN_TIMEOUT = 120.0  # s for the RE Worker to import torch, the scorer, and connect the PVs
RUN_TIMEOUT = 120.0  # s for a short campaign on a busy machine
FAST = {"n_candidates": 64}  # fewer candidates per proposal: the same plan, faster
SHOT = doc.readout_key(doc.SHOT_READOUT, "shot")  # the shot number in the primary stream
PROPOSAL_SHOT = doc.readout_key(doc.PROPOSAL_READOUT, "shot")
LONG = {**FAST, "target": 5.0, "on_damage": "move"}  # a campaign that goes on (no target)


@dataclass
class Stack:
    """The running processes and the clients of this test process."""

    ioc: Ioc
    redis: Any
    tiled: Any
    manager: Any
    api: Any
    catalog: Any

    def logs(self) -> str:
        return "\n".join(
            f"---- {p.name}\n{p.read_text()[-4000:]}"
            for p in (self.manager.log, self.ioc.log)
            if p.exists()
        )


def wait_for(what: str, condition: Callable[[], Any], timeout: float, stack: Stack) -> Any:
    """Poll ``condition`` every 50 ms until it returns something true (returned)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"{what}: not within {timeout:g} s\n{stack.logs()}")


@contextlib.contextmanager
def environment(**values: str) -> Iterator[None]:
    """Set environment variables of this process for the block."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def running_stack(root: Path) -> Iterator[Stack]:
    """The processes of the module docstring, started on loopback, stopped by their pids."""
    from uedsteer.plans.catalog import connect_catalog
    from uedsteer.plans.qserver_manager import REManager
    from uedsteer.plans.redis_server import RedisServer
    from uedsteer.plans.tiled_server import TiledServer

    with contextlib.ExitStack() as stop, ThreadPoolExecutor(max_workers=1) as pool:
        # the IOC first: it sets the loopback rule in this process too, which every process
        # started after it inherits
        ioc = stop.enter_context(running_ioc(root, "--state", str(root / "ioc-state.json")))
        assert off_loopback() == []
        tiled = TiledServer(root / "catalog")
        stop.callback(tiled.stop)
        tiled_started = pool.submit(tiled.start)  # the slowest to start: meanwhile the rest
        redis = stop.enter_context(RedisServer(folder=root / "redis"))
        env = dict(ioc.env)  # the IOC's Channel Access port and the loopback rule
        env.update(
            UEDSTEER_CATALOG=tiled.url,
            TILED_API_KEY=tiled.api_key,
            UEDSTEER_JOURNAL=str(root / "journal-re"),
            UEDSTEER_EPICS_PREFIX=ioc.prefix,
            OMP_NUM_THREADS="1",
        )
        manager = REManager(redis.address, root / "manager", environ=env)
        assert off_loopback(manager.environ) == []
        stop.enter_context(manager)
        tiled_started.result()  # before the environment opens: the profile opens the catalog
        api = manager.api()
        stop.enter_context(environment(UEDSTEER_JOURNAL=str(root / "journal-test")))
        catalog = connect_catalog(tiled.url, api_key=tiled.api_key)
        stack = Stack(ioc, redis, tiled, manager, api, catalog)
        api.environment_open()
        try:
            api.wait_for_idle(timeout=OPEN_TIMEOUT)
        except Exception:  # noqa: BLE001 - the reason is in the logs
            pytest.fail(f"the RE Worker environment did not open\n{stack.logs()}")
        assert api.status()["worker_environment_exists"], stack.logs()
        yield stack


def shutter(stack: Stack) -> str:
    return read_pv(f"{stack.ioc.prefix}Pump:Shutter", string=True)


def start_item(stack: Stack, name: str, **kwargs: Any) -> str:
    """Queue one plan and start the queue; its item uid, at once."""
    from bluesky_queueserver_api import BPlan

    added = stack.api.item_add(BPlan(name, **kwargs))
    assert added["success"], added["msg"]
    stack.api.queue_start()
    return added["item"]["item_uid"]


def finished_item(stack: Stack, item_uid: str) -> dict:
    """The history item ``item_uid`` once it is there and the manager is idle. A failed,
    aborted or halted item goes back to the front of the queue: the queue is cleared."""

    def done() -> dict | None:
        if stack.api.status(reload=True)["manager_state"] != "idle":
            return None
        items = stack.api.history_get(reload=True)["items"]
        return next((i for i in items if i["item_uid"] == item_uid), None)

    item = wait_for(f"item {item_uid} in the history", done, RUN_TIMEOUT, stack)
    stack.api.queue_clear()
    return item


def run_item(stack: Stack, name: str, **kwargs: Any) -> dict:
    """Queue one plan, start the queue and return the history item once it is done."""
    return finished_item(stack, start_item(stack, name, **kwargs))


class PVWatch:
    """Counts the times a PV of the IOC turns to ``value`` through a Channel Access monitor:
    the pump shutter's openings (one per shot, or per spot: it stays open from shot to shot),
    the frames made (``Det:Acquire`` back to ``Done``)."""

    def __init__(self, stack: Stack, suffix: str = "Pump:Shutter", value: str = "open") -> None:
        from ophyd import EpicsSignalRO

        self.stack, self.value, self.count = stack, value, 0
        self.seen: list[tuple[float, str]] = []  # (time, value) of every update
        self.signal = EpicsSignalRO(f"{stack.ioc.prefix}{suffix}", name="watch", string=True)
        self.signal.wait_for_connection(timeout=10)
        self.signal.subscribe(self._changed, run=False)

    def _changed(self, value=None, old_value=None, **kwargs) -> None:
        self.seen.append((time.time(), value))
        if value == self.value and old_value not in (None, self.value):  # not the first
            self.count += 1

    def wait_count(self, n: int) -> None:
        """Until the PV has turned to the value ``n`` times since the watch began."""
        wait_for(f"{n} times {self.value}", lambda: self.count >= n, RUN_TIMEOUT, self.stack)

    def close(self) -> None:
        self.signal.destroy()


def frame_watch(stack: Stack) -> PVWatch:
    """Counts the frames the IOC made (reference frames and shots)."""
    return PVWatch(stack, "Det:Acquire", "Done")


def wait_for_state(stack: Stack, state: str, timeout: float = RUN_TIMEOUT) -> None:
    wait_for(
        f"manager_state {state!r}",
        lambda: stack.api.status(reload=True)["manager_state"] == state,
        timeout,
        stack,
    )


def current_run(stack: Stack) -> str:
    """The uid of the run the RunEngine has open (polled until there is one)."""

    def uid() -> str | None:
        runs = stack.api.re_runs(option="open")["run_list"]
        return runs[0]["uid"] if runs else None

    return wait_for("an open run", uid, RUN_TIMEOUT, stack)


# ---- the profile's files ------------------------------------------------------------------


def test_existing_plans_and_devices_is_what_the_profile_generates(tmp_path):
    """``qserver-list-plans-devices`` on the profile (simulated beamline) writes the committed
    file, byte for byte: regenerate it with the command in the message when the plans change."""
    env = dict(os.environ)
    loopback_environment(env)
    for key in ("UEDSTEER_EPICS_PREFIX", "UEDSTEER_EPICS_PV_MAP", "UEDSTEER_SIM_SEED"):
        env.pop(key, None)
    env.update(UEDSTEER_CATALOG=str(tmp_path / "catalog"), OMP_NUM_THREADS="1")
    exe = Path(sys.executable).with_name("qserver-list-plans-devices")
    cmd = [str(exe), "--startup-module", STARTUP_MODULE, "--file-dir", str(tmp_path)]
    done = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=170)
    assert done.returncode == 0, done.stdout + done.stderr
    generated = (tmp_path / EXISTING_PLANS_AND_DEVICES.name).read_text()
    assert generated == EXISTING_PLANS_AND_DEVICES.read_text(), (
        f"{EXISTING_PLANS_AND_DEVICES} is stale; regenerate it: cd "
        f"{EXISTING_PLANS_AND_DEVICES.parent} && UEDSTEER_CATALOG=$(mktemp -d) "
        f"qserver-list-plans-devices --startup-module {STARTUP_MODULE}"
    )


# ---- the stack ------------------------------------------------------------------------------
# One test runs every step on one stack: `make test` spreads tests over two workers, and a
# module fixture would start a second stack (40 s of both cores) in the other worker.


@pytest.mark.timeout(600)  # about 150 s alone; more beside a busy suite
def test_campaigns_through_the_queueserver(tmp_path):
    """Each step below, in order, on one stack (each step's docstring says what it shows)."""
    with running_stack(tmp_path) as stack:
        every_server_listens_on_loopback_only(stack)
        the_queue_checks_parameters_and_shows_limits(stack)
        a_bad_configuration_fails_the_item_before_anything_moves(stack)
        a_queued_campaign_runs_to_its_budget_and_closes_the_shutter(stack)
        pause_resume_and_stop_through_the_queue_leave_the_shutter_closed(stack)
        an_ioc_killed_mid_campaign_fails_the_shot_and_nothing_is_proposed_until_it_is_back(stack)
        a_killed_re_manager_leaves_a_campaign_that_resumes_from_the_catalog(stack, tmp_path)


def every_server_listens_on_loopback_only(stack: Stack) -> None:
    """Redis, Tiled, the IOC, the RE Manager and its worker: every socket on 127.0.0.1."""
    pids = {
        "redis": stack.redis.pid,
        "tiled": stack.tiled.process.pid,
        "ioc": stack.ioc.proc.pid,
        "manager": stack.manager.process.pid,
    }
    procs = {k: psutil.Process(v) for k, v in pids.items()}
    procs["this process"] = psutil.Process()
    for child in procs["manager"].children(recursive=True):
        procs[f"manager child {child.pid}"] = child
    assert len(procs) >= 6, "the watchdog's manager and worker processes"
    for name, proc in procs.items():
        for c in proc.net_connections(kind="inet"):
            assert c.laddr.ip == "127.0.0.1", (name, c)
            assert not c.raddr or c.raddr.ip == "127.0.0.1", (name, c)
    listening = {c.laddr.port for c in procs["manager"].net_connections(kind="inet")}
    listening |= {
        c.laddr.port
        for p in procs["manager"].children(recursive=True)
        for c in p.net_connections(kind="inet")
    }
    assert stack.manager.control_port in listening


def the_queue_checks_parameters_and_shows_limits(stack: Stack) -> None:
    """The RE Manager refuses, before queueing, a budget outside its limits, an unknown device
    or scorer and a parameter the plan lacks; the plans' limits are in its plan list; the
    permissions file lets an observer queue nothing."""
    from bluesky_queueserver_api import BPlan

    plans = stack.api.plans_allowed()["plans_allowed"]
    assert set(plans) == {"uedsteer_campaign", "uedsteer_resume"}
    params = {p["name"]: p for p in plans["uedsteer_campaign"]["parameters"]}
    assert (params["budget"]["min"], params["budget"]["max"]) == ("1", "10000")
    assert params["n_reference"]["min"] == "3"
    assert params["detector"]["annotation"]["devices"] == {"DetectorDevices": ["det"]}
    assert params["scorer"]["annotation"]["enums"] == {"Scorers": ["pretrained"]}
    bad = {
        "budget": ({"budget": 0}, "0"),
        "device": ({"detector": "gun"}, "detector"),
        "scorer": ({"scorer": "mine"}, "scorer"),
        "unknown": ({"shots": 3}, "shots"),
        "type": ({"config": 3}, "config"),
    }
    for case, (kwargs, named) in bad.items():
        with pytest.raises(stack.api.RequestFailedError) as err:
            stack.api.item_add(BPlan("uedsteer_campaign", **kwargs))
        assert "Plan validation failed" in str(err.value), case
        assert named in str(err.value), (case, str(err.value))
    # the permissions file: an observer may queue nothing
    assert stack.api.plans_allowed(user_group="observer")["plans_allowed"] == {}
    with pytest.raises(stack.api.RequestFailedError, match="not in the list of allowed plans"):
        stack.api.item_add(BPlan("uedsteer_campaign"), user_group="observer")
    assert stack.api.queue_get()["items"] == []


def a_bad_configuration_fails_the_item_before_anything_moves(stack: Stack) -> None:
    """What the queue cannot check (a field of the configuration, a YAML file) fails the item
    when it starts, in one line, with no run opened."""
    runs_before = len(stack.catalog)
    item = run_item(stack, "uedsteer_campaign", config={"budget": 4, "damage_bound": 2})
    assert item["result"]["exit_status"] == "failed"
    assert "config: damage_bound: Input should be less than 1" in item["result"]["msg"]
    item = run_item(stack, "uedsteer_campaign", config="/nowhere/campaign.yaml")
    assert "no such file on the RE Manager's machine" in item["result"]["msg"]
    assert len(stack.catalog) == runs_before
    assert shutter(stack) == "closed"


def a_queued_campaign_runs_to_its_budget_and_closes_the_shutter(stack: Stack) -> None:
    """A campaign queued and run to its end: every shot, frame and proposal in the catalog,
    the metadata of the queue item in the run, the shutter PV closed at the end."""
    item = run_item(stack, "uedsteer_campaign", config=FAST, budget=4, md={"operator": "qs"})
    result = item["result"]
    assert result["exit_status"] == "completed", (result, stack.logs())
    (uid,) = result["run_uids"]
    run = stack.catalog[uid]
    start, stop = run.metadata["start"], run.metadata["stop"]
    shots = run["primary"][SHOT].read().tolist()
    assert stop["exit_status"] == "success"
    assert shots == list(range(len(shots))) and 1 <= len(shots) <= 4
    # the budget, or the target reached first (on the default sample it is, on the 4th shot)
    assert len(shots) == 4 or "target reached" in stop["reason"], stop["reason"]
    assert start["operator"] == "qs" and start[doc.CONFIG_KEY]["budget"] == 4
    assert start[doc.CONFIG_KEY]["n_candidates"] == 64
    assert start["motors"] == ["pump", "gun", "delay", "stage"]
    assert start[doc.THREADS_KEY]["intra_op"] >= 1
    primary = run["primary"]
    frames = np.asarray(primary["det_image"].read())
    assert frames.shape == (len(shots), 261, 261) and np.all(np.isfinite(frames))
    assert primary["pump_shutter"].read().tolist() == ["open"] * len(shots)
    assert len(run["reference"]["det_image"].read()) == 3
    assert len(run["proposals"][PROPOSAL_SHOT].read()) == len(shots)
    assert shutter(stack) == "closed"
    last = float(primary["pump_fluence"].read()[-1])
    assert read_pv(f"{stack.ioc.prefix}Pump:Fluence") == pytest.approx(last)


def pause_resume_and_stop_through_the_queue_leave_the_shutter_closed(stack: Stack) -> None:
    """A campaign paused at a checkpoint waits with the shutter closed and carries on when
    resumed; paused mid-shot and stopped, it ends a success with the shutter closed. (An abort
    ends the IOC step below; a resume item ends the RE Manager step.)"""
    watch = PVWatch(stack)
    try:
        first = start_item(stack, "uedsteer_campaign", config=LONG, budget=40)
        watch.wait_count(1)  # a shot is being taken
        uid = current_run(stack)

        stack.api.re_pause(option="deferred")  # at the next checkpoint: between two shots
        wait_for_state(stack, "paused")
        assert shutter(stack) == "closed"
        opened = watch.count
        stack.api.re_resume()
        watch.wait_count(opened + 1)  # the campaign carries on
        stack.api.re_pause(option="immediate")  # mid-shot, or between two
        wait_for_state(stack, "paused")
        assert shutter(stack) == "closed"
        stack.api.re_stop()
        item = finished_item(stack, first)
        assert item["result"]["exit_status"] == "stopped", item["result"]
        assert item["result"]["run_uids"] == [uid]
        assert shutter(stack) == "closed"
        run = stack.catalog[uid]
        assert run.metadata["stop"]["exit_status"] == "success"
        shots = run["primary"][SHOT].read().tolist()
        assert shots == list(range(len(shots))) and len(shots) >= 1  # the last one interrupted

    finally:
        watch.close()


def stream_times(run: Any, stream: str) -> list[float]:
    """The event times of ``stream`` (empty when the run has none)."""
    if stream not in run:
        return []
    return [float(t) for t in run[stream]["time"].read()] if "time" in run[stream] else []


def an_ioc_killed_mid_campaign_fails_the_shot_and_nothing_is_proposed_until_it_is_back(
    stack: Stack,
) -> None:
    """The IOC killed while a campaign shoots: the shot in flight is a failed shot (in
    ``failures``, naming the PV), the campaign proposes nothing while the IOC is gone, closes
    the shutter first when it is back (restored open, as the hardware was left) and shoots on,
    with the same shot numbers; an abort through the queue ends it with the shutter closed."""
    watch, frames = PVWatch(stack), frame_watch(stack)
    try:
        item = start_item(
            stack, "uedsteer_campaign", config={**LONG, "reconnect_timeout": 120}, budget=40
        )
        frames.wait_count(N_REFERENCE + 2)  # two shots
        uid = current_run(stack)
        stack.ioc.kill()  # as a crash: the shutter stays as it was, open
        killed = time.time()

        def failure() -> bool:
            return "failures" in stack.catalog[uid]

        wait_for("the failed shot in the catalog", failure, RUN_TIMEOUT, stack)
        time.sleep(1.0)  # the campaign waits, proposing nothing
        proposals_while_gone = len(stack.catalog[uid]["proposals"][PROPOSAL_SHOT].read())
        left = json.loads(Path(stack.ioc.args[1]).read_text())["shutter"]  # the hardware's
        stack.ioc.restart()
        back = time.time()
        restored = read_pv(f"{stack.ioc.prefix}Pump:Shutter", string=True)
        opened = watch.count
        watch.wait_count(opened + 1)  # shooting again
        frames.wait_count(frames.count + 1)  # that shot's frame
        stack.api.re_pause(option="deferred")  # after its event; then an abort
        wait_for_state(stack, "paused")
        assert shutter(stack) == "closed"
        stack.api.re_abort()
        result = finished_item(stack, item)["result"]
        assert result["exit_status"] == "aborted", result
        assert shutter(stack) == "closed"
    finally:
        watch.close()
        frames.close()
    run = stack.catalog[uid]
    assert run.metadata["stop"]["exit_status"] == "abort", run.metadata["stop"]
    failures = run["failures"]
    errors = failures[doc.readout_key(doc.SHOT_READOUT, "error")].read().tolist()
    failed = failures[SHOT].read().tolist()
    assert stack.ioc.prefix in errors[0] or "disconnected" in errors[0], errors
    shots = run["primary"][SHOT].read().tolist()
    assert sorted(shots + failed) == list(range(len(shots) + len(failed)))  # numbers go on
    assert any(n > failed[0] for n in shots), "shots after the IOC came back"
    # no proposal after the failed shot while the IOC was gone
    proposals = run["proposals"][PROPOSAL_SHOT].read().tolist()
    assert proposals_while_gone == failed[0] + 1
    # (the failed shot's own proposal may come after the kill: it was being computed; the
    # campaign learns of the fault from that shot)
    times, failed_at = stream_times(run, "proposals"), stream_times(run, "failures")[0]
    assert killed < failed_at < back
    assert not [t for t in times if failed_at < t < back], (killed, failed_at, back, times)
    # the restarted IOC came back with the shutter open; the campaign closed it before it
    # opened it again for the next shot
    after = [v for t, v in watch.seen if t > back]
    assert restored == left
    actions = run["primary"][doc.readout_key(doc.SHOT_READOUT, "action")].read().tolist()
    assert left == "open" or actions[failed[0] - 1] == "move", (left, actions)
    if left == "open":  # the IOC prints each change of the shutter: closed, then open
        restarted = stack.ioc.output().split("\nready\n")[-1]  # the restarted IOC's
        pv = f"{stack.ioc.prefix}Pump:Shutter "
        changes = [ln.split()[-1] for ln in restarted.splitlines() if ln.startswith(pv)]
        assert changes[:2] == ["closed", "open"], (changes, after)
    assert len(proposals) == len(shots) + len(failed)


def a_killed_re_manager_leaves_a_campaign_that_resumes_from_the_catalog(
    stack: Stack, root: Path
) -> None:
    """The RE Manager and its worker killed mid-campaign (SIGKILL): every shot taken is in the
    catalog (from the worker's journal, delivered when the next worker opens the catalog), the
    next environment closes the shutter, and a ``uedsteer_resume`` item continues the same
    campaign (its configuration, its shot numbers) on a new manager on the same queue."""
    from uedsteer.plans.qserver_manager import REManager

    frames = frame_watch(stack)
    try:
        start_item(stack, "uedsteer_campaign", config=LONG, budget=40)
        frames.wait_count(N_REFERENCE + 2)  # two shots: the first one's event is out
        uid = current_run(stack)
    finally:
        frames.close()
    old = stack.manager
    os.killpg(old.process.pid, signal.SIGKILL)  # the watchdog, the manager and the worker
    old.process.wait(timeout=10)
    stack.api.close()
    manager = REManager(
        stack.redis.address, root / "manager-2", environ=old.environ, redis_prefix=old.redis_prefix
    )
    try:
        manager.start()
        stack.manager, stack.api = manager, manager.api()
        stack.api.environment_open()
        stack.api.wait_for_idle(timeout=OPEN_TIMEOUT)
        assert shutter(stack) == "closed", "opening the environment closes the shutter"
        stack.api.queue_clear()  # the killed item, if the new manager put it back
        run = stack.catalog[uid]
        assert "stop" not in run.metadata or run.metadata["stop"] is None
        recorded = run["primary"][SHOT].read().tolist()
        assert recorded == list(range(len(recorded))) and len(recorded) >= 1
        n = len(recorded) + (len(run["failures"][SHOT].read()) if "failures" in run else 0)
        item = run_item(stack, "uedsteer_resume", uid=uid, budget=n + 2)
        assert item["result"]["exit_status"] == "completed", (item["result"], stack.logs())
        (resumed,) = item["result"]["run_uids"]
        again = stack.catalog[resumed]
        start = again.metadata["start"]
        assert start[doc.RESUMED_FROM_KEY] == uid
        assert start[doc.CONFIG_KEY]["n_candidates"] == LONG["n_candidates"]
        assert start[doc.CONFIG_KEY]["target"] == LONG["target"]
        assert again["proposals"][PROPOSAL_SHOT].read().tolist()[0] == n
        assert again["primary"][SHOT].read().tolist()[0] == n
        assert shutter(stack) == "closed"
    finally:
        manager.stop()
