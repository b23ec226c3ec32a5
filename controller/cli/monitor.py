"""``uedsteer monitor``: a web page on 127.0.0.1 that follows the running campaign.

``uedsteer monitor --catalog URL_OR_FOLDER [--api-key KEY] [--port N] [--run UID]`` reads only
the catalog (a reader's API key is enough) and serves the page on ``http://127.0.0.1:N/``; it
follows the newest campaign run, or the run ``--run`` names. Before it serves, the port and the
catalog are checked: a port that cannot be bound, a server that does not answer or refuses the
key, or a folder without a catalog is one line and status 2. Once serving, a failure is a line
on the page. SIGINT (Ctrl-C) or SIGTERM stop it with status 0. See
:mod:`uedsteer.plans.monitor` and ``docs/howto/watch-a-campaign.md``.
"""

from __future__ import annotations

import argparse
from typing import Any

from .arguments import add_catalog_arguments, tcp_port
from .errors import fail

DEFAULT_PORT = 8765


def add_parser(sub: Any) -> None:
    """The ``monitor`` sub-command's arguments."""
    p = sub.add_parser(
        "monitor",
        help="a web page on 127.0.0.1 that follows the running campaign from the catalog",
    )
    add_catalog_arguments(p)
    p.add_argument(
        "--port",
        type=tcp_port(free=True),
        default=DEFAULT_PORT,
        help=f"port on 127.0.0.1 (default {DEFAULT_PORT}; 0: a free one, printed)",
    )
    p.add_argument(
        "--run",
        default=None,
        metavar="UID",
        help="follow this run (default: the newest campaign run, as new ones start)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``uedsteer monitor`` (module docstring); returns the exit status."""
    from pydantic import ValidationError

    from uedsteer.plans.catalog import open_catalog
    from uedsteer.plans.monitor import HOST, MonitorConfig, bind_socket, serve

    try:
        config = MonitorConfig(
            catalog=args.catalog, api_key=args.api_key, port=args.port, run=args.run
        )
    except ValidationError as err:
        first = err.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else "value"
        fail(args, f"argument --{name.replace('_', '-')}: {first['msg']}")
    sock = bind_socket(config.port)
    try:
        catalog = open_catalog(config.catalog, api_key=config.api_key, create=False, read_only=True)
        if config.run:
            try:
                catalog[config.run]
            except KeyError:
                fail(args, f"argument --run: no run {config.run!r} in catalog {config.catalog}")
        port = sock.getsockname()[1]
        what = f"run {config.run}" if config.run else "the newest campaign run"
        print(f"monitor http://{HOST}:{port}/ follows {what} in {config.catalog}")
        print("ready; Ctrl-C or SIGTERM stops it", flush=True)
    except BaseException:
        sock.close()
        raise
    serve(config, sock, catalog)
    print("uedsteer monitor: stopped", flush=True)
    return 0
