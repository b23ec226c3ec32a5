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
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tiled_command() -> list[str]:
    exe = Path(sys.executable).with_name("tiled")
    return [str(exe)] if exe.exists() else [shutil.which("tiled") or "tiled"]


class TiledServer:
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

    def start(self, timeout: float = 60.0) -> TiledServer:
        """Start the server and wait until it answers (``TimeoutError`` if it does not)."""
        (self.folder / "data").mkdir(parents=True, exist_ok=True)
        db = self.folder / "catalog.db"
        cmd = [
            *_tiled_command(),
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
        if not db.exists():
            cmd.append("--init")
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"tiled serve exited with {self.process.returncode}; see {self.log}"
                )
            try:
                r = httpx.get(
                    f"{self.url}/", headers={"Authorization": f"Apikey {self.api_key}"}, timeout=2
                )
                if r.status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.kill()
        raise TimeoutError(f"tiled serve did not answer on {self.url} within {timeout} s")

    def kill(self) -> None:
        """Stop the server at once (SIGKILL to its process group) and wait for it."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(30)

    def stop(self) -> None:
        """Stop the server politely (SIGTERM), then for good."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            self.kill()

    def __enter__(self) -> TiledServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
