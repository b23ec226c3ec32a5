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

import pytest
from pydantic import ValidationError

from uedsteer.controller.config import CampaignConfig, format_validation_error
from uedsteer.controller.resume_changes import apply_changes
from uedsteer.surrogates.threads import (
    ENVIRONMENT_VARIABLES,
    choose_thread_budget,
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


@pytest.mark.parametrize(
    "cores,intra_op,scorer_workers", [(1, 1, 1), (2, 1, 2), (4, 2, 2), (16, 8, 2)]
)
def test_each_pool_gets_its_share_of_the_cores(cores, intra_op, scorer_workers):
    budget = choose_thread_budget(environ={}, cores=cores)
    assert budget.intra_op == intra_op
    assert budget.scorer_workers == scorer_workers
    assert budget.dask_workers == budget.interop == cores


def test_the_configuration_overrides_the_cores():
    budget = choose_thread_budget(4, environ={}, cores=2)
    assert (budget.cores, budget.source, budget.intra_op) == (4, "configuration", 2)


def test_the_environment_wins_for_the_threads_per_operation():
    environ = {"OPENBLAS_NUM_THREADS": "3", "OMP_NUM_THREADS": "2"}
    budget = choose_thread_budget(4, environ=environ, cores=2)
    assert (budget.intra_op, budget.intra_op_source) == (2, "OMP_NUM_THREADS")  # first set
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
    for configured in {requests}:
        calls.clear()
        budget = threads.apply_thread_budget(configured)
        steps.append({{
            "budget": dataclasses.asdict(budget),
            "limits": threads.current_limits(),
            "calls": len(calls),
            "environ": {{k: os.environ.get(k) for k in threads.ENVIRONMENT_VARIABLES}},
        }})
    print(json.dumps(steps))
"""


def applied(requests: list, before: str = "", env: dict[str, str] | None = None) -> list[dict]:
    """Each step's budget, the limits read back, how many setting calls it made and the
    environment after ``apply_thread_budget(r)`` for ``r`` in ``requests``, in one process."""
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
        [None, None, 4], before="os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})"
    )
    assert one["budget"]["cores"] == 1 and one["budget"]["scorer_workers"] == 1
    assert_limits(one, 1)
    assert one["environ"] == dict.fromkeys(ENVIRONMENT_VARIABLES, "1")  # for later libraries
    assert again["calls"] == 0 and again["limits"] == one["limits"]  # nothing set twice
    assert one["limits"]["torch_interop"] == 1
    # a configured budget of 4 cores: 2 threads an operation; torch's inter-op threads can be
    # set once per process only, and keep their first value
    assert four["budget"]["source"] == "configuration" and four["calls"] > 0
    assert_limits(four, 2)
    assert four["limits"]["torch_interop"] == 1


def test_apply_leaves_the_users_variables_and_follows_them():
    env = clean_environment(OMP_NUM_THREADS="2")
    (step,) = applied([1], env=env)
    assert step["budget"]["intra_op_source"] == "OMP_NUM_THREADS"
    assert_limits(step, 2)  # the configuration's 1 core does not override the variable
    assert step["environ"] == {
        "OMP_NUM_THREADS": "2",
        "MKL_NUM_THREADS": "2",
        "OPENBLAS_NUM_THREADS": "2",
    }
