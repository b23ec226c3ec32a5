"""The chunk runner both data stores use: results handed back, nothing started when all is done."""

from __future__ import annotations

import operator

import pytest

from uedsteer.sim_devices import chunked_store
from uedsteer.sim_devices.chunked_store import config_differences, run_chunk_tasks


def test_each_result_is_handed_back_once():
    results = []
    jobs = [((1, 2), 3), ((10, 20), 30)]
    run_chunk_tasks(
        operator.add,
        jobs,
        total=40,
        unit="item",
        on_result=results.append,
        n_workers=1,
        progress=False,
    )
    assert sorted(results) == [3, 30]


def test_a_finished_store_starts_no_cluster(monkeypatch):
    def no_cluster(*args, **kwargs):
        raise AssertionError("a cluster was started with nothing to do")

    monkeypatch.setattr(chunked_store, "dask_client", no_cluster)
    run_chunk_tasks(operator.add, [], total=5, unit="item", progress=False)


@pytest.mark.parametrize(
    ("stored", "asked", "diff"),
    [
        ({"seed": 1, "chunk": 2}, {"seed": 1, "chunk": 2}, {}),
        ({"seed": 1}, {"seed": 2}, {"seed": (1, 2)}),
        ({"settings": {"a": 1, "b": 2}}, {"settings": {"a": 1, "b": 3}}, {"settings.b": (2, 3)}),
        ({}, {"n": 4}, {"n": (None, 4)}),
    ],
)
def test_config_differences_name_each_setting(stored, asked, diff):
    assert config_differences(stored, asked) == diff
