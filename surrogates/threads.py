"""The thread budget of a uedsteer process: how many threads its numerical libraries may run.

A beamline computer is never idle (IOCs, a Tiled server, the RE Manager, viewers). Left to
themselves, torch, the BLAS libraries and OpenMP each start one thread per core and split every
operation across them; on cores that other processes keep busy, each such split waits for its
slowest thread, which waits a whole scheduling slice, and a campaign's many small operations
(Gaussian processes of a few hundred points, one frame at a time) then run many times slower
than the extra CPU time alone explains. :func:`apply_thread_budget` decides once, for the whole
process:

* ``cores``: how many threads of this process may compute at once: the campaign
  configuration's ``threads``, or else the cores the process may run on
  (``os.sched_getaffinity``, which ``taskset``, a cgroup cpuset or a batch system narrows).
* ``intra_op``: threads one operation is split across: torch's intra-op threads
  (``torch.set_num_threads``, which also sets torch's MKL and OpenMP) and every BLAS and
  OpenMP pool loaded in the process (``threadpoolctl``). By default from ``cores``
  (:func:`intra_op_threads`: one on a machine of two cores); the first of
  :data:`ENVIRONMENT_VARIABLES` that is set wins over that and over the configuration (a
  machine's or a launcher's setting, and what those variables mean to the libraries anyway).
  The number also goes into those of the variables that are unset, for libraries loaded
  later and for child processes.
* ``interop``: torch's inter-op threads (settable once per process, before any inter-op work).
* ``scorer_workers``: the frame scorer's worker threads, CNN on one and VAE on the other
  (:class:`~uedsteer.surrogates.scorer.FrameScorer`), each of one torch thread.
* ``dask_workers``: Dask's default number of local workers (its threaded scheduler's pool, and
  the ``LocalCluster`` of ``uedsteer generate``), each of one thread.

Every entry point of a campaign process goes through it: the ``uedsteer`` commands that run
models (``campaign``, ``ipython``, ``generate``), :func:`uedsteer.plans.session.make_session`
(the IPython session, and the function a queueserver startup profile calls), and
:func:`uedsteer.plans.simulate.simulate_campaign`. A profile or script of one's own calls
:func:`apply_thread_budget` first.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ENVIRONMENT_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
"""The usual variables that fix the threads one operation runs on; the first one set (in this
order) gives ``intra_op``, whatever the configuration says."""

SHARED_CORES = 2
"""On a machine with at most this many cores, one operation runs on one thread: other
processes will keep some of them busy, and a split operation then waits on a core it does not
get. Above it, an operation may use half the cores (see :func:`intra_op_threads`)."""


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
        Threads one torch operation, and one BLAS or OpenMP call, is split across.
    intra_op_source : str
        Where ``intra_op`` came from: an environment variable's name, or ``"cores"``
        (:func:`intra_op_threads`).
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

    def describe(self) -> str:
        """One line for a command's banner, e.g. ``threads: 2 cores (affinity): ...``."""
        per_op = "" if self.intra_op_source == "cores" else f", {self.intra_op_source}"
        return (
            f"threads: {self.cores} cores ({self.source}); {self.intra_op} per operation "
            f"(torch, BLAS, OpenMP{per_op}), scorer {self.scorer_workers} worker"
            f"{'s' if self.scorer_workers > 1 else ''}, Dask {self.dask_workers}"
        )


def affinity_cores() -> int:
    """The number of cores this process may run on (``os.sched_getaffinity``; where the platform
    lacks it, ``os.cpu_count()``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def intra_op_threads(cores: int) -> int:
    """Threads one operation is split across, for a budget of ``cores``.

    One on a machine of at most :data:`SHARED_CORES` cores, half the cores above it: the
    campaign's operations are small (a frame, a Gaussian process of a few hundred points), so a
    split gains little on an idle machine and loses much on a busy one, and the rest of the
    budget goes to work that runs side by side (the scorer's two branches, Dask's workers).
    """
    return 1 if cores <= SHARED_CORES else cores // 2


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
    intra_op, intra_op_source = from_env if from_env is not None else (intra_op_threads(n), "cores")
    return ThreadBudget(
        cores=n,
        source=source,
        intra_op=intra_op,
        intra_op_source=intra_op_source,
        interop=n,
        scorer_workers=min(2, n),
        dask_workers=n,
    )


# What apply_thread_budget wrote into os.environ (for libraries loaded later): on a later
# call it must not read as the user's setting.
_written: dict[str, str] = {}


def _user_environment() -> dict[str, str]:
    """The thread variables set in the environment, less those this module set itself."""
    return {
        k: v
        for k in ENVIRONMENT_VARIABLES
        if (v := os.environ.get(k)) is not None and _written.get(k) != v
    }


_applied: ThreadBudget | None = None
_controller: Any = None  # threadpoolctl's ThreadpoolController, made at the first call
_lock = threading.Lock()


def applied_thread_budget() -> ThreadBudget | None:
    """The budget :func:`apply_thread_budget` last applied in this process, or None."""
    return _applied


def apply_thread_budget(configured: int | None = None) -> ThreadBudget:
    """Choose the process's thread budget (:func:`choose_thread_budget`) and apply it.

    Idempotent: asking again for the budget already applied changes nothing, so every entry
    point may call it. A different budget (another configuration's ``threads``) is applied
    once, at that call; never call this per frame or per proposal, since
    ``torch.set_num_threads`` also empties oneDNN's cache of compiled convolutions.

    torch and OpenMP keep a thread's own setting once it has run parallel work: threads
    started later, and threads that run their first parallel work later, take the budget;
    a thread that computed before the call keeps its earlier figure until it calls this itself
    (the campaign plan does, in the RunEngine's thread). torch's inter-op threads can be set
    only once per process, before any inter-op work: they keep their first value.

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
        # per calling thread (each checks first, so that a repeated call changes nothing)
        _set_torch(budget)
        _set_threadpools(budget)
        _applied = budget
    return budget


def _set_environment(budget: ThreadBudget) -> None:
    """The per-operation threads into the environment variables the user left unset: read by
    BLAS and OpenMP libraries loaded later and inherited by child processes."""
    user = _user_environment()
    for name in ENVIRONMENT_VARIABLES:
        if name not in user:
            os.environ[name] = _written[name] = str(budget.intra_op)


def _set_interop(budget: ThreadBudget) -> None:
    import torch

    if torch.get_num_interop_threads() != budget.interop:
        try:
            torch.set_num_interop_threads(budget.interop)
        except RuntimeError:
            pass  # set before, or inter-op work has started: torch allows it once only


def _set_torch(budget: ThreadBudget) -> None:
    import torch

    if torch.get_num_threads() != budget.intra_op:
        torch.set_num_threads(budget.intra_op)


def _set_threadpools(budget: ThreadBudget) -> None:
    global _controller
    if _controller is None:
        # load the libraries first: threadpoolctl finds only the pools already in the process
        import numpy  # noqa: F401
        import scipy.linalg  # noqa: F401
        import torch  # noqa: F401
        from threadpoolctl import ThreadpoolController

        _controller = ThreadpoolController()
    if any(p.num_threads != budget.intra_op for p in _controller.lib_controllers):
        _controller.limit(limits=budget.intra_op)  # applied now and kept (not a context)


def _set_dask(budget: ThreadBudget) -> None:
    import dask

    dask.config.set(num_workers=budget.dask_workers)


def current_limits() -> dict[str, Any]:
    """The thread limits the process has now, read back from the libraries.

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
