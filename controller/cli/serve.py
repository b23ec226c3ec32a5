"""``uedsteer serve``: the catalog folder served by Tiled on 127.0.0.1, with writer and reader keys.

``uedsteer serve FOLDER`` serves the folder with a SQLite catalog (``catalog.db``, event columns
in ``storage.sqlite``); ``--postgres URI`` keeps the catalog in a PostgreSQL database ``DB`` on
127.0.0.1 instead and its event columns in ``DB_storage`` on the same server (created if the
user may; else one line names it), and ``--start-postgres`` starts one in ``FOLDER/postgres``
(Debian's ``postgresql`` binaries) for the catalog, its event columns and Tiled's
authentication database. Arrays stay in zarr files in ``FOLDER/data``. On start the command
prints the address and the two API keys: the writer's (the RE Manager's ``TILED_API_KEY``) and
the readers' (monitor, scientists), which Tiled lets only read; a request without a key reads
nothing.
It serves until SIGINT (Ctrl-C) or SIGTERM, which stop the servers it started and end it with
status 0. See :mod:`uedsteer.plans.served_catalog` and ``docs/howto/serve-the-catalog.md``.
"""

from __future__ import annotations

import argparse
from typing import Any

from .arguments import int_at_least
from .errors import fail


def add_parser(sub: Any) -> None:
    """The ``serve`` sub-command's arguments."""
    p = sub.add_parser(
        "serve",
        help="serve a catalog folder with Tiled on 127.0.0.1 (writer and reader API keys)",
    )
    p.add_argument("folder", help="catalog folder (made on first start)")
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--postgres",
        default=None,
        metavar="URI",
        help="catalog database postgresql://USER:PASSWORD@127.0.0.1:PORT/DB; event columns go "
        "to DB_storage there, created if USER may (default: SQLite catalog.db and storage.sqlite "
        "in the folder)",
    )
    where.add_argument(
        "--start-postgres",
        action="store_true",
        help="start a PostgreSQL server in FOLDER/postgres for the catalog, its event columns "
        "and the keys",
    )
    p.add_argument(
        "--auth-database",
        default=None,
        metavar="URI",
        help="Tiled's database of principals and API keys (default: SQLite authn.db in the "
        "folder, or the started PostgreSQL)",
    )
    p.add_argument(
        "--port", type=int_at_least(1), default=None, help="port on 127.0.0.1 (default: free)"
    )
    p.set_defaults(func=run)


def _config(args: argparse.Namespace, **changes: Any) -> Any:
    """The :class:`ServeConfig` of the arguments; a bad value is one line naming it."""
    from pydantic import ValidationError

    from uedsteer.plans.served_catalog import ServeConfig

    values = {
        "folder": args.folder,
        "postgres": args.postgres,
        "auth_database": args.auth_database,
        "port": args.port,
        **changes,
    }
    try:
        return ServeConfig(**values)
    except ValidationError as err:
        first = err.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "value"
        message = first["msg"].removeprefix("Value error, ")
        if not message.startswith(field):
            option = "--" + field.replace("_", "-")
            message = f"{option}={values.get(field)!r}: {message}"
        fail(args, message)


def run(args: argparse.Namespace) -> int:
    """Run ``uedsteer serve`` (module docstring); returns the exit status."""
    import signal
    import threading
    from pathlib import Path

    from uedsteer.plans.postgres_server import PostgresServer
    from uedsteer.plans.processes import StartFailed
    from uedsteer.plans.served_catalog import ServedCatalog

    _config(args)  # refuse bad arguments before anything starts
    stop = threading.Event()
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, lambda *_: stop.set())
    postgres = None
    server = None
    try:
        if args.start_postgres:
            postgres = PostgresServer(Path(args.folder).expanduser() / "postgres").start()
            print(f"postgres 127.0.0.1:{postgres.port} (pid {postgres.pid}), {postgres.folder}")
            config = _config(
                args,
                postgres=postgres.uri(),
                auth_database=args.auth_database or postgres.create_database("uedsteer_auth"),
            )
        else:
            config = _config(args)
        server = ServedCatalog(config).start()
        print(server.banner())
        print(f"tiled pid {server.process.pid}; Ctrl-C or SIGTERM stops it")
        print("ready", flush=True)
        while not stop.wait(0.5):
            if server.process.poll() is not None:
                fail(args, f"tiled serve exited with {server.process.returncode}; see {server.log}")
    except (RuntimeError, TimeoutError, FileNotFoundError, PermissionError) as err:
        fail(args, err.headline if isinstance(err, StartFailed) else str(err))  # not the log's tail
    finally:
        if server is not None:
            server.stop()
        if postgres is not None:
            postgres.stop()
    print("uedsteer serve: stopped", flush=True)
    return 0
