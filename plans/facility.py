"""The whole facility stack on 127.0.0.1: start it, look at it, stop it, queue campaigns on it.

:func:`start_facility` composes the servers uedsteer already has, each a detached process (its
own session) that outlives the command that started it:

=========  ===================================================  ================================
name       process                                              address
=========  ===================================================  ================================
postgres   :class:`~.postgres_server.PostgresServer` (only      ``127.0.0.1:PORT``
           with ``postgres=True``: the catalog, its event
           columns and the keys)
redis      :class:`~.redis_server.RedisServer`: the queue       ``127.0.0.1:PORT``
catalog    :class:`~.served_catalog.ServedCatalog` (what        ``http://127.0.0.1:PORT/api/v1``
           ``uedsteer serve`` runs): SQLite or PostgreSQL,
           a writer and a reader API key
ioc        ``uedsteer ioc``: the simulated beamline as EPICS    Channel Access ``127.0.0.1:PORT``
           PVs (Channel Access on its own port)
manager    :class:`~.qserver_manager.REManager` with            ``tcp://127.0.0.1:PORT`` (control
           uedsteer's profile: the RunEngine writes to the      and info sockets)
           catalog with the writer key and drives the IOC's
           PVs; its worker environment is opened
=========  ===================================================  ================================

Before anything starts, the EPICS loopback variables
(:func:`uedsteer.sim_devices.epics_env.loopback_environment`) are set in this process, so every
process it starts inherits them; every server binds to 127.0.0.1 only. It waits until each
answers, then writes the state file ``FOLDER/facility.json`` (:class:`FacilityState`: process
ids, addresses, ports, logs, the two keys; mode 600). If anything fails to start, what was
started is stopped and a :class:`FacilityError` names what failed and its log.

:func:`facility_status` reads the state file and checks each process (its id *and* start time,
so a reused process id is not mistaken for it) and each port; :func:`stop_facility` stops each
process by its id (its stop signal, then SIGKILL to it and what it started after a timeout)
and removes the state file; run twice, it finds nothing to stop. :func:`queue_item` queues a
``uedsteer_campaign`` or ``uedsteer_resume`` item through ``bluesky_queueserver_api`` and,
if asked, waits for its result.

Last, the browser monitor (``uedsteer monitor``, :func:`start_monitor`) with the reader key.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from uedsteer.sim_devices.epics_env import LOOPBACK, loopback_environment

from .processes import ChildServer, StartFailed, StillRunning, free_port, port_open, running
from .processes import stop_process as _stop

__all__ = [
    "DEFAULT_FOLDER",
    "STATE_FILE",
    "FacilityConfig",
    "FacilityError",
    "FacilityState",
    "ItemOutcome",
    "ProcessRecord",
    "facility_status",
    "is_running",
    "load_state",
    "port_open",
    "queue_item",
    "start_facility",
    "start_monitor",
    "stop_facility",
    "stop_process",
]

STATE_FILE = "facility.json"
"""The state file's name, in the facility's folder."""

DEFAULT_FOLDER = "uedsteer_facility"
"""The facility's folder when none is given (in the working folder)."""

QUEUE_USER = "uedsteer facility"
"""The user name the queue items of :func:`queue_item` carry."""

PV_PREFIX = r"^[A-Za-z0-9_:.\-]+$"
"""The characters a PV prefix may hold (as ``uedsteer ioc`` allows)."""


class FacilityError(RuntimeError):
    """One line: what failed (to start, to stop, to queue) and where to look."""


class FacilityConfig(BaseModel):
    """What :func:`start_facility` starts, and where."""

    model_config = ConfigDict(extra="forbid")

    folder: Path = Field(
        description="the facility's folder: facility.json (the state), the catalog, the logs, "
        "the journal, PostgreSQL's cluster; made on the first start"
    )
    postgres: bool = Field(
        default=False,
        description="keep the catalog, its event columns and Tiled's keys in a PostgreSQL server "
        "started in FOLDER/postgres (Debian's binaries) instead of SQLite files",
    )
    prefix: str = Field(
        default="UED:", pattern=PV_PREFIX, description="PV prefix of the IOC, e.g. 'UED:'"
    )
    sample: int | None = Field(
        default=None,
        ge=0,
        description="the IOC's simulated sample ResponseParams.random(SAMPLE) (default: the "
        "default sample)",
    )
    seed: int = Field(default=0, ge=0, description="seed of the IOC's simulated beamline")
    ca_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="the IOC's Channel Access port, TCP and UDP (EPICS_CA_SERVER_PORT; "
        "default: a free one)",
    )
    catalog_port: int | None = Field(
        default=None, ge=1, le=65535, description="the Tiled server's port (default: a free one)"
    )
    control_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="the RE Manager's control socket (default: a free one)",
    )
    monitor_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="the browser monitor's port (default: a free one)",
    )
    open_timeout: float = Field(
        default=300.0,
        gt=0,
        description="seconds to wait for each server, and for the RE Worker's environment to "
        "open (it imports torch and the scorer and connects to the PVs)",
    )


class ProcessRecord(BaseModel):
    """One process of the facility, as the state file records it."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="postgres, redis, catalog, ioc or manager")
    pid: int = Field(gt=0, description="process id")
    create_time: float = Field(
        description="the process's start time (psutil): tells the process from a later one "
        "that got the same id"
    )
    address: str = Field(description="where it answers, on 127.0.0.1")
    ports: list[int] = Field(description="the TCP ports it listens on")
    log: Path = Field(description="its log file")
    stop_signal: Literal["SIGTERM", "SIGINT"] = Field(
        default="SIGTERM",
        description="the signal that stops it cleanly (PostgreSQL: SIGINT, a fast shutdown)",
    )


class FacilityState(BaseModel):
    """The state file ``FOLDER/facility.json``: what runs, where, with which keys."""

    model_config = ConfigDict(extra="forbid")

    folder: Path = Field(description="the facility's folder")
    started_at: str = Field(description="when it started (ISO 8601, UTC)")
    processes: list[ProcessRecord] = Field(description="in the order they were started")
    catalog_url: str = Field(description="the Tiled server's API address")
    database: str = Field(description="where the catalog's database is (SQLite or PostgreSQL)")
    writer_key: str = Field(description="Tiled API key of the RE Manager (writes runs)")
    reader_key: str = Field(description="Tiled API key of readers (monitor, scientists)")
    redis_address: str = Field(description="Redis, 127.0.0.1:PORT")
    control_address: str = Field(description="the RE Manager's control socket, tcp://…")
    info_address: str = Field(description="the RE Manager's info (console) socket, tcp://…")
    epics_prefix: str = Field(description="the IOC's PV prefix")
    ca_port: int = Field(description="the IOC's Channel Access port (EPICS_CA_SERVER_PORT)")
    journal: Path = Field(description="the RE Manager's journal of runs not yet delivered")
    open_timeout: float = Field(description="seconds to wait for the RE Worker's environment")

    @property
    def path(self) -> Path:
        """The state file."""
        return self.folder / STATE_FILE

    def process(self, name: str) -> ProcessRecord | None:
        """The record of the process ``name`` (None if the facility has none)."""
        return next((p for p in self.processes if p.name == name), None)

    def save(self) -> Path:
        """Write the state file, readable by its owner only (it holds the keys)."""
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.model_dump_json(indent=2))
        os.replace(tmp, self.path)
        return self.path


def load_state(folder: str | os.PathLike) -> FacilityState | None:
    """The state file of the facility in ``folder`` (None when there is none).

    Raises
    ------
    FacilityError
        The file is there but is not a state file (one line naming it).
    """
    path = Path(folder).expanduser().resolve() / STATE_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        return FacilityState.model_validate(json.loads(text))
    except ValueError as err:
        first = " ".join(str(err).split())[:200]
        raise FacilityError(f"{path} is not a facility state file ({first})") from None


# ---- processes ------------------------------------------------------------------------------


def _psutil_process(record: ProcessRecord) -> Any:
    """The psutil process of ``record`` if it runs (not a zombie) and is the same process."""
    import psutil

    try:
        proc = psutil.Process(record.pid)
        same = abs(proc.create_time() - record.create_time) <= 0.01  # else: the id was reused
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    return running(proc) if same else None


def is_running(record: ProcessRecord) -> bool:
    """Whether the process of ``record`` runs (same id and start time, not a zombie)."""
    return _psutil_process(record) is not None


def stop_process(
    record: ProcessRecord,
    timeout: float = 15.0,
    tree: bool = False,
    ask: Callable[[], Any] | None = None,
) -> str:
    """Stop the process of ``record`` by its id, and the processes it started, with the
    record's stop signal (SIGTERM, or SIGINT for PostgreSQL).

    :func:`uedsteer.plans.processes.stop_process` does the work: ``ask`` first, then the stop
    signal, SIGKILL after ``timeout`` seconds; processes it started that outlive it get
    SIGTERM, then SIGKILL after 5 s.

    Parameters
    ----------
    record : ProcessRecord
        From the state file; a process with its id but another start time is not it.
    timeout : float
        Seconds the request and the stop signal each have to take effect.
    tree : bool
        The stop signal goes to the processes it started too (the RE Manager's watchdog,
        manager and worker).
    ask : callable, optional
        A polite request to end (the RE Manager's ``manager_stop``).

    Returns
    -------
    str
        ``"stopped"``, ``"killed"`` or ``"not running"``.

    Raises
    ------
    FacilityError
        A process still runs after SIGKILL.
    """
    proc = _psutil_process(record)
    if proc is None:
        return "not running"
    try:
        return _stop(
            proc,
            timeout=timeout,
            stop_signal=getattr(signal, record.stop_signal),
            tree=tree,
            ask=ask,
        )
    except StillRunning:
        raise FacilityError(f"{record.name} (pid {record.pid}) still runs after SIGKILL") from None


def _record(
    name: str,
    server: Any,
    address: str,
    ports: list[int] | None = None,
    stop_signal: Literal["SIGTERM", "SIGINT"] = "SIGTERM",
) -> ProcessRecord:
    """The record of a started ``server`` (its ``process``, ``log`` and, unless ``ports`` are
    given, its one ``port``)."""
    import psutil

    return ProcessRecord(
        name=name,
        pid=server.process.pid,
        create_time=psutil.Process(server.process.pid).create_time(),
        address=address,
        ports=ports or [server.port],
        log=server.log,
        stop_signal=stop_signal,
    )


# ---- starting -------------------------------------------------------------------------------


class _Command(ChildServer):
    """A ``uedsteer`` command (``ioc``, ``monitor``) as a detached process: it answers once it
    prints a line starting ``ready`` and its port takes a connection; stopped by SIGTERM, then
    SIGKILL after 15 s.

    Parameters
    ----------
    args : list of str
        The command and its arguments after ``uedsteer``.
    port : int
        The TCP port it listens on.
    log : Path
        Its output (emptied on launch, so that an old ``ready`` does not count).
    folder : Path
        Its working folder.
    env : mapping, optional
        Its environment (default: this process's).
    """

    def __init__(
        self,
        args: list[str],
        port: int,
        log: Path,
        folder: Path,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.what = f"uedsteer {args[0]}"
        self.cmd = [sys.executable, "-m", "uedsteer.controller.cli", *args]
        self.port = port
        self.log = log
        self.folder = folder
        self.env = env
        self.process: subprocess.Popen | None = None

    def launch(self) -> None:
        self._launch(
            self.cmd, fresh_log=True, env=self.env, cwd=self.folder, stdin=subprocess.DEVNULL
        )

    def answers(self) -> bool:
        """Whether it said ``ready`` and its port takes a connection."""
        said = self.log.read_text(errors="replace").splitlines()
        return any(line.startswith("ready") for line in said) and port_open(self.port)

    def wait(self, timeout: float) -> None:
        """Until it :meth:`answers`; stopped if it does not within ``timeout`` seconds."""
        self._wait(self.answers, timeout, f"{LOOPBACK}:{self.port}")


IOC_STATE = "ioc-state.json"
"""The simulated IOC's device state in the facility folder (``uedsteer ioc --state``)."""


class _Ioc(_Command):
    """``uedsteer ioc`` of ``config`` on its Channel Access port (TCP and UDP), its environment
    held to the loopback interface."""

    def __init__(self, config: FacilityConfig, folder: Path, env: Mapping[str, str]) -> None:
        self.prefix = config.prefix
        port = config.ca_port or free_port(udp=True)
        env = {**env, "EPICS_CA_SERVER_PORT": str(port)}
        loopback_environment(env)
        args = ["ioc", "--prefix", config.prefix, "--seed", str(config.seed)]
        # the simulated devices keep their state across an IOC restart, as hardware does
        args += ["--state", str(folder / IOC_STATE)]
        if config.sample is not None:
            args += ["--sample", str(config.sample)]
        super().__init__(args, port, folder / "ioc.log", folder, env)


@contextlib.contextmanager
def _starting(name: str, log: Path | None) -> Iterator[None]:
    """Turn a failure while ``name`` starts into one :class:`FacilityError` naming its log."""
    try:
        yield
    except FacilityError:
        raise
    except (RuntimeError, TimeoutError, OSError, ValueError) as err:
        text = err.headline if isinstance(err, StartFailed) else str(err)  # not the log's tail
        message = " ".join(text.split()) or type(err).__name__
        if log is not None and str(log) not in message:
            message += f"; its log: {log}"
        raise FacilityError(f"{name} failed to start: {message}") from None


def start_monitor(state: FacilityState, port: int | None = None) -> ProcessRecord:
    """Start the browser monitor of the facility (``uedsteer monitor``): a live view of the
    running campaign read from the catalog alone, with the *reader* key, on 127.0.0.1.

    A detached process like the others; it answers once it prints ``ready`` and its port
    takes a connection. :func:`facility_status` and :func:`stop_facility` handle it as any
    other process of the state.

    Parameters
    ----------
    state : FacilityState
        The stack so far (catalog address, reader key, folder, timeout).
    port : int, optional
        Default: a free port.

    Returns
    -------
    ProcessRecord
        Name ``monitor``, address ``http://127.0.0.1:PORT/``.

    Raises
    ------
    FacilityError
        When it does not answer within ``state.open_timeout``; one line naming its log.
    """
    port = port or free_port()
    args = ["monitor", "--catalog", state.catalog_url, "--api-key", state.reader_key]
    monitor = _Command(
        [*args, "--port", str(port)], port, state.folder / "monitor.log", state.folder
    )
    with _starting("the monitor (uedsteer monitor)", monitor.log):
        monitor.launch()
        monitor.wait(state.open_timeout)
    return _record("monitor", monitor, f"http://{LOOPBACK}:{port}/")


def start_facility(config: FacilityConfig, say: Callable[[str], None] = print) -> FacilityState:
    """Start the stack of the module docstring and write its state file.

    Parameters
    ----------
    config : FacilityConfig
        Folder, database, PV prefix, ports.
    say : callable
        Gets one line per process as it answers.

    Returns
    -------
    FacilityState
        Also written to ``FOLDER/facility.json`` (mode 600).

    Raises
    ------
    FacilityError
        A facility already runs from the folder, or a process failed to start (one line naming
        it and its log; everything started is stopped again).
    """
    from .postgres_server import PostgresServer
    from .qserver_manager import REManager
    from .redis_server import RedisServer
    from .served_catalog import ServeConfig, ServedCatalog

    folder = config.folder.expanduser().resolve()
    running = _running_facility(folder)
    if running:
        raise FacilityError(
            f"a facility already runs from {folder} ({running}); stop it first: "
            f"uedsteer facility down --folder {folder}"
        )
    with _starting("the facility's folder", None):
        folder.mkdir(parents=True, exist_ok=True)
        # others may pass through (PostgreSQL runs as its own user when this is root) but not
        # list it; the files with secrets are the owner's only (facility.json, catalog/)
        os.chmod(folder, 0o711)
    loopback_environment()  # this process and every process it starts, before anything starts
    env = dict(os.environ)
    env.pop("EPICS_CA_SERVER_PORT", None)
    journal = folder / "journal"
    records: list[ProcessRecord] = []

    with contextlib.ExitStack() as undo, ThreadPoolExecutor(max_workers=1) as pool:
        # the IOC and the catalog take longest (imports): both are started first, in parallel
        with _starting("uedsteer ioc", folder / "ioc.log"):
            ioc = _Ioc(config, folder, env)
            undo.callback(ioc.stop)
            ioc.launch()
        postgres = None
        if config.postgres:
            postgres = PostgresServer(folder / "postgres")
            undo.callback(postgres.stop)
            with _starting("postgres", postgres.log):
                postgres.start(timeout=config.open_timeout)
            address = f"{LOOPBACK}:{postgres.port}"
            records.append(_record("postgres", postgres, address, stop_signal="SIGINT"))
            say(f"postgres  {LOOPBACK}:{postgres.port}  pid {postgres.pid}")
        with _starting("the catalog", folder / "catalog" / "server.log"):
            if postgres is not None:
                serve = ServeConfig(
                    folder=folder / "catalog",
                    postgres=postgres.uri(),
                    auth_database=postgres.create_database("uedsteer_auth"),
                    port=config.catalog_port,
                )
            else:
                serve = ServeConfig(folder=folder / "catalog", port=config.catalog_port)
        catalog = ServedCatalog(serve)
        undo.callback(catalog.stop)
        catalog_started = pool.submit(catalog.start, config.open_timeout)

        redis = RedisServer(folder=folder / "redis")
        undo.callback(redis.stop)
        with _starting("redis", redis.log):
            redis.start()
        records.append(_record("redis", redis, redis.address))
        say(f"redis     {redis.address}  pid {redis.pid}")

        with _starting("the catalog (tiled serve)", catalog.log):
            catalog_started.result()
        database = (
            f"PostgreSQL {LOOPBACK}:{postgres.port}"
            if postgres is not None
            else f"SQLite {catalog.folder / 'catalog.db'}"
        )
        records.append(_record("catalog", catalog, catalog.url))
        say(f"catalog   {catalog.url}  pid {catalog.process.pid}  ({database})")

        with _starting("uedsteer ioc", ioc.log):
            ioc.wait(config.open_timeout)
        records.append(_record("ioc", ioc, f"ca://{LOOPBACK}:{ioc.port} {ioc.prefix}"))
        say(
            f"ioc       Channel Access {LOOPBACK}:{ioc.port}, prefix {ioc.prefix}  "
            f"pid {ioc.process.pid}"
        )

        manager_env = dict(ioc.env)  # the loopback rule and the IOC's Channel Access port
        manager_env.pop("UEDSTEER_EPICS_PV_MAP", None)
        manager_env.update(
            UEDSTEER_CATALOG=catalog.url,
            TILED_API_KEY=catalog.writer_key,
            UEDSTEER_JOURNAL=str(journal),
            UEDSTEER_EPICS_PREFIX=ioc.prefix,
        )
        manager = REManager(
            redis.address,
            folder / "manager",
            environ=manager_env,
            control_port=config.control_port,
        )
        undo.callback(manager.stop)
        with _starting("the RE Manager", manager.log):
            manager.start(timeout=config.open_timeout)
        ports = [manager.control_port, manager.info_port]
        records.append(_record("manager", manager, manager.control_address, ports))
        say(f"manager   {manager.control_address}  pid {manager.process.pid}; opening its worker")
        with _starting("the RE Worker's environment", manager.log):
            _open_environment(manager.api(), config.open_timeout)
        manager.api().close()  # this process's client; the manager runs on

        state = FacilityState(
            folder=folder,
            started_at=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            processes=records,
            catalog_url=catalog.url,
            database=database,
            writer_key=catalog.writer_key,
            reader_key=catalog.reader_key,
            redis_address=redis.address,
            control_address=manager.control_address,
            info_address=manager.info_address,
            epics_prefix=ioc.prefix,
            ca_port=ioc.port,
            journal=journal,
            open_timeout=config.open_timeout,
        )
        monitor = start_monitor(state, config.monitor_port)
        state.processes.append(monitor)
        say(f"monitor   {monitor.address}  pid {monitor.pid} (the reader key)")
        state.save()
        undo.pop_all()  # everything runs: leave it running
    return state


def _running_facility(folder: Path) -> str:
    """The processes of the facility in ``folder`` that run (``"redis pid 12, …"``), else ''.

    A state file whose processes all ended is removed.
    """
    state = load_state(folder)
    if state is None:
        return ""
    running = [f"{p.name} pid {p.pid}" for p in state.processes if is_running(p)]
    if not running:
        state.path.unlink(missing_ok=True)
    return ", ".join(running)


def _open_environment(api: Any, timeout: float) -> None:
    """Open the RE Worker's environment unless it is open, and wait until it is."""
    status = api.status(reload=True)
    if status["worker_environment_exists"]:
        return
    if status["manager_state"] == "idle":
        api.environment_open()
    try:
        api.wait_for_idle(timeout=timeout)
    except api.WaitTimeoutError:
        raise TimeoutError(f"the RE Worker's environment did not open in {timeout:g} s") from None
    if not api.status(reload=True)["worker_environment_exists"]:
        raise RuntimeError("the RE Worker's environment did not open (the profile failed)")


# ---- status and stopping ----------------------------------------------------------------------


def facility_status(state: FacilityState) -> dict[str, dict[str, Any]]:
    """What runs of the facility ``state`` describes.

    Returns
    -------
    dict
        Name → ``{"record": ProcessRecord, "running": bool, "ports": {port: open}}``, in the
        order the processes started; ``"manager"`` also has ``"queue"``: the RE Manager's
        ``status`` (None when it does not answer).
    """
    out: dict[str, dict[str, Any]] = {}
    for record in state.processes:
        out[record.name] = {
            "record": record,
            "running": is_running(record),
            "ports": {port: port_open(port) for port in record.ports},
        }
    manager = out.get("manager")
    if manager is not None:
        manager["queue"] = None
        if manager["running"]:
            with _manager_api(state) as api, contextlib.suppress(Exception):
                manager["queue"] = api.status(reload=True)
    return out


def stop_facility(
    state: FacilityState, timeout: float = 15.0, say: Callable[[str], None] = print
) -> dict[str, str]:
    """Stop every process of ``state`` by its id, newest first, and remove the state file.

    The RE Manager is first asked to close (``manager_stop``, ``safe_off``: a running plan is
    not finished; the campaign closes the pump shutter on its way out).

    Parameters
    ----------
    state : FacilityState
        From :func:`load_state`.
    timeout : float
        Seconds each process has after its stop signal before SIGKILL.
    say : callable
        Gets one line per process.

    Returns
    -------
    dict
        Name → ``"stopped"``, ``"killed"`` or ``"not running"``.

    Raises
    ------
    FacilityError
        A process still runs after SIGKILL (the state file is kept).
    """
    done: dict[str, str] = {}
    failed: list[str] = []
    for record in reversed(state.processes):
        ask = (lambda: _ask_manager_to_stop(state)) if record.name == "manager" else None
        try:
            done[record.name] = stop_process(record, timeout, tree=ask is not None, ask=ask)
        except FacilityError as err:
            failed.append(str(err))
            done[record.name] = "still running"
        say(f"{record.name:<9} pid {record.pid}: {done[record.name]}")
    if failed:  # the state file stays, so that a second down tries again
        raise FacilityError("; ".join(failed))
    state.path.unlink(missing_ok=True)
    return done


def _ask_manager_to_stop(state: FacilityState) -> None:
    with _manager_api(state) as api:
        api.send_request(method="manager_stop", params={"option": "safe_off"})


@contextlib.contextmanager
def _manager_api(state: FacilityState) -> Iterator[Any]:
    """A ``REManagerAPI`` client of the facility's RE Manager, closed at the end."""
    from bluesky_queueserver_api.zmq import REManagerAPI

    api = REManagerAPI(zmq_control_addr=state.control_address, zmq_info_addr=state.info_address)
    api.user = QUEUE_USER
    try:
        yield api
    finally:
        api.close()


# ---- queue items -------------------------------------------------------------------------------


class ItemOutcome(BaseModel):
    """What became of a queue item."""

    model_config = ConfigDict(extra="forbid")

    item_uid: str = Field(description="the queue item's uid")
    exit_status: str | None = Field(
        description="completed, failed, stopped, aborted, halted; None: not waited for"
    )
    run_uids: list[str] = Field(default_factory=list, description="the runs it wrote")
    msg: str = Field(default="", description="the RE Manager's message (why it failed)")


def queue_item(
    state: FacilityState,
    plan: Literal["uedsteer_campaign", "uedsteer_resume"],
    kwargs: Mapping[str, Any],
    *,
    wait: bool = True,
    timeout: float | None = None,
    say: Callable[[str], None] = print,
) -> ItemOutcome:
    """Queue one uedsteer plan on the facility's RE Manager, start the queue, wait for it.

    The RE Worker's environment is opened first if it is closed. The queue is started unless
    it is already running (then the item waits its turn). A failed item, which the queueserver
    puts back at the front of the queue (under a new uid), is removed from the queue (its
    history entry stays), so that the next start does not run it again.

    Parameters
    ----------
    state : FacilityState
        The running facility.
    plan : str
        ``uedsteer_campaign`` or ``uedsteer_resume``.
    kwargs : mapping
        The plan's parameters (JSON values).
    wait : bool
        Wait until the item is in the history.
    timeout : float, optional
        Seconds to wait (default: no limit).
    say : callable
        Gets a line when the item is queued.

    Returns
    -------
    ItemOutcome

    Raises
    ------
    FacilityError
        The RE Manager does not answer or refuses the item (its message, one line).
    TimeoutError
        Not finished within ``timeout``.
    """
    from bluesky_queueserver_api import BPlan

    manager = state.process("manager")
    if manager is None or not is_running(manager):
        raise FacilityError(
            f"the RE Manager of {state.folder} does not run; see uedsteer facility status "
            f"--folder {state.folder}"
        )
    with _manager_api(state) as api:
        try:
            _open_environment(api, state.open_timeout)
            added = api.item_add(BPlan(plan, **kwargs))
            uid = added["item"]["item_uid"]
            status = api.status(reload=True)
            if status["manager_state"] == "idle":
                api.queue_start()
                say(f"queued {plan} as item {uid}; queue started")
            else:
                say(f"queued {plan} as item {uid}; the RE Manager is {status['manager_state']}")
        except api.RequestFailedError as err:
            message = " ".join(str(err).split()).removeprefix("Request failed: ")
            raise FacilityError(f"the RE Manager refused the item: {message}") from None
        except (TimeoutError, RuntimeError) as err:
            raise FacilityError(f"{' '.join(str(err).split())}; see {manager.log}") from None
        if not wait:
            return ItemOutcome(item_uid=uid, exit_status=None)
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            done = next(
                (i for i in api.history_get(reload=True)["items"] if i["item_uid"] == uid), None
            )
            if done is not None:
                break
            if end is not None and time.monotonic() > end:
                raise TimeoutError(f"item {uid} not finished in {timeout:g} s; it stays queued")
            time.sleep(0.2)
        result = done.get("result", {})
        for item in api.queue_get(reload=True)["items"]:
            # a failed item comes back to the queue under a new uid, with the same result
            again = item.get("result", {}).get("time_start") == result.get("time_start")
            if item["item_uid"] == uid or (item["name"] == plan and again):
                with contextlib.suppress(Exception):
                    api.item_remove(uid=item["item_uid"])
        return ItemOutcome(
            item_uid=uid,
            exit_status=result.get("exit_status"),
            run_uids=list(result.get("run_uids") or []),
            msg=" ".join(str(result.get("msg") or "").split()),
        )


def run_summary(state: FacilityState, uid: str) -> str:
    """The stop reason and shot count of run ``uid``, read with the reader key ('' if the
    catalog does not say)."""
    import httpx

    try:
        r = httpx.get(
            f"{state.catalog_url}/metadata/{uid}",
            headers={"Authorization": f"Apikey {state.reader_key}"},
            timeout=10,
        )
        stop = r.json()["data"]["attributes"]["metadata"]["stop"]
    except Exception:  # noqa: BLE001 - a summary only
        return ""
    shots = (stop.get("num_events") or {}).get("primary")
    reason = stop.get("reason") or stop.get("exit_status", "")
    return f"{shots} shots; {reason}" if shots is not None else str(reason)
