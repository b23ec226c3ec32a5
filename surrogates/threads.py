"""The thread budget of a uedsteer process: how many threads its numerical libraries may run.

A beamline computer is never idle (IOCs, a Tiled server, the RE Manager, viewers). Left to
themselves, torch, the BLAS libraries and OpenMP split every operation across one thread per
core, and a waiting thread spins on its core. A campaign's operations are small (Gaussian
processes of a few hundred points, one frame at a time): where other processes keep the cores
busy, every split waits for a thread that waits for a core, and the spinning takes the CPU
share the late thread needs. On the 2-core development machine two busy processes made a
cold proposal ten times slower than on the idle machine, not the 1.5 times the CPU share
explains. :func:`apply_thread_budget` decides, for the whole process:

* ``cores``: how many threads of this process may compute at once: the campaign
  configuration's ``threads``, or else the cores the process may run on
  (``os.sched_getaffinity``, which ``taskset``, a cgroup cpuset or a batch system narrows).
* ``intra_op``: the most threads one operation is split across: torch's intra-op threads
  (``torch.set_num_threads``, which also sets torch's MKL and OpenMP) and every BLAS and
  OpenMP pool loaded in the process (``threadpoolctl``). By default ``cores``, and then the
  process *follows the load*: :func:`fit_to_load`, which the campaign plan calls before each
  proposal, splits operations only across the cores that other processes left free over the
  last second (one thread while they keep the cores busy, all of ``cores`` while the machine
  is idle; a daemon thread reads ``/proc/stat`` five times a second). The first of
  :data:`ENVIRONMENT_VARIABLES` that is set fixes ``intra_op`` instead, whatever the
  configuration says (a machine's or a launcher's setting, and what those variables mean to
  the libraries anyway).
* ``interop``: torch's inter-op threads (settable once per process, before any inter-op work).
* ``scorer_workers``: the frame scorer's worker threads, CNN on one and VAE on the other
  (:class:`~uedsteer.surrogates.scorer.FrameScorer`), each of one torch thread; the two
  branches run at once only while the other processes leave two cores free
  (:func:`free_workers`), one after the other on one worker otherwise.
* ``dask_workers``: Dask's default number of local workers (its threaded scheduler's pool, and
  the ``LocalCluster`` of ``uedsteer generate``), each of one thread.

The variables of :data:`ENVIRONMENT_VARIABLES` that the user left unset are set too: to the
fixed ``intra_op``, or to 1 where the process follows the load (libraries loaded later and
child processes are beyond :func:`fit_to_load`'s reach).

Every entry point of a campaign process goes through it: the ``uedsteer`` commands that run
models (``campaign``, ``ipython``; ``generate`` takes its Dask workers from it),
:func:`uedsteer.plans.session.make_session` (the IPython session, and a namespace a
queueserver startup profile can use), :func:`uedsteer.plans.simulate.simulate_campaign`, and
the campaign plan. A profile or script of one's own calls :func:`apply_thread_budget` first.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ENVIRONMENT_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
"""The usual variables that fix the threads one operation runs on; the first one set (in this
order) gives ``intra_op``, whatever the configuration says."""

FREE_MARGIN = 0.25
"""A core counts as free while other processes took less than this share of it: a split
operation on a core that another process uses even a third of the time already waits."""

LOAD_WINDOW_SECONDS = 1.0
"""How far back :func:`fit_to_load` looks at the other processes' CPU time: a background
thread reads ``/proc/stat`` every fifth of this."""


@dataclass(frozen=True)
class ThreadBudget:
    """What :func:`apply_thread_budget` sets (see the module docstring for each field).

    Attributes
    ----------
    cores : int
        Threads of this process that may compute at once.
    source : str
        Where ``cores`` came from: ``"configuration"`` or ``"affinity"``.
    intra_op : int
        The most threads one torch operation, and one BLAS or OpenMP call, is split across.
    intra_op_source : str
        Where ``intra_op`` came from: an environment variable's name (fixed), or ``"cores"``
        (the process follows the load, :func:`fit_to_load`).
    interop : int
        torch's inter-op threads.
    scorer_workers : int
        Worker threads of the frame scorer (1: both branches on one thread).
    dask_workers : int
        Default number of Dask's local workers, one thread each.
    """

    cores: int
    source: str
    intra_op: int
    intra_op_source: str
    interop: int
    scorer_workers: int
    dask_workers: int

    @property
    def follows_load(self) -> bool:
        """Whether the threads per operation follow the other processes' load (no
        environment variable fixes them)."""
        return self.intra_op_source == "cores"

    def describe(self) -> str:
        """One line for a command's banner, e.g. ``threads: 2 cores (affinity); ...``."""
        per_op = (
            f"up to {self.intra_op} per operation on the cores other processes leave free"
            if self.follows_load
            else f"{self.intra_op} per operation ({self.intra_op_source})"
        )
        return (
            f"threads: {self.cores} cores ({self.source}); {per_op} (torch, BLAS, OpenMP); "
            f"scorer {self.scorer_workers} worker{'s' if self.scorer_workers > 1 else ''}, "
            f"Dask {self.dask_workers}"
        )


def affinity_cores() -> int:
    """The number of cores this process may run on (``os.sched_getaffinity``; where the platform
    lacks it, ``os.cpu_count()``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def per_operation_threads(most: int, cores: int, others_busy: float) -> int:
    """Threads to split an operation across: at most ``most``, and only across free cores.

    Parameters
    ----------
    most : int
        The budget's ``intra_op``.
    cores : int
        Cores this process may run on.
    others_busy : float
        Cores' worth of CPU time other processes took on them lately (0.5: half a core).

    Returns
    -------
    int
        ``most``, capped at the cores left free, counting a core as free while others took
        less than :data:`FREE_MARGIN` of it; at least 1.
    """
    free = int(cores - max(0.0, others_busy) + FREE_MARGIN)
    return max(1, min(most, free))


def _environment_threads(environ: Mapping[str, str]) -> tuple[int, str] | None:
    """The first of :data:`ENVIRONMENT_VARIABLES` that is set, as (threads, name).

    Raises
    ------
    ValueError
        If its value is not a positive integer (OpenMP's nested list ``4,2``: its first level).
    """
    for name in ENVIRONMENT_VARIABLES:
        text = environ.get(name, "").strip()
        if not text:
            continue
        try:
            value = int(text.split(",")[0])
        except ValueError:
            value = 0
        if value < 1:
            raise ValueError(
                f"environment variable {name}={text!r} is not a positive integer; set it to "
                "a number of threads such as 2, or unset it to use the configuration or the "
                "process's cores"
            )
        return value, name
    return None


def choose_thread_budget(
    configured: int | None = None,
    environ: Mapping[str, str] | None = None,
    cores: int | None = None,
) -> ThreadBudget:
    """The budget for a process, without applying it.

    Parameters
    ----------
    configured : int, optional
        The configuration's ``threads`` (``CampaignConfig.threads``), the budget's ``cores``;
        None: the cores the process may run on.
    environ : mapping, optional
        Environment variables (default: the process's, less the values
        :func:`apply_thread_budget` wrote into it).
    cores : int, optional
        Cores the process may run on (default: :func:`affinity_cores`).

    Returns
    -------
    ThreadBudget

    Raises
    ------
    ValueError
        If ``configured`` is not a positive integer, or an environment variable of
        :data:`ENVIRONMENT_VARIABLES` is set to something else.
    """
    if configured is not None and (
        isinstance(configured, bool) or not isinstance(configured, int) or configured < 1
    ):
        raise ValueError(f"threads={configured!r}: use a positive integer, or None for the cores")
    if configured is not None:
        n, source = configured, "configuration"
    else:
        n, source = (affinity_cores() if cores is None else int(cores)), "affinity"
    from_env = _environment_threads(_user_environment() if environ is None else environ)
    intra_op, intra_op_source = from_env if from_env is not None else (n, "cores")
    return ThreadBudget(
        cores=n,
        source=source,
        intra_op=intra_op,
        intra_op_source=intra_op_source,
        interop=n,
        scorer_workers=min(2, n),
        dask_workers=n,
    )


# What apply_thread_budget wrote into os.environ: on a later call it must not read as the
# user's setting.
_written: dict[str, str] = {}


def _user_environment() -> dict[str, str]:
    """The thread variables set in the environment, less those this module set itself."""
    return {
        k: v
        for k in ENVIRONMENT_VARIABLES
        if (v := os.environ.get(k)) is not None and _written.get(k) != v
    }


class _LoadMonitor:
    """The CPU time other processes took on this process's cores over the last
    :data:`LOAD_WINDOW_SECONDS`, read by a daemon thread (started at the first question)."""

    SAMPLES = 6  # five intervals a window

    def __init__(self) -> None:
        self._samples: deque[tuple[float, float, float]] = deque(maxlen=self.SAMPLES)
        self._pid = 0
        self._mutex = threading.Lock()
        self._tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def _read(self) -> tuple[float, float, float] | None:
        """(wall seconds, busy CPU seconds on this process's cores, this process's CPU
        seconds), or None where ``/proc/stat`` cannot be read."""
        try:
            with open("/proc/stat") as f:
                lines = f.read().splitlines()
            ours = os.sched_getaffinity(0)
        except (OSError, AttributeError):
            return None
        busy = 0
        for line in lines:
            name, _, rest = line.partition(" ")
            if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in ours:
                v = [int(x) for x in rest.split()]
                # user nice system idle iowait irq softirq steal: all but idle and iowait
                # (steal: the hypervisor gave the core to another machine)
                busy += sum(v[:8]) - v[3] - v[4]
        return time.monotonic(), busy / self._tick, time.process_time()

    def _run(self) -> None:
        interval = LOAD_WINDOW_SECONDS / (self.SAMPLES - 1)
        while (sample := self._read()) is not None:
            with self._mutex:
                self._samples.append(sample)
            time.sleep(interval)

    def _start(self) -> None:
        """The sampling thread (again in a forked child, which has none of its parent's)."""
        if self._pid == os.getpid():
            return
        self._pid = os.getpid()
        self._samples.clear()
        first = self._read()
        if first is None:
            return
        self._samples.append(first)
        threading.Thread(target=self._run, name="uedsteer-load", daemon=True).start()

    def recent(self) -> float | None:
        """Cores' worth of CPU time other processes took over the background thread's last
        window, without reading ``/proc/stat`` or waiting (None until two samples exist)."""
        self._start()
        with self._mutex:
            if len(self._samples) < 2:
                return None
            (t0, busy0, own0), (t1, busy1, own1) = self._samples[0], self._samples[-1]
        # this process's CPU time between the samples is its own, not the others' load
        return max(0.0, ((busy1 - busy0) - (own1 - own0)) / (t1 - t0))

    def others_busy(self) -> float | None:
        """Cores' worth of CPU time other processes took over the last window (or, just
        started, over a first fifth of it), or None where it cannot be read."""
        self._start()
        now = self._read()
        if now is None:
            return None
        with self._mutex:
            first = self._samples[0] if self._samples else None
        if first is None:
            return None
        if now[0] - first[0] < LOAD_WINDOW_SECONDS / (self.SAMPLES - 1):
            time.sleep(LOAD_WINDOW_SECONDS / (self.SAMPLES - 1))  # the first call only
            now = self._read()
            if now is None:
                return None
        (t0, busy0, own0), (t1, busy1, own1) = first, now
        return max(0.0, ((busy1 - busy0) - (own1 - own0)) / (t1 - t0))


_applied: ThreadBudget | None = None
_controller: Any = None  # threadpoolctl's ThreadpoolController, made at the first call
_monitor = _LoadMonitor()
_lock = threading.RLock()


def applied_thread_budget() -> ThreadBudget | None:
    """The budget :func:`apply_thread_budget` last applied in this process, or None."""
    return _applied


def apply_thread_budget(configured: int | None = None) -> ThreadBudget:
    """Choose the process's thread budget (:func:`choose_thread_budget`) and apply it.

    Idempotent: asking again for the budget already applied sets nothing again, so every
    entry point may call it (only :func:`fit_to_load`'s per-operation threads follow the load
    of the last second). A different budget (another configuration's ``threads``) is applied
    once, at that call. torch and OpenMP keep a thread's own setting once it has computed:
    threads started later, and threads that run their first parallel work later, take the
    budget; a thread that computed before keeps its earlier figure until it calls this or
    :func:`fit_to_load` itself (the campaign plan does, in the RunEngine's thread). torch's
    inter-op threads can be set only once per process, before any inter-op work: they keep
    their first value.

    Parameters
    ----------
    configured : int, optional
        The configuration's ``threads``; None: the environment or the cores decide.

    Returns
    -------
    ThreadBudget
        What the process now runs with.

    Raises
    ------
    ValueError
        As :func:`choose_thread_budget`.
    """
    global _applied
    budget = choose_thread_budget(configured)
    with _lock:
        if budget != _applied:
            _set_environment(budget)
            _set_interop(budget)
            _set_dask(budget)
            _applied = budget
        fit_to_load()
    return budget


def fit_to_load(others_busy: float | None = None) -> int:
    """Set the calling thread's threads per operation for the load of the moment.

    Where the budget follows the load, operations are split only across the cores that the
    other processes left free over the last second (:func:`per_operation_threads`); where an
    environment variable fixes the threads, they are set to that. Only a change is set: on a
    machine whose load does not change, this sets nothing after the first call
    (``torch.set_num_threads`` also empties oneDNN's cache of compiled convolutions, so the
    threads must not change per call without cause). Call it before a piece of work such as
    a proposal, in the thread that does it; without an applied budget it does nothing.

    Parameters
    ----------
    others_busy : float, optional
        Cores' worth of CPU time the other processes took lately; default: read from
        ``/proc/stat`` over the last :data:`LOAD_WINDOW_SECONDS` by a background thread
        (the budget's ``intra_op`` where it cannot be read).

    Returns
    -------
    int
        The threads per operation now set (0 without an applied budget).
    """
    budget = _applied
    if budget is None:
        return 0
    with _lock:
        n = budget.intra_op
        if budget.follows_load:
            if others_busy is None:
                others_busy = _monitor.others_busy()
            if others_busy is not None:
                n = per_operation_threads(budget.intra_op, affinity_cores(), others_busy)
        _set_torch(n)
        _set_threadpools(n)
    return n


def free_workers(most: int) -> int:
    """How many of ``most`` threads may work at once without waiting for a core: ``most``
    while the other processes leave that many cores free, fewer while they keep cores busy
    (:func:`per_operation_threads`, on the background thread's last window; no wait, no
    file read). ``most`` where the load cannot be read.

    The frame scorer asks this before each small batch: two branches on two threads halve a
    frame's latency on free cores, but where other processes keep the cores busy the second
    thread waits for a core and the two contend, which costs more than running the branches
    one after the other.
    """
    if most <= 1:
        return max(1, most)
    others_busy = _monitor.recent()
    if others_busy is None:
        return most
    return per_operation_threads(most, affinity_cores(), others_busy)


def _set_environment(budget: ThreadBudget) -> None:
    """The variables the user left unset: for libraries loaded later and child processes."""
    user = _user_environment()
    value = str(budget.intra_op if not budget.follows_load else 1)
    for name in ENVIRONMENT_VARIABLES:
        if name not in user:
            os.environ[name] = _written[name] = value


def _set_interop(budget: ThreadBudget) -> None:
    import torch

    if torch.get_num_interop_threads() != budget.interop:
        try:
            torch.set_num_interop_threads(budget.interop)
        except RuntimeError:
            pass  # set before, or inter-op work has started: torch allows it once only


def _set_torch(n: int) -> None:
    import torch

    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


def _set_threadpools(n: int) -> None:
    global _controller
    if _controller is None:
        # load the libraries first: threadpoolctl finds only the pools already in the process
        import numpy  # noqa: F401
        import scipy.linalg  # noqa: F401
        import torch  # noqa: F401
        from threadpoolctl import ThreadpoolController

        _controller = ThreadpoolController()
    if any(p.num_threads != n for p in _controller.lib_controllers):
        _controller.limit(limits=n)  # applied now and kept (not used as a context)


def _set_dask(budget: ThreadBudget) -> None:
    import dask

    dask.config.set(num_workers=budget.dask_workers)


def current_limits() -> dict[str, Any]:
    """The thread limits the calling thread has now, read back from the libraries.

    Returns
    -------
    dict
        ``torch_intra_op``, ``torch_interop`` (ints), ``threadpools`` (a list of
        ``(user_api, internal_api, num_threads)``, one per pool threadpoolctl finds) and
        ``dask_num_workers`` (None when Dask's ``num_workers`` is unset).
    """
    import dask
    import torch
    from threadpoolctl import threadpool_info

    return {
        "torch_intra_op": torch.get_num_threads(),
        "torch_interop": torch.get_num_interop_threads(),
        "threadpools": [
            (p["user_api"], p["internal_api"], p["num_threads"]) for p in threadpool_info()
        ],
        "dask_num_workers": dask.config.get("num_workers", None),
    }
