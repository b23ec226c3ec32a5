"""The process's thread budget (issue 34): chosen from the cores the process may use, the
configuration and the environment; applied to torch, the BLAS/OpenMP pools and Dask; once.

What a budget does to latency is for the benchmarks; these tests check what it sets. The
``apply`` tests run in fresh processes: a budget changes the whole process, and torch lets the
inter-op threads be set once only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from pydantic import ValidationError

from uedsteer.controller.config import CampaignConfig, format_validation_error
from uedsteer.controller.resume_changes import apply_changes
from uedsteer.surrogates import threads
from uedsteer.surrogates.threads import (
    ENVIRONMENT_VARIABLES,
    choose_thread_budget,
    per_operation_threads,
)

CORES = len(os.sched_getaffinity(0))


def clean_environment(**extra: str) -> dict[str, str]:
    """This process's environment without the thread variables (this process may have set
    them itself by applying a budget), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in ENVIRONMENT_VARIABLES}
    return {**env, **extra}


def run_python(code: str, env: dict[str, str] | None = None) -> dict:
    """Run ``code`` in a fresh interpreter; it prints one JSON line last."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_environment() if env is None else env,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- choosing
def test_by_default_the_budget_is_the_cores_the_process_may_use():
    budget = choose_thread_budget(environ={})
    assert (budget.cores, budget.source) == (CORES, "affinity")
    assert budget.intra_op_source == "cores"


@pytest.mark.parametrize("cores,scorer_workers", [(1, 1), (2, 2), (16, 2)])
def test_each_pool_gets_its_share_of_the_cores(cores, scorer_workers):
    budget = choose_thread_budget(environ={}, cores=cores)
    assert budget.follows_load and budget.intra_op == cores
    assert budget.scorer_workers == scorer_workers
    assert budget.dask_workers == budget.interop == cores


@pytest.mark.parametrize(
    "most,cores,others,expected",
    [
        (2, 2, 0.0, 2),  # an idle machine: the libraries' own default
        (2, 2, 0.2, 2),  # a little background work leaves both cores free
        (2, 2, 0.4, 1),  # a core another process uses even part of the time is not free
        (2, 2, 2.0, 1),  # two busy processes: one thread, never none
        (2, 2, 5.0, 1),
        (16, 16, 3.2, 13),
        (4, 16, 0.0, 4),  # never above the budget
        (4, 2, 0.0, 2),  # nor above the cores
    ],
)
def test_operations_are_split_across_the_free_cores_only(most, cores, others, expected):
    assert per_operation_threads(most, cores, others) == expected


def test_the_configuration_overrides_the_cores():
    budget = choose_thread_budget(4, environ={}, cores=2)
    assert (budget.cores, budget.source, budget.intra_op) == (4, "configuration", 4)
    assert budget.dask_workers == 4 and budget.scorer_workers == 2


def test_the_environment_wins_for_the_threads_per_operation():
    environ = {"OPENBLAS_NUM_THREADS": "3", "OMP_NUM_THREADS": "2"}
    budget = choose_thread_budget(4, environ=environ, cores=2)
    assert (budget.intra_op, budget.intra_op_source) == (2, "OMP_NUM_THREADS")  # first set
    assert not budget.follows_load
    assert (budget.cores, budget.scorer_workers) == (4, 2)  # the configuration still counts
    nested = choose_thread_budget(environ={"OMP_NUM_THREADS": "3,1"}, cores=2)
    assert nested.intra_op == 3  # OpenMP's nested list: its first level
    empty = choose_thread_budget(environ={"OMP_NUM_THREADS": " "}, cores=2)
    assert empty.intra_op_source == "cores"


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5"])
def test_a_bad_environment_variable_is_refused_naming_it(value):
    with pytest.raises(ValueError) as err:
        choose_thread_budget(environ={"MKL_NUM_THREADS": value}, cores=2)
    message = str(err.value)
    assert f"MKL_NUM_THREADS={value!r}" in message and "positive integer" in message
    assert "\n" not in message


@pytest.mark.parametrize("bad", [0, -2, 2.0, True, "2"])
def test_a_bad_configured_number_is_refused(bad):
    with pytest.raises(ValueError, match=f"threads={bad!r}"):
        choose_thread_budget(bad, environ={})


def test_the_configuration_field_is_validated_and_old_records_still_load():
    assert CampaignConfig().threads is None
    assert CampaignConfig(threads=3).threads == 3
    with pytest.raises(ValidationError) as err:
        CampaignConfig(threads=0)
    assert format_validation_error(err.value).startswith("threads: Input should be greater")
    recorded = CampaignConfig().model_dump(mode="json")
    del recorded["threads"]  # a configuration recorded before the field existed
    assert CampaignConfig.model_validate(recorded) == CampaignConfig()


def test_a_resumed_campaign_may_change_its_threads():
    config, applied = apply_changes(CampaignConfig(threads=1), {"threads": 2})
    assert config.threads == 2
    assert applied == {"threads": {"recorded": 1, "resumed": 2}}


# ---------------------------------------------------------------- applying
APPLY = """
    import json, os, dataclasses
    {before}
    import torch
    from threadpoolctl import ThreadpoolController
    from uedsteer.surrogates import threads

    calls = []
    set_threads = torch.set_num_threads
    torch.set_num_threads = lambda n: (calls.append(("torch", n)), set_threads(n))
    limit = ThreadpoolController.limit
    ThreadpoolController.limit = lambda self, **kw: (calls.append(("pools", kw)), limit(self, **kw))
    steps = []
    for call, argument in {requests}:
        calls.clear()
        if call == "apply":
            threads.apply_thread_budget(argument)
        else:
            threads.fit_to_load(argument)
        steps.append({{
            "budget": dataclasses.asdict(threads.applied_thread_budget()),
            "limits": threads.current_limits(),
            "calls": len(calls),
            "environ": {{k: os.environ.get(k) for k in threads.ENVIRONMENT_VARIABLES}},
        }})
    print(json.dumps(steps))
"""


def applied(requests: list, before: str = "", env: dict[str, str] | None = None) -> list[dict]:
    """Each step's budget, the limits read back, how many setting calls it made and the
    environment after each ``("apply", configured)`` (``apply_thread_budget``) or ``("fit",
    others_busy)`` (``fit_to_load``) of ``requests``, in one fresh process."""
    return run_python(APPLY.format(before=before, requests=requests), env)


def assert_limits(step: dict, per_operation: int) -> None:
    limits = step["limits"]
    assert limits["torch_intra_op"] == per_operation
    assert limits["threadpools"], "numpy's, scipy's and torch's pools are all found"
    assert {n for _, _, n in limits["threadpools"]} == {per_operation}
    assert limits["dask_num_workers"] == step["budget"]["dask_workers"]


def test_apply_sets_every_pool_from_the_affinity_and_is_idempotent():
    # one core: the process is narrowed the way taskset or a cpuset narrows it
    one, again, four = applied(
        [("apply", None), ("apply", None), ("apply", 4)],
        before="os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})",
    )
    assert one["budget"]["cores"] == 1 and one["budget"]["scorer_workers"] == 1
    assert_limits(one, 1)
    assert one["limits"]["torch_interop"] == 1
    # the load-following threads are beyond libraries loaded later and child processes
    assert one["environ"] == dict.fromkeys(ENVIRONMENT_VARIABLES, "1")
    assert again["calls"] == 0 and again["limits"] == one["limits"]  # nothing set twice
    # a configured budget of 4 cores: 4 Dask workers, 2 scorer workers, but one thread an
    # operation on the one core there is; torch's inter-op threads keep their first value
    assert four["budget"]["cores"] == 4 and four["budget"]["scorer_workers"] == 2
    assert_limits(four, 1)
    assert four["limits"]["torch_interop"] == 1


@pytest.mark.skipif(CORES == 1, reason="one core: nothing to split an operation across")
def test_operations_follow_the_other_processes_load():
    _, busy, still_busy, idle = applied([("apply", None), ("fit", 1.5), ("fit", 1.5), ("fit", 0.0)])
    assert_limits(busy, per_operation_threads(CORES, CORES, 1.5))  # fewer than the cores
    assert still_busy["calls"] == 0, "an unchanged load sets nothing"
    assert idle["calls"] > 0
    assert_limits(idle, CORES)  # an idle machine: every core of the budget


def test_apply_leaves_the_users_variables_and_follows_them():
    env = clean_environment(OMP_NUM_THREADS="2")
    step, busy = applied([("apply", 1), ("fit", 5.0)], env=env)
    assert step["budget"]["intra_op_source"] == "OMP_NUM_THREADS"
    assert_limits(step, 2)  # the configuration's 1 core does not override the variable
    assert step["environ"] == {
        "OMP_NUM_THREADS": "2",
        "MKL_NUM_THREADS": "2",
        "OPENBLAS_NUM_THREADS": "2",
    }
    assert busy["calls"] == 0 and busy["limits"] == step["limits"]  # fixed: no following


def test_the_load_monitor_sees_a_busy_process():
    monitor = threads._LoadMonitor()
    if monitor.others_busy() is None:
        pytest.skip("no /proc/stat on this platform: the threads per operation stay fixed")
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(1.5 * threads.LOAD_WINDOW_SECONDS)
        assert monitor.others_busy() > 0.2  # this process's own threads are not counted
    finally:
        busy.kill()
        busy.wait()


@pytest.mark.parametrize(("others", "expected"), [(0.0, 2), (0.5, 1), (2.0, 1), (None, 2)])
def test_free_workers_follow_the_other_processes_load(monkeypatch, others, expected):
    """Two workers only while the other processes leave two cores free; where the load
    cannot be read, as many as asked."""
    monkeypatch.setattr(threads, "affinity_cores", lambda: 2)
    monkeypatch.setattr(threads._monitor, "recent", lambda: others)
    assert threads.free_workers(2) == expected
    assert threads.free_workers(1) == 1


def test_the_recent_load_needs_no_wait_and_no_file_read(monkeypatch):
    monitor = threads._LoadMonitor()
    if monitor.others_busy() is None:
        pytest.skip("no /proc/stat on this platform")
    read, here = monitor._read, []

    def counted():  # the sampling thread goes on reading; this thread must not
        if threading.current_thread() is threading.main_thread():
            here.append(1)
        return read()

    monkeypatch.setattr(monitor, "_read", counted)
    start = time.monotonic()
    value = monitor.recent()
    assert time.monotonic() - start < 0.05 and not here
    assert value is None or value >= 0.0
