"""Logging to databroker (Tiled): an embedded local catalog by default, a server for a facility.

``open_catalog(target)`` takes either a folder or an ``http(s)://`` address of a Tiled server:

* a folder needs no server: a SQLite catalog database (``catalog.db``), zarr files for arrays
  (``data/``) and a SQLite table store for event columns (``storage.sqlite``), served
  in-process. The folder can be moved or copied; the same folder can be served over HTTP by
  ``tiled serve catalog``.
* a server is checked before anything fires: an address that does not answer, or an API key
  that is missing or refused, is a one-line ``ValueError`` naming the address and the fix.

``subscribe(RE, client)`` makes every document durable: it is appended to a local journal
(under a millisecond for a frame) before the RunEngine moves on, and written into the catalog
by a background thread (:mod:`uedsteer.plans.delivery`). A killed process, or a server that goes
away mid-run, loses nothing: the journal is delivered when the catalog is next opened, or when
the server answers again. Every array (even a short score vector) goes to zarr
(``max_array_size=0``), which the SQLite table store needs.

Reading back: ``client[-1]`` is the newest run (a ``BlueskyRun``), ``run.start``/``run.stop``
its documents, ``run["primary"]["det_image"].read()`` the frames as a (N, 261, 261) float32
array, ``run["primary"]["pump_fluence"].read()`` a setting per event.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from .documents import SHOTS, frame_key

BLUESKY_RUNS_SPEC = {"name": "CatalogOfBlueskyRuns", "version": "3.0"}

__all__ = [
    "connect_catalog",
    "event_columns",
    "journal_folder",
    "local_catalog",
    "open_catalog",
    "read_frames",
    "scan_id_source",
    "subscribe",
    "write_ahead_log",
]

JOURNAL_ENV = "UEDSTEER_JOURNAL"
"""Environment variable: the journal folder for served catalogs (default: the user's data
folder, ``~/.local/share/uedsteer/journal/<host>_<port>``)."""


def _quiet() -> None:
    warnings.filterwarnings("ignore", message=".*starlette.testclient.*")
    warnings.filterwarnings("ignore", message=".*Duplicate dimension names.*")
    warnings.filterwarnings("ignore", message="No path_separator found", module="alembic")


def is_url(target: str | os.PathLike) -> bool:
    """Whether a ``--catalog`` value names a Tiled server rather than a folder."""
    return str(target).startswith(("http://", "https://"))


def open_catalog(
    target: str | os.PathLike,
    api_key: str | None = None,
    create: bool = True,
    read_only: bool = False,
) -> Any:
    """Open a catalog folder or connect to a Tiled server, whichever ``target`` names.

    Parameters
    ----------
    target : str or PathLike
        A folder (embedded catalog) or an ``http(s)://…/api/v1`` address.
    api_key : str, optional
        For a server; default: the ``TILED_API_KEY`` environment variable.
    create : bool
        Create a missing folder (False when only reading, e.g. to resume a campaign).
    read_only : bool
        For a reader that never writes (the campaign monitor): journals of other processes
        are not delivered, and a server reached without a key need not allow writing.

    Returns
    -------
    tiled client container of bluesky runs

    Raises
    ------
    ValueError
        One line naming the folder or address and the fix.
    """
    if is_url(target):
        return connect_catalog(str(target), api_key=api_key, read_only=read_only)
    folder = Path(target).expanduser()
    if not create and not (folder / "catalog.db").exists():
        raise ValueError(
            f"catalog {str(target)!r} holds no catalog (no catalog.db there); give the folder "
            "or server address the campaign was written to with --catalog"
        )
    return local_catalog(folder, read_only=read_only)


def _relocate(folder: Path, db: Path) -> None:
    """Point the catalog's stored data addresses at ``folder`` after the folder was moved.

    Tiled records absolute addresses of the zarr and table files; a copied or moved catalog
    folder would otherwise refuse to serve its own data.
    """
    con = sqlite3.connect(db)
    try:
        rows = con.execute(
            "SELECT data_uri FROM assets WHERE data_uri LIKE '%/storage.sqlite' LIMIT 1"
        ).fetchall()
        if not rows:
            return
        old = urlsplit(rows[0][0]).path.rsplit("/storage.sqlite", 1)[0]
        old = "/" + old.lstrip("/")
        new = str(folder)
        if old == new:
            return
        with con:
            for prefix in ("file://localhost", "sqlite://localhost/"):
                con.execute(
                    "UPDATE assets SET data_uri = ? || substr(data_uri, ?) "
                    "WHERE substr(data_uri, 1, ?) = ?",
                    (prefix + new, len(prefix + old) + 1, len(prefix + old), prefix + old),
                )
    finally:
        con.close()


def write_ahead_log(path: Path) -> None:
    """Put an SQLite file in write-ahead-log mode (creating it if needed).

    In SQLite's default mode a reader is refused ("database is locked") while a writer holds
    the file; with a write-ahead log a second session reads a running campaign while its
    shots are written. The mode is stored in the file, so it holds for every process.
    """
    con = sqlite3.connect(path)
    try:
        con.execute("PRAGMA journal_mode=WAL")
    finally:
        con.close()


def _create_catalog_db(uri: str) -> None:
    """Create an empty Tiled catalog database at ``uri``, as ``tiled catalog init`` does.

    Tiled's ``from_uri(init_if_not_exists=True)`` runs that command in a subprocess, which
    imports Tiled again (seconds); the same two steps run here in a worker thread (its own
    event loop, so an event loop running in the caller, e.g. Jupyter's, is no obstacle).
    """
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from sqlalchemy.ext.asyncio import create_async_engine
    from tiled.alembic_utils import stamp_head
    from tiled.catalog.alembic_constants import ALEMBIC_DIR, ALEMBIC_INI_TEMPLATE_PATH
    from tiled.catalog.core import initialize_database
    from tiled.utils import ensure_specified_sql_driver

    uri = ensure_specified_sql_driver(uri)

    async def create_tables() -> None:
        engine = create_async_engine(uri)
        try:
            await initialize_database(engine)
        finally:
            await engine.dispose()

    def create() -> None:
        asyncio.run(create_tables())
        # alembic's progress lines went to the subprocess's stderr, which tiled kept
        alembic_log = logging.getLogger("alembic")
        level = alembic_log.level
        alembic_log.setLevel(logging.WARNING)
        try:
            stamp_head(ALEMBIC_INI_TEMPLATE_PATH, ALEMBIC_DIR, uri)
        finally:
            alembic_log.setLevel(level)

    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(create).result()


def local_catalog(path: str | os.PathLike, read_only: bool = False) -> Any:
    """Open (creating if needed) an embedded, writable Tiled catalog in folder ``path``.

    Runs journalled by a process that died before the catalog had them are delivered first.

    Parameters
    ----------
    path : str or PathLike
        Catalog folder. Runs written in one process are there for the next.
    read_only : bool
        Leave the journals of other processes undelivered (a reader that never writes).

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

    if is_url(path):
        raise ValueError(f"catalog path={str(path)!r} is a server address: use open_catalog")
    folder = Path(path).expanduser().resolve()
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"catalog path={str(path)!r} is a file; give a folder")
    try:
        (folder / "data").mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"catalog path={str(path)!r} cannot be created: {err.strerror}") from None
    if not os.access(folder, os.W_OK) or not os.access(folder / "data", os.W_OK):
        raise ValueError(f"catalog path={str(path)!r} is not writable")
    db = folder / "catalog.db"
    if db.exists() and not os.access(db, os.W_OK):
        raise ValueError(f"catalog path={str(path)!r}: {db.name} is read-only")
    if db.exists():
        _relocate(folder, db)
    write_ahead_log(folder / "storage.sqlite")
    if not db.exists():
        _create_catalog_db(f"sqlite:///{db}")
    catalog = from_uri(
        f"sqlite:///{db}",
        writable_storage=[f"file://{folder / 'data'}", f"sqlite:///{folder / 'storage.sqlite'}"],
        specs=[BLUESKY_RUNS_SPEC],
    )
    client = from_context(Context.from_app(build_app(catalog)))
    client.uedsteer_journal = folder / "journal"
    client.uedsteer_data = folder / "data"
    if not read_only:
        _deliver_pending(client)
    return client


def connect_catalog(uri: str, api_key: str | None = None, read_only: bool = False) -> Any:
    """Connect to a Tiled server (e.g. a facility's, backed by PostgreSQL).

    Parameters
    ----------
    uri : str
        Server address, e.g. ``"http://127.0.0.1:8000/api/v1"`` (a path inside it selects
        a sub-catalog).
    api_key : str, optional
        API key; default: the ``TILED_API_KEY`` environment variable.
    read_only : bool
        For a reader that never writes: journals are not delivered, and a server reached
        without a key need not allow anonymous writing.

    Returns
    -------
    tiled.client container
        Indexable by ``[-1]``, uid or scan id, like :func:`local_catalog`.

    Raises
    ------
    ValueError
        The server does not answer, or refuses the key (one line with the fix).
    """
    _quiet()
    import httpx
    from bluesky_tiled_plugins.clients.catalog_of_bluesky_runs import CatalogOfBlueskyRuns
    from tiled.client import from_uri
    from tiled.client.context import CannotPrompt

    api_key = api_key or os.environ.get("TILED_API_KEY") or None
    try:
        httpx.get(uri, timeout=10)  # fail fast: the client itself retries for a minute
        client = from_uri(uri, api_key=api_key)
    except httpx.TransportError as err:
        raise ValueError(
            f"catalog {uri}: the Tiled server does not answer ({type(err).__name__}); start it "
            "(tiled serve catalog …) or check the address"
        ) from None
    except (RuntimeError, CannotPrompt) as err:
        # tiled: "This server requires API key authentication.", or, from a server with
        # user accounts, that it cannot prompt for a login here
        if "API key" not in str(err) and not isinstance(err, CannotPrompt):
            raise
        raise ValueError(
            f"catalog {uri}: the server requires an API key; pass --api-key KEY or set "
            "TILED_API_KEY"
        ) from None
    except httpx.HTTPStatusError as err:
        code = err.response.status_code
        if code in (401, 403):
            fix = "pass --api-key KEY or set TILED_API_KEY" if not api_key else "check the key"
            raise ValueError(
                f"catalog {uri}: the server refused access (HTTP {code}); {fix}"
            ) from None
        raise ValueError(f"catalog {uri}: the server answered HTTP {code}") from None
    if not api_key and not read_only and not _may_write(client):
        raise ValueError(
            f"catalog {uri}: no API key, and the server allows no anonymous writing; pass "
            "--api-key KEY or set TILED_API_KEY"
        )
    if not isinstance(client, CatalogOfBlueskyRuns):
        client = CatalogOfBlueskyRuns(
            client.context, item=client.item, structure_clients=client.structure_clients
        )
    split = urlsplit(uri)
    default = Path.home() / ".local/share/uedsteer/journal"
    root = Path(os.environ.get(JOURNAL_ENV) or default)
    client.uedsteer_journal = root / f"{split.hostname}_{split.port or 80}".replace(":", "_")
    if not read_only:
        _deliver_pending(client)
    return client


def _may_write(client: Any) -> bool:
    """Whether the server lets this (anonymous) client write."""
    try:
        whoami = client.context.whoami()
    except Exception:  # noqa: BLE001 - a server without authentication
        return True
    return whoami is not None


def journal_folder(client: Any) -> Path:
    """The local journal folder of a catalog opened with :func:`open_catalog`."""
    folder = getattr(client, "uedsteer_journal", None)
    if folder is None:
        raise ValueError("the catalog was not opened with uedsteer's open_catalog")
    return Path(folder)


def _deliver_pending(client: Any) -> None:
    from .delivery import deliver_pending

    deliver_pending(client, journal_folder(client))


def subscribe(RE: Any, client: Any, batch_size: int = 1) -> int:
    """Write every document the RunEngine emits into ``client``, durably (module docstring).

    Subscribing the same RunEngine to the same catalog again returns the existing
    subscription (two writers would write every run twice).

    Parameters
    ----------
    RE : bluesky.RunEngine
    client : tiled client container
        From :func:`open_catalog` (or :func:`local_catalog` / :func:`connect_catalog`).
    batch_size : int
        Events per catalog write (1: readers see each event as it comes). Durability does
        not depend on it: the journal holds every document first.

    Returns
    -------
    int
        The subscription token (``RE.unsubscribe(token)``).

    Raises
    ------
    ValueError
        ``batch_size`` below 1, ``RE`` already writes into another catalog, or the server
        lets ``client``'s API key only read (a reader's key).
    """
    from .delivery import CatalogDelivery

    if isinstance(batch_size, bool) or int(batch_size) < 1:
        raise ValueError(f"batch_size={batch_size!r} must be an integer >= 1")
    _refuse_read_only_key(client)
    current = getattr(RE, "uedsteer_delivery", None)
    if current is not None and current[1] in RE.dispatcher._token_mapping:
        delivery, token = current
        if delivery.client is client:
            return token
        raise ValueError(
            "this RunEngine already writes into another catalog; RE.unsubscribe(token) first"
        )
    delivery = CatalogDelivery(client, journal_folder(client), batch_size=int(batch_size))
    token = RE.subscribe(delivery)
    RE.uedsteer_delivery = (delivery, token)
    return token


WRITE_SCOPES = ("create:node", "write:metadata", "write:data")
"""The Tiled scopes a key needs to write runs (bluesky's TiledWriter makes nodes, writes
their metadata and appends their data)."""


def _key_scopes(client: Any) -> set[str] | None:
    """The Tiled scopes of the API key ``client`` holds, where the server tells them.

    None for a catalog without API keys of their own (an embedded one, or a server with a
    single key), where the key, if any, may do everything.
    """
    context = getattr(client, "context", None)
    if context is None or not getattr(context, "api_key", None):
        return None
    try:
        r = context.http_client.get(f"{context.api_uri}auth/apikey")
    except Exception:  # noqa: BLE001 - the server went away: the journal keeps the documents
        return None
    if r.status_code != 200:
        return None  # single-user servers have no key records
    return set(r.json().get("scopes") or ())


def _refuse_read_only_key(client: Any) -> None:
    """Refuse, before anything fires, to write with a key the server lets only read."""
    scopes = _key_scopes(client)
    if scopes is None or "inherit" in scopes:
        return
    missing = [s for s in WRITE_SCOPES if s not in scopes]
    if missing:
        raise ValueError(
            f"catalog {client.context.api_uri}: this API key may not write runs (its scopes: "
            f"{', '.join(sorted(scopes)) or 'none'}; writing needs {', '.join(WRITE_SCOPES)}); "
            "give the writer's key"
        )


def scan_id_source(client: Any):
    """A RunEngine ``scan_id_source`` that counts on from the catalog's newest run.

    Every process starts its RunEngine at scan id 1; with this, ``db[scan_id]`` names one run
    even across processes and sessions.
    """

    def next_scan_id(md: dict) -> int:
        newest = 0
        try:
            newest = int(client.values().last().metadata["start"].get("scan_id") or 0)
        except Exception:  # noqa: BLE001 - an empty catalog, or a server that just went away
            pass
        return max(newest, int(md.get("scan_id") or 0)) + 1

    return next_scan_id


READ_TRIES = 5
"""Reads of a run that is still being written are retried this often (see :func:`_read`)."""


def _read(run: Any, stream: str, key: str) -> np.ndarray:
    """One column of a stream, read consistently while the run may still be growing.

    Tiled reads an array in two requests (its shape, then its data with that shape); a shot
    written in between makes the server refuse the second one. Asking again, shape first,
    gives a consistent read.
    """
    import httpx

    for attempt in range(READ_TRIES):
        try:
            return np.asarray(run[stream][key].read())
        except httpx.HTTPStatusError as err:
            if attempt == READ_TRIES - 1 or "expected_shape" not in str(err.request.url):
                raise
            time.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")


def read_frames(run: Any, key: str | None = None, stream: str = SHOTS) -> np.ndarray:
    """All frames of a run's stream as one numpy array (N, n, n).

    ``key`` defaults to the image of the run's first detector (``<name>_image``, from the
    start document's ``detectors``; ``det_image`` for the simulated beamline). A run that is
    still being written (a campaign running in another session) reads consistently.
    """
    if key is None:
        key = frame_key(run.metadata["start"])
    return _read(run, stream, key)


def event_columns(run: Any, keys: list[str], stream: str = SHOTS) -> dict[str, np.ndarray]:
    """Selected per-event columns of a stream (settings, flags, scores) as numpy arrays.

    Columns of a run still being written may differ in length by the shots written between
    two reads.
    """
    return {k: _read(run, stream, k) for k in keys}
