"""Start and stop a PostgreSQL server on 127.0.0.1: a facility's catalog database, and the tests'.

``with PostgresServer(folder) as pg: pg.uri("uedsteer")`` makes a database cluster in
``folder/pgdata`` (``initdb``, once), starts ``postgres`` on a free port of 127.0.0.1 with its
Unix socket in ``folder`` (no other address is listened on), waits until it answers, creates the
database and its event-table database (``uedsteer_storage``: Tiled's tabular storage, see
:data:`STORAGE_SUFFIX`) and stops the server by its process id at the end. Connections need the
password that ``initdb`` was given (``folder/password``, readable by its owner only; SCRAM
authentication, no ``trust``).

The binaries are Debian's (``apt-get install postgresql``: ``/usr/lib/postgresql/<version>/bin``),
else those on the ``PATH``, else the folder named by the ``UEDSTEER_POSTGRES_BIN`` environment
variable, which wins when set. PostgreSQL refuses to run as root: as root the server runs as the
system user ``postgres`` (Debian's package makes it) or else ``nobody``, and the folder is given
to that user.
"""

from __future__ import annotations

import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from .processes import LOOPBACK, ChildServer, free_port, stop_process

__all__ = ["LOOPBACK", "STORAGE_SUFFIX", "PostgresServer", "postgres_bin_dir"]

BIN_ENV = "UEDSTEER_POSTGRES_BIN"
"""Environment variable: the folder holding ``initdb``, ``postgres``, ``pg_isready``, ``psql``."""

NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
"""A database or role name this module accepts (lower-case SQL identifiers, no quoting)."""

STORAGE_SUFFIX = "_storage"
"""The event-table database of a catalog database ``DB`` is ``DB_storage`` on the same server:
Tiled's tabular ``writable_storage`` when the catalog is on PostgreSQL."""

_TOOLS = ("initdb", "postgres", "pg_isready", "psql")


def _has_tools(folder: Path) -> bool:
    return all((folder / tool).is_file() and os.access(folder / tool, os.X_OK) for tool in _TOOLS)


def postgres_bin_dir() -> Path:
    """The folder of the PostgreSQL server binaries to run (module docstring).

    Returns
    -------
    Path
        A folder holding ``initdb``, ``postgres``, ``pg_isready`` and ``psql``.

    Raises
    ------
    FileNotFoundError
        One line naming the fix (``apt-get install postgresql``).
    """
    given = os.environ.get(BIN_ENV)
    if given:
        folder = Path(given)
        if not _has_tools(folder):
            raise FileNotFoundError(
                f"{BIN_ENV}={given!r} holds no PostgreSQL binaries ({', '.join(_TOOLS)})"
            )
        return folder
    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    for folder in debian:
        if _has_tools(folder):
            return folder
    found = shutil.which("postgres")
    if found and _has_tools(Path(found).resolve().parent):
        return Path(found).resolve().parent
    raise FileNotFoundError(
        "no PostgreSQL server binaries (initdb, postgres): apt-get install postgresql, or set "
        f"{BIN_ENV} to the folder that holds them"
    )


def _check_name(argument: str, value: str) -> str:
    if not isinstance(value, str) or not NAME.fullmatch(value):
        raise ValueError(
            f"{argument}={value!r} is not allowed: use lower-case letters, digits and _, "
            "starting with a letter or _ (at most 63 characters)"
        )
    return value


def _run_as() -> pwd.struct_passwd | None:
    """The system user the server runs as when this process is root (None otherwise)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise PermissionError("PostgreSQL refuses to run as root, and there is no user postgres")


class PostgresServer(ChildServer):
    """A ``postgres`` subprocess listening on 127.0.0.1 only.

    Parameters
    ----------
    folder : str or PathLike, optional
        Holds the cluster (``pgdata/``), the socket, ``password`` and ``postgres.log``; kept
        between starts. Default: a new temporary folder.
    port : int, optional
        Default: a free port.
    database : str
        Created on start if missing, with its event-table database :attr:`storage_database`
        (at most 55 characters, so that the latter fits PostgreSQL's 63).
    user : str
        The database superuser that ``initdb`` makes (and :meth:`uri` connects as).

    Attributes
    ----------
    process : subprocess.Popen or None
        The running server.
    """

    what = "postgres"

    def __init__(
        self,
        folder: str | os.PathLike | None = None,
        port: int | None = None,
        database: str = "uedsteer",
        user: str = "uedsteer",
    ) -> None:
        self.database = _check_name("database", database)
        if len(database + STORAGE_SUFFIX) > 63:
            raise ValueError(
                f"database={database!r} is too long: at most {63 - len(STORAGE_SUFFIX)} "
                f"characters (its event tables go to {database}{STORAGE_SUFFIX})"
            )
        self.user = _check_name("user", user)
        if port is not None and not (isinstance(port, int) and 0 < port < 65536):
            raise ValueError(f"port={port!r} is not allowed: give an integer 1..65535")
        self.folder = (
            Path(folder).resolve()
            if folder
            else Path(tempfile.mkdtemp(prefix="uedsteer-pg-", dir="/tmp"))
        )
        self.port = port or free_port()
        self.log = self.folder / "postgres.log"
        self.process: subprocess.Popen | None = None
        self._bin = postgres_bin_dir()

    @property
    def pgdata(self) -> Path:
        """The cluster's data folder."""
        return self.folder / "pgdata"

    @property
    def storage_database(self) -> str:
        """The database of event tables (Tiled's tabular storage): ``<database>_storage``."""
        return self.database + STORAGE_SUFFIX

    @property
    def password(self) -> str:
        """The password of :attr:`user` (made on the first start)."""
        return (self.folder / "password").read_text().strip()

    def uri(self, database: str | None = None, driver: str = "postgresql+asyncpg") -> str:
        """The SQLAlchemy address of a database, e.g. for Tiled's ``catalog`` ``uri``.

        Parameters
        ----------
        database : str, optional
            Default: the server's :attr:`database`.
        driver : str
            URI scheme; ``postgresql`` for tools other than SQLAlchemy's asyncio engine.
        """
        name = _check_name("database", database or self.database)
        return f"{driver}://{self.user}:{self.password}@{LOOPBACK}:{self.port}/{name}"

    def _tool(self, name: str) -> str:
        return str(self._bin / name)

    def _client_env(self) -> dict[str, str]:
        return {**os.environ, "PGPASSWORD": self.password, "PGCONNECT_TIMEOUT": "5"}

    def _initdb(self, owner: pwd.struct_passwd | None) -> None:
        pwfile = self.folder / "password"
        if not pwfile.exists():
            pwfile.write_text(secrets.token_hex(16) + "\n")
            pwfile.chmod(0o600)
        if owner is not None:
            for path in (self.folder, pwfile):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        cmd = [
            self._tool("initdb"),
            "-D",
            str(self.pgdata),
            "-U",
            self.user,
            "--pwfile",
            str(pwfile),
            "--auth-local=scram-sha-256",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            "--no-locale",
        ]
        res = subprocess.run(cmd, capture_output=True, text=True, **self._as(owner))
        if res.returncode != 0:
            last = (res.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise RuntimeError(f"initdb {self.pgdata} failed: {last}")

    @staticmethod
    def _as(owner: pwd.struct_passwd | None) -> dict:
        return {} if owner is None else {"user": owner.pw_uid, "group": owner.pw_gid}

    def command(self) -> list[str]:
        """The command line that starts the server (127.0.0.1 only, socket in the folder)."""
        return [
            self._tool("postgres"),
            "-D",
            str(self.pgdata),
            "-p",
            str(self.port),
            "-c",
            f"listen_addresses={LOOPBACK}",
            "-c",
            f"unix_socket_directories={self.folder}",
        ]

    def ready(self) -> bool:
        """Whether the server accepts connections on 127.0.0.1 (``pg_isready``)."""
        res = subprocess.run(
            [self._tool("pg_isready"), "-q", "-h", LOOPBACK, "-p", str(self.port), "-t", "2"],
            capture_output=True,
        )
        return res.returncode == 0

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run one SQL command as :attr:`user` over 127.0.0.1; returns its unaligned output.

        Raises
        ------
        RuntimeError
            The command failed (its last line of error).
        """
        cmd = [
            self._tool("psql"),
            "-X",
            "-q",
            "-tA",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            LOOPBACK,
            "-p",
            str(self.port),
            "-U",
            self.user,
            "-d",
            database,
            "-c",
            sql,
        ]
        res = subprocess.run(cmd, capture_output=True, text=True, env=self._client_env())
        if res.returncode != 0:
            last = (res.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise RuntimeError(f"psql on {LOOPBACK}:{self.port}: {last}")
        return res.stdout.strip()

    def create_database(self, name: str) -> str:
        """Create database ``name`` unless it exists; returns its :meth:`uri`."""
        _check_name("database", name)
        if not self.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'"):
            self.psql(f"CREATE DATABASE {name}")
        return self.uri(name)

    def start(self, timeout: float = 60.0) -> PostgresServer:
        """Make the cluster if needed, start the server, wait for it, create the database and
        its event-table database :attr:`storage_database` unless they exist.

        Raises
        ------
        RuntimeError
            ``initdb`` failed (its last line of error).
        ServerExited, NoAnswer
            As :meth:`ChildServer.start <uedsteer.plans.processes.ChildServer.start>`.
        """
        owner = _run_as()
        self.folder.mkdir(parents=True, exist_ok=True)
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb(owner)
        self._launch(self.command(), **self._as(owner))
        self._wait(self.ready, timeout, f"{LOOPBACK}:{self.port}")
        self.create_database(self.database)
        self.create_database(self.storage_database)
        return self

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the server by its pid: SIGINT (fast shutdown), then SIGKILL to its process
        group after ``timeout`` seconds."""
        if self.process is not None:
            stop_process(self.process, timeout=timeout, stop_signal=signal.SIGINT, group=True)
