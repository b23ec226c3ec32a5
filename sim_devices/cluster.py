"""The Dask client the data generators submit their chunk tasks to."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def dask_client(scheduler: str | None = None, n_workers: int = 2) -> Iterator[Any]:
    """A Dask client, closed (with its local cluster) on exit.

    Parameters
    ----------
    scheduler : str, optional
        Address of an existing Dask scheduler (``tcp://host:8786``) when one machine is not
        enough; default: a ``LocalCluster`` of ``n_workers`` single-threaded processes.
    n_workers : int
        Workers of the local cluster.
    """
    from dask.distributed import Client, LocalCluster

    cluster = None
    if scheduler is None:
        cluster = LocalCluster(
            n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None
        )
    client = Client(scheduler or cluster)
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
