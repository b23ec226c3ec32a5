"""Start and stop a real ``tiled serve catalog`` process on 127.0.0.1 (tests, benchmarks, demos).

``with TiledServer(folder) as server: open_catalog(server.url, api_key=server.api_key)``
serves the catalog folder ``folder`` (``catalog.db``, ``data/``, ``storage.sqlite``: the layout
of :func:`uedsteer.plans.catalog.local_catalog`) with a random API key on a free loopback port.
:meth:`TiledServer.kill` stops it the hard way and :meth:`TiledServer.start` brings it back on
the same port, which is how the fault tests take the catalog away mid-campaign.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
from pathlib import Path

import httpx

from .catalog import write_ahead_log
from .processes import ChildServer, free_port, script_command, stop_process

__all__ = ["TiledServer", "free_port"]


class TiledServer(ChildServer):
    """A ``tiled serve catalog`` subprocess bound to 127.0.0.1.

    Parameters
    ----------
    folder : str or PathLike
        Catalog folder (created and initialised on first start).
    port : int, optional
        Default: a free port.
    api_key : str, optional
        Default: a random hex token (what Tiled expects a key to look like).
    log : str or PathLike, optional
        File for the server's output (default: ``<folder>/server.log``).
    """

    what = "tiled serve"

    def __init__(
        self,
        folder: str | os.PathLike,
        port: int | None = None,
        api_key: str | None = None,
        log: str | os.PathLike | None = None,
    ) -> None:
        self.folder = Path(folder).resolve()
        self.port = port or free_port()
        self.api_key = api_key or secrets.token_hex(16)
        self.log = Path(log) if log else self.folder / "server.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """The API address, ``http://127.0.0.1:PORT/api/v1``."""
        return f"http://127.0.0.1:{self.port}/api/v1"

    def command(self) -> list[str]:
        """The command line that starts the server (``--init`` on the first start)."""
        db = self.folder / "catalog.db"
        cmd = [
            *script_command("tiled"),
            "serve",
            "catalog",
            str(db),
            "-w",
            str(self.folder / "data"),
            "-w",
            f"sqlite:///{self.folder / 'storage.sqlite'}",
            "--api-key",
            self.api_key,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        return cmd if db.exists() else [*cmd, "--init"]

    def answers(self) -> bool:
        """Whether the server answers its API address (with the API key, where there is one)."""
        headers = {"Authorization": f"Apikey {self.api_key}"} if self.api_key else {}
        try:
            return httpx.get(f"{self.url}/", headers=headers, timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def _serve(self, timeout: float) -> None:
        """Start :meth:`command` and wait until it :meth:`answers` (killed if it never does)."""
        self._launch(self.command())
        self._wait(self.answers, timeout, self.url, interval=0.2, on_timeout=self.kill)

    def start(self, timeout: float = 60.0) -> TiledServer:
        """Start the server and wait until it answers.

        Raises
        ------
        ServerExited, NoAnswer
            As :meth:`ChildServer.start <uedsteer.plans.processes.ChildServer.start>` (killed
            on a timeout).
        """
        (self.folder / "data").mkdir(parents=True, exist_ok=True)
        # event columns are read while a campaign appends them: in SQLite's default mode such
        # a read fails ("database is locked"), the server answers 500 and Tiled's client waits
        # out its 30 s read timeout before it asks again
        write_ahead_log(self.folder / "storage.sqlite")
        self._serve(timeout)
        return self

    def kill(self) -> None:
        """Stop the server at once (SIGKILL to its process group) and wait for it."""
        if self.process is not None:
            stop_process(
                self.process, timeout=30, stop_signal=signal.SIGKILL, tree=True, group=True
            )

    def stop(self) -> None:
        """Stop the server politely (SIGTERM to its process group), then for good."""
        if self.process is not None:
            stop_process(self.process, timeout=15, tree=True, group=True)
