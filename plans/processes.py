"""The lifecycle of a child server process: start it with a log, wait until it answers, stop it.

Every server uedsteer starts (Redis, PostgreSQL, ``tiled serve``, the RE Manager, ``uedsteer
ioc``, ``uedsteer monitor``) is a subprocess in a session of its own, listening on 127.0.0.1
only. What is the same for each lives here:

* :func:`launch` starts the command detached (its own session and process group), its output
  in a log file;
* :func:`wait_until_answers` polls a probe until the server answers, and fails at once when
  the process exits, or when the time is up, with a one-line head naming the log followed by
  the log's last lines;
* :func:`stop_process` stops a process by its id: a polite request first where there is one,
  then its stop signal, then SIGKILL to it and the processes it started; an exit status of a
  child of this process is collected, so no zombie is left;
* :class:`ChildServer` puts the three together for a server class (``RedisServer``,
  ``PostgresServer``, ``TiledServer``, ``REManager``): its process, its log, and
  ``with Server(...) as server:`` starting and stopping it.

:func:`free_port`, :func:`port_open` and :func:`script_command` are the small helpers around
them: a port to listen on, whether one answers, and the executable to run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, Self

import psutil

__all__ = [
    "LOOPBACK",
    "ChildServer",
    "NoAnswer",
    "ServerExited",
    "StartFailed",
    "StillRunning",
    "free_port",
    "launch",
    "log_tail",
    "port_open",
    "reap",
    "running",
    "script_command",
    "stop_process",
    "wait_until_answers",
]

LOOPBACK = "127.0.0.1"
"""The only address the servers listen on."""

TAIL_LINES = 10
"""How many last lines of a log an error of :func:`wait_until_answers` shows."""

LEFTOVER_GRACE = 5.0
"""Seconds the processes a stopped process started have to end on their own, and again after
SIGTERM, before SIGKILL (:func:`stop_process`)."""

KILL_WAIT = 10.0
"""Seconds a process has to disappear after SIGKILL before :class:`StillRunning`."""

Outcome = Literal["stopped", "killed", "not running"]


# ---- ports and executables ------------------------------------------------------------------


def free_port(udp: bool = False) -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now.

    Parameters
    ----------
    udp : bool
        The port must be free for UDP too (Channel Access uses both).

    Raises
    ------
    RuntimeError
        With ``udp``, no port was free for both after 50 tries.
    """
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((LOOPBACK, 0))
            port = int(tcp.getsockname()[1])
            if not udp:
                return port
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as dgram:
                try:
                    dgram.bind((LOOPBACK, port))
                except OSError:
                    continue
                return port
    raise RuntimeError(f"no port free for both TCP and UDP on {LOOPBACK}")


def port_open(port: int, host: str = LOOPBACK, timeout: float = 1.0) -> bool:
    """Whether something accepts a TCP connection on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def script_command(name: str) -> list[str]:
    """The console script ``name`` beside this Python (its virtual environment), else the
    ``PATH``'s: the servers run from the environment uedsteer runs in."""
    exe = Path(sys.executable).with_name(name)
    return [str(exe)] if exe.exists() else [shutil.which(name) or name]


# ---- starting -------------------------------------------------------------------------------


def launch(
    command: Sequence[str], log: Path | None, *, fresh_log: bool = False, **popen: Any
) -> subprocess.Popen:
    """Start ``command`` detached: a session and process group of its own, so that a Ctrl-C in
    this terminal does not reach it and its group can be signalled as one.

    Parameters
    ----------
    command : sequence of str
        The command line.
    log : Path or None
        File that takes its standard output and error (appended to); None: discarded (a
        server that writes its own log).
    fresh_log : bool
        Empty the log first: a caller that waits for a line in it must not find an old one.
    **popen
        Further arguments of :class:`subprocess.Popen` (``env``, ``cwd``, ``stdin``, ``user``).

    Returns
    -------
    subprocess.Popen
    """
    if log is None:
        return subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **popen,
        )
    with open(log, "wb" if fresh_log else "ab") as out:
        return subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, **popen
        )


def log_tail(log: Path | None, lines: int = TAIL_LINES) -> str:
    """The last ``lines`` non-empty lines of ``log``, each indented ('' when there are none)."""
    if log is None:
        return ""
    try:
        with open(log, "rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - 64 * 1024))
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    last = [line.rstrip() for line in text.splitlines() if line.strip()][-lines:]
    return "\n".join(f"    {line}" for line in last)


class StartFailed(Exception):
    """A server did not come up: :attr:`headline` says what and names its log, and the
    message goes on with the log's last lines (:attr:`tail`).

    Parameters
    ----------
    headline : str
        One line: what happened and where the log is.
    tail : str
        The log's last lines ('' when it has none).
    """

    def __init__(self, headline: str, tail: str = "") -> None:
        message = f"{headline}\n  last lines of the log:\n{tail}" if tail else headline
        super().__init__(message)
        self.headline = headline
        self.tail = tail


class ServerExited(StartFailed, RuntimeError):
    """The server's process exited before it answered."""


class NoAnswer(StartFailed, TimeoutError):
    """The server did not answer in time."""


def wait_until_answers(
    check: Callable[[], bool],
    *,
    process: subprocess.Popen,
    timeout: float,
    what: str,
    where: str | None = None,
    log: Path | None = None,
    interval: float = 0.1,
    errors: tuple[type[BaseException], ...] = (),
    on_timeout: Callable[[], object] | None = None,
) -> None:
    """Poll ``check()`` until it is true, while ``process`` runs.

    Parameters
    ----------
    check : callable
        The probe: true once the server answers.
    process : subprocess.Popen
        The server's process; its exit ends the wait at once.
    timeout : float
        Seconds to wait.
    what : str
        The server's name in the error (``redis-server``).
    where : str, optional
        Its address, for the error of a timeout.
    log : Path, optional
        Its log: named in the error, and its last lines follow the error's first line.
    interval : float
        Seconds between probes.
    errors : tuple of exception types
        Exceptions of ``check`` that mean "not yet" (a refused connection).
    on_timeout : callable, optional
        Called before :class:`NoAnswer` is raised (to stop the server that never answered).

    Raises
    ------
    ServerExited
        A ``RuntimeError``: ``"WHAT exited with STATUS; see LOG"``, then the log's last lines.
    NoAnswer
        A ``TimeoutError``: ``"WHAT did not answer on WHERE within TIMEOUT s; see LOG"``, then
        the log's last lines.
    """
    see = f"; see {log}" if log is not None else ""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if process.poll() is not None:
            raise ServerExited(f"{what} exited with {process.returncode}{see}", log_tail(log))
        try:
            if check():
                return
        except errors:
            pass
        time.sleep(interval)
    if on_timeout is not None:
        on_timeout()
    on = f" on {where}" if where else ""
    raise NoAnswer(f"{what} did not answer{on} within {timeout:g} s{see}", log_tail(log))


# ---- stopping -------------------------------------------------------------------------------


class StillRunning(RuntimeError):
    """A process outlived SIGKILL (:func:`stop_process`)."""


def reap(pid: int) -> None:
    """Collect the exit status of ``pid`` if it is an ended child of this process (so that no
    zombie is left); nothing otherwise."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def running(process: subprocess.Popen | psutil.Process | int) -> psutil.Process | None:
    """The psutil process of ``process`` if it runs (not a zombie), else None."""
    if isinstance(process, subprocess.Popen):
        if process.poll() is not None:
            return None
        process = process.pid
    try:
        proc = process if isinstance(process, psutil.Process) else psutil.Process(process)
        if not proc.is_running():
            return None  # the id was given to another process since
        if proc.status() == psutil.STATUS_ZOMBIE:
            reap(proc.pid)
            return None
        return proc
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


class _Family:
    """A process, the processes it started (and its process group's), and how to signal and
    wait for them."""

    def __init__(self, proc: psutil.Process, popen: subprocess.Popen | None, group: bool) -> None:
        self.proc = proc
        self.popen = popen
        try:
            others = proc.children(recursive=True)
        except psutil.NoSuchProcess:
            others = []
        # only a group it leads (started in a session of its own): never this process's group
        self.pgid = proc.pid if group and _pgid(proc.pid) == proc.pid else None
        if self.pgid is not None:
            known = {p.pid for p in others}
            for p in psutil.process_iter():
                if p.pid not in known and p.pid != proc.pid and _pgid(p.pid) == self.pgid:
                    others.append(p)
        self.others = others

    def send(self, procs: list[psutil.Process], sig: int, whole_group: bool = False) -> None:
        """Send ``sig`` to each of ``procs`` (by id, never to a reused one); with
        ``whole_group`` to the process group too, so that a late-started member gets it."""
        for p in procs:
            with contextlib.suppress(psutil.NoSuchProcess, ProcessLookupError):
                p.send_signal(sig)
        if whole_group and self.pgid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pgid, sig)

    def gone(self, p: psutil.Process) -> bool:
        """Whether ``p`` has ended (a zombie counts as ended, and is reaped if ours)."""
        if self.popen is not None and p.pid == self.popen.pid:
            return self.popen.poll() is not None
        try:
            if not p.is_running():
                return True
            if p.status() == psutil.STATUS_ZOMBIE:
                reap(p.pid)
                return True
            return False
        except psutil.NoSuchProcess:
            return True

    def wait(self, procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
        """Wait until each of ``procs`` has ended; those still running."""
        end = time.monotonic() + timeout
        alive = [p for p in procs if not self.gone(p)]
        while alive and time.monotonic() < end:
            time.sleep(0.05)
            alive = [p for p in alive if not self.gone(p)]
        return alive


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def stop_process(
    process: subprocess.Popen | psutil.Process | int,
    *,
    timeout: float = 15.0,
    stop_signal: int = signal.SIGTERM,
    tree: bool = False,
    group: bool = False,
    ask: Callable[[], object] | None = None,
    ask_timeout: float | None = None,
) -> Outcome:
    """Stop a process by its id, and the processes it started.

    ``ask`` first, if given (a polite request, e.g. the RE Manager's ``manager_stop``), with
    ``ask_timeout`` seconds to take effect; then ``stop_signal``, to the process alone or, with
    ``tree``, to it and every process it started; after ``timeout`` seconds SIGKILL to
    whichever of them still runs. Processes it started that outlive it get
    :data:`LEFTOVER_GRACE` seconds, SIGTERM, as long again, then SIGKILL. A process that has
    already ended is not an error, and an ended child of this process is reaped (a
    ``Popen``'s ``returncode`` is set).

    Parameters
    ----------
    process : subprocess.Popen, psutil.Process or int
        The process: a ``Popen`` of this process, a ``psutil.Process`` (which also tells it
        from a later process given the same id) or a process id.
    timeout : float
        Seconds to wait after the stop signal before SIGKILL.
    stop_signal : int
        The signal that stops it cleanly (SIGTERM; PostgreSQL: SIGINT, a fast shutdown;
        SIGKILL to stop it the hard way at once).
    tree : bool
        Send the stop signal to the processes it started too, not only to it.
    group : bool
        Count the members of its process group among the processes it started, and signal
        the group as a whole too; only where it leads its own group (:func:`launch`).
    ask : callable, optional
        Asks the process to end; an exception it raises is ignored (the signals follow at
        once).
    ask_timeout : float, optional
        Seconds ``ask`` has to take effect (default: ``timeout``).

    Returns
    -------
    str
        ``"stopped"``, ``"killed"`` (SIGKILL was needed) or ``"not running"``.

    Raises
    ------
    StillRunning
        A process still runs :data:`KILL_WAIT` seconds after SIGKILL.
    """
    proc = running(process)
    if proc is None:
        return "not running"
    family = _Family(proc, process if isinstance(process, subprocess.Popen) else None, group)
    everyone = [proc, *family.others]
    alive = [proc]
    if ask is not None:
        try:
            ask()
        except Exception:  # noqa: BLE001 - no answer: the signals follow
            pass
        else:
            alive = family.wait(alive, timeout if ask_timeout is None else ask_timeout)
    how: Outcome = "stopped"
    if alive:
        family.send(everyone if tree else [proc], stop_signal, whole_group=tree)
        if family.wait([proc], timeout):
            family.send(everyone, signal.SIGKILL, whole_group=True)
            how = "killed"
    left = family.wait(family.others, 0 if how == "killed" else LEFTOVER_GRACE)
    if left:
        family.send(left, signal.SIGTERM)
        family.send(family.wait(left, LEFTOVER_GRACE), signal.SIGKILL)
    if family.wait(everyone, KILL_WAIT):
        raise StillRunning(f"pid {proc.pid} still runs after SIGKILL")
    return how


# ---- a server class -------------------------------------------------------------------------


class ChildServer:
    """A server run as a child process of this one, listening on 127.0.0.1.

    A subclass sets :attr:`what` and :attr:`log`, and defines :meth:`start` (prepare, then
    :meth:`_launch` and :meth:`_wait`) and, where SIGTERM is not the way to stop it,
    :meth:`stop`. ``with Server(...) as server:`` starts it and stops it at the end.

    Attributes
    ----------
    what : str
        Its name in messages (``redis-server``).
    log : Path
        Its log file.
    process : subprocess.Popen or None
        The running server (None before :meth:`start`).
    """

    what = "server"
    log: Path
    process: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        """The server's process id (None before :meth:`start`)."""
        return self.process.pid if self.process is not None else None

    def _launch(
        self, command: Sequence[str], *, own_log: bool = False, **popen: Any
    ) -> subprocess.Popen:
        """:func:`launch` ``command`` with its output in :attr:`log` (discarded with
        ``own_log``: a server that writes the log itself); sets :attr:`process`."""
        self.process = launch(command, None if own_log else self.log, **popen)
        return self.process

    def _wait(
        self,
        check: Callable[[], bool],
        timeout: float,
        where: str,
        **options: Any,
    ) -> None:
        """:func:`wait_until_answers` for this server at ``where``; on a timeout it is
        stopped (:meth:`stop`, unless ``on_timeout`` says otherwise). ``options``: those of
        :func:`wait_until_answers` (``interval``, ``errors``, ``on_timeout``)."""
        assert self.process is not None, "launch it first"
        options.setdefault("on_timeout", self.stop)
        wait_until_answers(
            check,
            process=self.process,
            timeout=timeout,
            what=self.what,
            where=where,
            log=self.log,
            **options,
        )

    def start(self, timeout: float = 60.0) -> Self:
        """Start the server and wait until it answers.

        Raises
        ------
        ServerExited
            A ``RuntimeError``: the server exited; the message names its log and ends with
            the log's last lines.
        NoAnswer
            A ``TimeoutError``: it did not answer within ``timeout`` seconds (it is stopped).
        """
        raise NotImplementedError

    def stop(self) -> None:
        """Stop the server: SIGTERM, then SIGKILL after 15 s (:func:`stop_process`)."""
        if self.process is not None:
            stop_process(self.process)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
