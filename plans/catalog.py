"""Logging to databroker (Tiled): an embedded local catalog by default, a server for a facility.

``local_catalog(path)`` needs no server: a SQLite catalog database (``catalog.db``), zarr files
for arrays (``data/``) and a SQLite table store for event columns (``storage.sqlite``), served
in-process. The same folder can later be served over HTTP by a Tiled server.
``subscribe(RE, client)`` attaches :class:`bluesky_tiled_plugins.TiledWriter`; every array
(even a short score vector) goes to zarr (``max_array_size=0``), which the SQLite table store
needs.

Durability: TiledWriter buffers events until the run's stop document (or ``batch_size``
events). A process killed mid-run therefore loses the buffered events of that run; use
``batch_size=1`` where every event must survive a hard kill (≈ 75 ms per event instead of
≈ 4 ms on a 2-core machine).

Reading back: ``client[-1]`` is the newest run (a ``BlueskyRun``), ``run.start``/``run.stop``
its documents, ``run["primary"]["det_image"].read()`` the frames as a (N, 261, 261) float32
array, ``run["primary"]["pump_fluence"].read()`` a setting per event.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from uedsteer.controller.campaign import frame_key

BLUESKY_RUNS_SPEC = {"name": "CatalogOfBlueskyRuns", "version": "3.0"}

__all__ = ["connect_catalog", "event_columns", "local_catalog", "read_frames", "subscribe"]


def _quiet() -> None:
    warnings.filterwarnings("ignore", message=".*starlette.testclient.*")
    warnings.filterwarnings("ignore", message=".*Duplicate dimension names.*")


def local_catalog(path: str | os.PathLike) -> Any:
    """Open (creating if needed) an embedded, writable Tiled catalog in folder ``path``.

    Parameters
    ----------
    path : str or PathLike
        Catalog folder. Runs written in one process are there for the next.

    Returns
    -------
    tiled.client container
        Index it like databroker: ``client[-1]``, ``client[uid]``, ``client[scan_id]``.

    Raises
    ------
    ValueError
        If the folder cannot be created or written.
    """
    _quiet()
    from tiled.catalog import from_uri
    from tiled.client import Context, from_context
    from tiled.server.app import build_app

    folder = Path(path).expanduser().resolve()
    try:
        (folder / "data").mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"catalog path={str(path)!r} cannot be created: {err.strerror}") from None
    if not os.access(folder, os.W_OK) or not os.access(folder / "data", os.W_OK):
        raise ValueError(f"catalog path={str(path)!r} is not writable")
    db = folder / "catalog.db"
    if db.exists() and not os.access(db, os.W_OK):
        raise ValueError(f"catalog path={str(path)!r}: {db.name} is read-only")
    catalog = from_uri(
        f"sqlite:///{db}",
        writable_storage=[f"file://{folder / 'data'}", f"sqlite:///{folder / 'storage.sqlite'}"],
        init_if_not_exists=not db.exists(),
        specs=[BLUESKY_RUNS_SPEC],
    )
    return from_context(Context.from_app(build_app(catalog)))


def connect_catalog(uri: str, api_key: str | None = None) -> Any:
    """Connect to a Tiled server (e.g. a facility's, backed by PostgreSQL).

    Parameters
    ----------
    uri : str
        Server address, e.g. ``"http://tiled.example:8000/api/v1"`` (a path inside it selects
        a sub-catalog).
    api_key : str, optional
        API key; default: the ``TILED_API_KEY`` environment variable.

    Returns
    -------
    tiled.client container
        Indexable by ``[-1]``, uid or scan id, like :func:`local_catalog`.
    """
    _quiet()
    from bluesky_tiled_plugins.clients.catalog_of_bluesky_runs import CatalogOfBlueskyRuns
    from tiled.client import from_uri

    client = from_uri(uri, api_key=api_key)
    if isinstance(client, CatalogOfBlueskyRuns):
        return client
    return CatalogOfBlueskyRuns(
        client.context, item=client.item, structure_clients=client.structure_clients
    )


def subscribe(RE: Any, client: Any, batch_size: int | None = None) -> int:
    """Write every document the RunEngine emits into ``client`` with TiledWriter.

    Parameters
    ----------
    RE : bluesky.RunEngine
    client : tiled client container
        From :func:`local_catalog` or :func:`connect_catalog`.
    batch_size : int, optional
        Events buffered per stream before a write (TiledWriter's default if None; 1 makes
        every event survive a hard kill, at ≈ 75 ms per event).

    Returns
    -------
    int
        The subscription token (``RE.unsubscribe(token)``).
    """
    from bluesky_tiled_plugins import TiledWriter

    kwargs: dict[str, Any] = {"max_array_size": 0}
    if batch_size is not None:
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be >= 1")
        kwargs["batch_size"] = int(batch_size)
    return RE.subscribe(TiledWriter(client, **kwargs))


def read_frames(run: Any, key: str | None = None, stream: str = "primary") -> np.ndarray:
    """All frames of a run's stream as one numpy array (N, n, n).

    ``key`` defaults to the image of the run's first detector (``<name>_image``, from the
    start document's ``detectors``; ``det_image`` for the simulated beamline).
    """
    if key is None:
        key = frame_key(run.metadata["start"])
    return np.asarray(run[stream][key].read())


def event_columns(run: Any, keys: list[str], stream: str = "primary") -> dict[str, np.ndarray]:
    """Selected per-event columns of a stream (settings, flags, scores) as numpy arrays."""
    node = run[stream]
    return {k: np.asarray(node[k].read()) for k in keys}
