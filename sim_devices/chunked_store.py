"""Chunked, resumable data generation with Dask: the runner both data stores use.

A store (the frame store of :mod:`uedsteer.sim_devices.frame_store`, the crystal store of
:mod:`uedsteer.sim_devices.crystals.store`) lists the chunks it still lacks; this module runs
them as Dask tasks, shows a progress bar that starts at the share already stored, and hands
each finished result back to the store, which records the chunk as done. A store also refuses
to resume with other settings: :func:`config_differences` names each setting that differs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from .cluster import dask_client


def config_differences(stored: dict, asked: dict) -> dict[str, tuple[Any, Any]]:
    """The entries where two store configurations differ, ``key: (stored, asked)``.

    Generator settings are compared field by field, under the keys ``settings.<field>``.
    """
    diff: dict[str, tuple[Any, Any]] = {}
    for key in sorted(set(stored) | set(asked)):
        old, new = stored.get(key), asked.get(key)
        if key == "settings" and isinstance(old, dict) and isinstance(new, dict):
            for name in sorted(set(old) | set(new)):
                if old.get(name) != new.get(name):
                    diff[f"settings.{name}"] = (old.get(name), new.get(name))
        elif old != new:
            diff[key] = (old, new)
    return diff


def run_chunk_tasks(
    task: Callable[..., Any],
    jobs: Sequence[tuple[tuple, int]],
    *,
    total: int,
    unit: str,
    on_result: Callable[[Any], None] | None = None,
    scheduler: str | None = None,
    n_workers: int = 2,
    progress: bool = True,
) -> None:
    """Run the unfinished chunks of a store on Dask, with a progress bar.

    Parameters
    ----------
    task : callable
        A module-level function (it is pickled to the workers), called as ``task(*args)``.
    jobs : sequence of (args, n_items)
        One entry per unfinished chunk: the task's arguments and the items (frames,
        materials) the chunk adds.
    total : int
        Items in the whole store; the bar starts at ``total − Σ n_items`` (already stored).
    unit : str
        Name of an item on the bar.
    on_result : callable, optional
        Called in this process with each task's return value as it finishes (in completion
        order), e.g. to write it into the store and mark its chunk done.
    scheduler : str, optional
        Address of an existing Dask scheduler (``tcp://host:8786``); default: a
        ``LocalCluster`` of ``n_workers`` single-threaded worker processes.
    n_workers : int
        Workers of the local cluster.
    progress : bool
        Show a tqdm progress bar.
    """
    from dask.distributed import as_completed
    from tqdm import tqdm

    remaining = sum(n for _, n in jobs)
    bar = tqdm(total=total, initial=total - remaining, unit=unit, disable=not progress)
    if jobs:
        with dask_client(scheduler, n_workers) as client:
            futures = {client.submit(task, *args, pure=False): n for args, n in jobs}
            for fut in as_completed(futures):
                result = fut.result()
                if on_result is not None:
                    on_result(result)
                bar.update(futures[fut])
                fut.release()
    bar.close()


def finished_at(complete: bool) -> str | None:
    """The time stamp a store records when its last chunk is written (None while incomplete)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S") if complete else None
