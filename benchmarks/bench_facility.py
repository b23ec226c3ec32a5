"""Facility benchmark: what the full stack adds per shot to the same campaign run in-process.

One run starts the facility stack of ``uedsteer facility up``
(:func:`uedsteer.plans.facility.start_facility`: Redis, the served Tiled catalog on SQLite,
``uedsteer ioc`` on Channel Access, the RE Manager with uedsteer's profile, the monitor; all
on 127.0.0.1, EPICS kept on loopback) and runs the same campaign on two sides:

``in-process``
    :func:`uedsteer.plans.campaign.campaign` in a RunEngine of this process, on a
    :class:`~uedsteer.sim_devices.beamline.SimulatedBeamline` built as the IOC builds its own
    (same sample, same seed, 100 spots), logged durably
    (:func:`uedsteer.plans.catalog.subscribe`) to the stack's *served* catalog with the writer
    key: the same writer, server and database as the stack's RunEngine, so the difference is
    what EPICS and the queueserver add, not the catalog.
``stack``
    The same configuration queued as a ``uedsteer_campaign`` item
    (:func:`uedsteer.plans.facility.queue_item`); the RE Worker drives the IOC's PVs through
    :class:`~uedsteer.sim_devices.epics_beamline.EpicsBeamline` and logs to the same catalog.

Both beamlines live for the whole run, so repeat ``r`` of each side meets the sample as the
earlier repeats of that side left it; the sides alternate which goes first. The campaign runs
its whole budget: ``target`` 5 (never reached), ``on_damage: move``, ``patience`` above the
budget; otherwise the defaults of a normal campaign (``n_candidates`` 512, ``refit_every`` 5,
the default steered parameters and ramp limits).

Everything is read back from the catalog (reader key): per shot, the ``proposals`` event's
time (emitted once the optimizer has proposed; ``proposal_seconds`` is how long it computed)
and the ``primary`` event's time (the frame, scored and recorded). Per side it prints:

* shots per minute, from the first to the last shot event;
* proposal → frame latency (median, p90), which excludes the optimizer's computation;
* the shot interval and the interval less the proposal's computation (the optimizer's share is
  the same work on both sides);
* the latency split by the readings' own timestamps: ramp (proposal → shutter opened, the last
  move), acquire (→ the frame's timestamp) and record (→ the event: frame transfer, scoring,
  readings, the event document).

and the goal of issue 31: the stack adds ≤ 100 ms per shot (difference of the medians of the
proposal → frame latency). Then the CPU time per shot of each process (this one, and each
server of the stack with the processes it started), and, unless ``--no-breakdown``, a few
Channel Access operations timed from this process against the IOC beside the same operations
on the soft devices. ``--no-monitor`` stops the stack's browser monitor once it is up;
``--load N`` keeps N busy-loop processes running during the campaigns. Figures:
``docs/benchmarks/facility.md``.

Every process is stopped by its id at the end (:func:`uedsteer.plans.facility.stop_facility`),
also on an error, Ctrl-C or SIGTERM. Run:
``./py benchmarks/bench_facility.py [--budget 20] [--repeats 2] [--load N] [--no-monitor]``.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from busy_load import busy_processes, machine_line  # noqa: E402

GOAL_MS = 100.0
"""Issue 31: the stack may add at most this per shot (proposal → frame, medians)."""

CAMPAIGN = {"target": 5.0, "on_damage": "move"}
"""Runs the whole budget: a target the objective never reaches, a fresh spot on damage."""

SIDES = ("in-process", "stack")


def campaign_config(budget: int, n_candidates: int) -> dict[str, Any]:
    """The campaign configuration both sides run (CampaignConfig fields, JSON values).

    Parameters
    ----------
    budget : int
        Shot budget.
    n_candidates : int
        Candidate points scored per proposal.

    Returns
    -------
    dict
        ``target`` 5, ``on_damage`` move, ``patience`` above the budget, the budget and
        ``n_candidates``; every other field its default.
    """
    return {**CAMPAIGN, "patience": budget + 1, "budget": budget, "n_candidates": n_candidates}


@dataclass
class RunFigures:
    """Per-shot times of one campaign run, read back from the catalog (seconds, epoch)."""

    side: str
    uid: str
    shot_time: np.ndarray
    proposal_time: np.ndarray
    proposal_seconds: np.ndarray
    moved_time: np.ndarray
    frame_time: np.ndarray
    settings: np.ndarray
    reason: str = ""
    threads: str = ""
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def shots(self) -> int:
        """Shots that have both a proposal and a frame."""
        return len(self.shot_time)

    @property
    def shots_per_minute(self) -> float:
        """From the first to the last shot event."""
        if self.shots < 2:
            return math.nan
        return 60.0 * (self.shots - 1) / float(self.shot_time[-1] - self.shot_time[0])

    @property
    def latency(self) -> np.ndarray:
        """Proposal event → shot event, per shot."""
        return self.shot_time - self.proposal_time

    @property
    def interval(self) -> np.ndarray:
        """Shot event → next shot event (from the second shot on)."""
        return np.diff(self.shot_time)


@dataclass
class Side:
    """The runs of one side."""

    name: str
    runs: list[RunFigures] = field(default_factory=list)

    def pooled(self, attr: str) -> np.ndarray:
        """One per-shot quantity over every run."""
        return np.concatenate([np.asarray(getattr(r, attr), dtype=float) for r in self.runs])

    def pooled_net_interval(self) -> np.ndarray:
        """Shot interval less the next shot's proposal computation, over every run."""
        return np.concatenate([r.interval - r.proposal_seconds[1:] for r in self.runs])


def read_run(catalog: Any, uid: str, side: str, timeout: float = 120.0) -> RunFigures:
    """The per-shot times of run ``uid`` once its stop document is in the catalog.

    Parameters
    ----------
    catalog : tiled client
        The served catalog (the reader key is enough).
    uid : str
        The campaign run.
    side : str
        For the figures' label.
    timeout : float
        Seconds to wait for the stop document.

    Returns
    -------
    RunFigures
        Shots that have a proposal event, in shot order.

    Raises
    ------
    TimeoutError
        The stop document did not arrive.
    """
    from uedsteer.plans import documents as doc
    from uedsteer.plans.catalog import event_columns

    end = time.monotonic() + timeout
    while "stop" not in (catalog[uid].metadata or {}):
        if time.monotonic() > end:
            raise TimeoutError(f"run {uid}: no stop document in the catalog after {timeout:g} s")
        time.sleep(0.2)
    run = catalog[uid]
    shot_key = doc.readout_key(doc.SHOT_READOUT, "shot")
    settings = ["pump_fluence", "pump_wavelength", "gun_charge", "delay_delay"]
    shots = event_columns(
        run, ["time", shot_key, "ts_pump_shutter", "ts_det_image", *settings], doc.SHOTS
    )
    props = event_columns(
        run,
        ["time", doc.readout_key(doc.PROPOSAL_READOUT, "shot"), "proposal_seconds"],
        doc.PROPOSALS,
    )
    proposal_of = {
        int(s): (float(t), float(sec))
        for t, s, sec in zip(
            props["time"],
            props[doc.readout_key(doc.PROPOSAL_READOUT, "shot")],
            props["proposal_seconds"],
            strict=True,
        )
    }
    keep = [i for i, s in enumerate(shots[shot_key]) if int(s) in proposal_of]
    order = sorted(keep, key=lambda i: int(shots[shot_key][i]))
    matched = [proposal_of[int(shots[shot_key][i])] for i in order]
    stop = run.metadata["stop"]
    return RunFigures(
        side=side,
        uid=uid,
        shot_time=np.asarray(shots["time"], dtype=float)[order],
        proposal_time=np.array([m[0] for m in matched]),
        proposal_seconds=np.array([m[1] for m in matched]),
        moved_time=np.asarray(shots["ts_pump_shutter"], dtype=float)[order],
        frame_time=np.asarray(shots["ts_det_image"], dtype=float)[order],
        settings=np.column_stack([np.asarray(shots[k], dtype=float)[order] for k in settings]),
        reason=str(stop.get("reason") or stop.get("exit_status") or ""),
        threads=_threads(run.metadata["start"].get(doc.THREADS_KEY) or {}),
    )


def _threads(recorded: dict[str, Any]) -> str:
    """The thread budget a run recorded, in a few words."""
    limits = recorded.get("limits") or {}
    return (
        f"{recorded.get('cores', '?')} cores, torch {limits.get('torch_intra_op', '?')}"
        f" per operation"
    )


class InProcess:
    """The in-process side: a RunEngine, a simulated beamline as the IOC's, the served catalog.

    Parameters
    ----------
    state : FacilityState
        The running stack (catalog address, writer key, folder).
    sample : int or None
        ``ResponseParams.random(sample)``, or None for the default sample (as ``uedsteer ioc``).
    seed : int
        The simulated beamline's seed (as ``uedsteer ioc --seed``).
    """

    def __init__(self, state: Any, sample: int | None, seed: int) -> None:
        from bluesky import RunEngine

        from uedsteer.plans.catalog import open_catalog, scan_id_source, subscribe
        from uedsteer.sim_devices.beamline import SimulatedBeamline
        from uedsteer.sim_devices.response import ResponseParams
        from uedsteer.surrogates.scorer import FrameScorer
        from uedsteer.surrogates.threads import apply_thread_budget

        apply_thread_budget()  # as the profile does before its RunEngine and scorer compute
        os.environ["UEDSTEER_JOURNAL"] = str(state.folder / "journal-in-process")
        self.catalog = open_catalog(state.catalog_url, api_key=state.writer_key)
        response = ResponseParams() if sample is None else ResponseParams.random(sample)
        self.beamline = SimulatedBeamline(response, seed=seed, n_spots=100)
        self.scorer = FrameScorer.pretrained()
        self.RE = RunEngine({}, scan_id_source=scan_id_source(self.catalog))
        subscribe(self.RE, self.catalog)

    def run(self, config: dict[str, Any]) -> str:
        """Run the campaign to its end; its uid once the catalog has every document."""
        from uedsteer.controller.campaign import Campaign
        from uedsteer.controller.config import CampaignConfig
        from uedsteer.plans.campaign import campaign

        controller = Campaign(CampaignConfig.model_validate(config))
        (uid,) = self.RE(campaign(self.beamline, self.scorer, controller))
        self.RE.uedsteer_delivery[0].flush(300)
        return uid


def run_on_stack(state: Any, config: dict[str, Any], timeout: float) -> str:
    """Queue the campaign on the stack's RE Manager and wait; the run's uid.

    Raises
    ------
    RuntimeError
        The item did not complete (the RE Manager's message).
    """
    from uedsteer.plans.facility import queue_item

    outcome = queue_item(
        state,
        "uedsteer_campaign",
        {"config": config},
        wait=True,
        timeout=timeout,
        say=lambda line: None,
    )
    if outcome.exit_status != "completed" or not outcome.run_uids:
        raise RuntimeError(
            f"queue item {outcome.item_uid}: {outcome.exit_status}: {outcome.msg}; "
            f"see {state.folder}/manager"
        )
    return outcome.run_uids[-1]


def cpu_seconds(state: Any) -> dict[str, float]:
    """CPU seconds (user + system) used so far by this process (alone) and by each process of
    the stack with the processes it started (the RE Manager's worker, the monitor's modeller)."""
    import psutil

    def tree(proc: Any, children: bool = True) -> float:
        total = 0.0
        for p in [proc, *(proc.children(recursive=True) if children else [])]:
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
        return total

    out = {"this process": tree(psutil.Process(), children=False)}  # the stack are its children
    for record in state.processes:
        try:
            out[record.name] = tree(psutil.Process(record.pid))
        except psutil.Error:
            pass  # stopped (the monitor with --no-monitor)
    return out


def loopback_check(state: Any) -> str:
    """One line: every socket of the stack's processes on 127.0.0.1, and the EPICS variables in
    the IOC's and the RE Manager's environments."""
    import psutil

    from uedsteer.sim_devices.epics_env import LOOPBACK, LOOPBACK_ENVIRONMENT

    off, unset = [], []
    for record in state.processes:
        proc = psutil.Process(record.pid)
        for p in [proc, *proc.children(recursive=True)]:
            for c in p.net_connections(kind="inet"):
                if c.laddr.ip != LOOPBACK or (c.raddr and c.raddr.ip != LOOPBACK):
                    off.append(f"{record.name}: {c.laddr}")
        if record.name in ("ioc", "manager"):
            env = proc.environ()
            unset += [
                f"{record.name}: {k}" for k, v in LOOPBACK_ENVIRONMENT.items() if env.get(k) != v
            ]
    sockets = "every socket on 127.0.0.1" if not off else "OFF LOOPBACK: " + ", ".join(off)
    epics = (
        "EPICS loopback variables set in ioc and manager"
        if not unset
        else ("EPICS variables missing: " + ", ".join(unset))
    )
    return f"{sockets}; {epics}"


# ---- the table -------------------------------------------------------------------------------


def _ms(values: np.ndarray, q: float = 50.0) -> float:
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    return float(np.percentile(values, q)) * 1e3 if values.size else math.nan


def rows(sides: dict[str, Side]) -> list[tuple[str, float, float, str]]:
    """(label, in-process, stack, unit) of the printed table."""
    a, b = sides["in-process"], sides["stack"]

    def both(fn) -> tuple[float, float]:
        return fn(a), fn(b)

    out = [
        ("shots (all repeats)", *both(lambda s: float(sum(r.shots for r in s.runs))), ""),
        (
            "shots per minute (median of repeats)",
            *both(lambda s: statistics.median(r.shots_per_minute for r in s.runs)),
            "/min",
        ),
        ("proposal -> frame, median", *both(lambda s: _ms(s.pooled("latency"))), "ms"),
        ("proposal -> frame, p90", *both(lambda s: _ms(s.pooled("latency"), 90)), "ms"),
        ("  ramp (-> shutter open), median", *both(lambda s: _ms(_phase(s, "ramp"))), "ms"),
        ("  acquire (-> frame stamp), median", *both(lambda s: _ms(_phase(s, "acquire"))), "ms"),
        ("  record (-> shot event), median", *both(lambda s: _ms(_phase(s, "record"))), "ms"),
        ("proposal computation, median", *both(lambda s: _ms(s.pooled("proposal_seconds"))), "ms"),
        ("shot interval, median", *both(lambda s: _ms(s.pooled("interval"))), "ms"),
        (
            "interval - proposal computation, median",
            *both(lambda s: _ms(s.pooled_net_interval())),
            "ms",
        ),
    ]
    return out


def _phase(side: Side, phase: str) -> np.ndarray:
    parts = []
    for r in side.runs:
        if phase == "ramp":
            parts.append(r.moved_time - r.proposal_time)
        elif phase == "acquire":
            parts.append(r.frame_time - r.moved_time)
        else:
            parts.append(r.shot_time - r.frame_time)
    return np.concatenate(parts)


def print_table(sides: dict[str, Side]) -> float:
    """Print the side-by-side table; returns the difference of the latency medians (ms)."""
    width = 42
    print(f"{'':{width}s} {'in-process':>11s} {'stack':>11s} {'stack - in':>11s}")
    for label, a, b, unit in rows(sides):
        fmt = "{:11.0f}" if label.startswith("shots (") else "{:11.1f}"
        diff = b - a
        print(
            f"{label:{width}s} {fmt.format(a)} {fmt.format(b)} {fmt.format(diff)} {unit}".rstrip()
        )
    return _ms(sides["stack"].pooled("latency")) - _ms(sides["in-process"].pooled("latency"))


def print_cpu(sides: dict[str, Side]) -> None:
    """CPU milliseconds per shot by process, each side (its whole run: reference frames and
    start included), so that work moved from one process to another shows."""
    names = list(sides["stack"].runs[0].cpu) if sides["stack"].runs else []
    print(f"{'CPU per shot (ms), whole run':42s} {'in-process':>11s} {'stack':>11s}")
    for name in names:
        per = [
            sum(r.cpu.get(name, math.nan) for r in sides[s].runs)
            / max(1, sum(r.shots for r in sides[s].runs))
            for s in SIDES
        ]
        print(f"{name:42s} {per[0] * 1e3:11.0f} {per[1] * 1e3:11.0f}")


# ---- Channel Access beside the soft devices ---------------------------------------------------


def breakdown(
    state: Any, sample: int | None, seed: int, n: int = 20
) -> list[tuple[str, float, float]]:
    """Median milliseconds of single device operations: soft devices vs the IOC's PVs.

    Runs after the campaigns (the IOC's sample state no longer matters), with the shutter
    closed (probe-only frames), from this process.

    Returns
    -------
    list of (operation, soft ms, EPICS ms)
    """
    from uedsteer.sim_devices.beamline import SimulatedBeamline
    from uedsteer.sim_devices.epics_beamline import EpicsBeamline
    from uedsteer.sim_devices.response import ResponseParams

    response = ResponseParams() if sample is None else ResponseParams.random(sample)
    soft = SimulatedBeamline(response, seed=seed, n_spots=100)
    epics = EpicsBeamline(state.epics_prefix)

    def timed(fn) -> float:
        fn()  # warm
        out = []
        for _ in range(n):
            t = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t)
        return statistics.median(out) * 1e3

    def ops(bl) -> dict[str, float]:
        bl.shutter.set("closed").wait(10)
        settings = bl.settings
        flip = [0]

        def ramp_step() -> None:
            flip[0] ^= 1
            values = {
                "fluence": 1.0 + 0.1 * flip[0],
                "wavelength": 800.0,
                "charge": 20.0,
                "delay": 10.0,
            }
            statuses = [settings[k].set(v) for k, v in values.items()]
            for s in statuses:
                s.wait(10)

        def read_motors() -> None:
            for d in bl.motors:
                d.read()

        return {
            "ramp step (4 settings put, completion)": timed(ramp_step),
            "shutter put": timed(lambda: bl.shutter.set("closed").wait(10)),
            "trigger (frame made)": timed(lambda: bl.detector.trigger().wait(30)),
            "image get (261 x 261 float32)": timed(lambda: bl.detector.image.get()),
            "read the detector": timed(lambda: bl.detector.read()),
            "read the 4 motors": timed(read_motors),
        }

    a, b = ops(soft), ops(epics)
    for d in epics.devices:
        d.destroy()
    return [(k, a[k], b[k]) for k in a]


# ---- main ------------------------------------------------------------------------------------


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=20, help="shots per campaign (default 20)")
    parser.add_argument("--repeats", type=int, default=2, help="campaigns per side (default 2)")
    parser.add_argument(
        "--n-candidates", type=int, default=512, help="candidates per proposal (default 512)"
    )
    parser.add_argument("--sample", type=int, default=None, help="ResponseParams.random(SAMPLE)")
    parser.add_argument("--seed", type=int, default=0, help="the simulated beamline's seed")
    parser.add_argument(
        "--load", type=int, default=0, metavar="N", help="busy-loop processes during the runs"
    )
    parser.add_argument(
        "--no-breakdown", action="store_true", help="skip timing single Channel Access operations"
    )
    parser.add_argument(
        "--no-monitor",
        action="store_true",
        help="stop the stack's browser monitor once it is up (it polls the catalog and redraws "
        "the GP maps after every shot of either side, in a niced process)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the facility's folder")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")  # GPyTorch's jitter notes, as in bench_campaign.py

    from uedsteer.sim_devices.epics_env import loopback_environment

    loopback_environment()  # before ophyd, caproto or any process of the stack starts
    # SIGTERM ends the run the way Ctrl-C does: through the finally that stops the stack
    signal.signal(signal.SIGTERM, _interrupt)
    from uedsteer.plans.facility import (
        FacilityConfig,
        start_facility,
        stop_facility,
        stop_process,
    )

    print(machine_line())
    config = campaign_config(args.budget, args.n_candidates)
    root = Path(tempfile.mkdtemp(prefix="uedsteer-bench-facility-"))
    state = None
    sides = {name: Side(name) for name in SIDES}
    try:
        t0 = time.monotonic()
        state = start_facility(
            FacilityConfig(folder=root / "facility", sample=args.sample, seed=args.seed),
            say=lambda line: None,
        )
        os.environ["EPICS_CA_SERVER_PORT"] = str(state.ca_port)  # before this process's client
        print(
            f"facility up in {time.monotonic() - t0:.0f} s ({state.database}); "
            f"{loopback_check(state)}"
        )
        if args.no_monitor:
            stop_process(state.process("monitor"))
        inproc = InProcess(state, args.sample, args.seed)
        from uedsteer.plans.catalog import connect_catalog

        reader = connect_catalog(state.catalog_url, api_key=state.reader_key, read_only=True)
        timeout = 60.0 + 30.0 * args.budget
        with busy_processes(args.load):
            for r in range(args.repeats):
                order = SIDES if r % 2 == 0 else SIDES[::-1]
                for name in order:
                    t = time.monotonic()
                    cpu_before = cpu_seconds(state)
                    if name == "in-process":
                        uid = inproc.run(config)
                    else:
                        uid = run_on_stack(state, config, timeout)
                    cpu_after = cpu_seconds(state)
                    figures = read_run(reader, uid, name)
                    figures.cpu = {k: v - cpu_before.get(k, v) for k, v in cpu_after.items()}
                    sides[name].runs.append(figures)
                    print(
                        f"repeat {r + 1} {name:10s}: run {uid[:8]}, {figures.shots} shots in "
                        f"{time.monotonic() - t:.0f} s ({figures.reason}; {figures.threads})"
                    )
        same = [
            bool(np.allclose(a.settings, b.settings, rtol=1e-6, atol=1e-9))
            if a.settings.shape == b.settings.shape
            else False
            for a, b in zip(sides["in-process"].runs, sides["stack"].runs, strict=True)
        ]
        ops = None if args.no_breakdown else breakdown(state, args.sample, args.seed)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the stop is not to be interrupted
        if state is not None:
            stop_facility(state, say=lambda line: None)
            print("facility down: every process stopped by its id")
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        signal.signal(signal.SIGINT, signal.default_int_handler)

    print()
    print(
        f"campaign: budget {args.budget}, n_candidates {args.n_candidates}, target 5 (never "
        f"reached), on_damage move, patience {args.budget + 1}; sample "
        f"{'default' if args.sample is None else f'random({args.sample})'}, seed {args.seed}; "
        f"{args.repeats} repeat(s); busy processes: {args.load}; monitor "
        f"{'stopped' if args.no_monitor else 'running'}"
    )
    print(
        "in-process: RunEngine + SimulatedBeamline in this process; stack: queueserver item, "
        "EpicsBeamline over Channel Access; both log to the stack's tiled serve (SQLite)"
    )
    print(f"same shot settings on both sides: {', '.join('yes' if s else 'no' for s in same)}")
    diff = print_table(sides)
    verdict = "met" if diff <= GOAL_MS else "NOT met"
    print(
        f"stack adds {diff:.1f} ms per shot (proposal -> frame, medians): goal <= "
        f"{GOAL_MS:.0f} ms {verdict}"
    )
    print()
    print_cpu(sides)
    if ops:
        print()
        print(
            f"{'single operations from this process (median of 20)':52s} {'soft':>8s} {'EPICS':>8s}"
        )
        for name, a, b in ops:
            print(f"{name:52s} {a:8.2f} {b:8.2f} ms")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt as err:  # Ctrl-C or SIGTERM: the stack was stopped on the way out
        print(f"bench_facility: interrupted ({err or 'Ctrl-C'}); nothing left running")
        sys.exit(130)
