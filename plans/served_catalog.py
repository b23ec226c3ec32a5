"""A Tiled server for a facility: SQL catalog (SQLite or PostgreSQL), writer and reader API keys.

``with ServedCatalog(ServeConfig(folder=...)) as server:`` runs ``tiled serve config`` on
127.0.0.1 with a configuration it writes into the catalog folder (``tiled.yml``):

* the catalog database is ``catalog.db`` in the folder (SQLite, the default) or a PostgreSQL
  database (``postgres=``, e.g. from :class:`~uedsteer.plans.postgres_server.PostgresServer`);
  arrays go to zarr files in ``data/``; event columns (Tiled's tables) go to ``storage.sqlite``
  in the folder with the SQLite catalog, the layout of
  :func:`uedsteer.plans.catalog.local_catalog`, and with a PostgreSQL catalog ``DB`` to the
  database ``DB_storage`` on the same server, with the same user (:attr:`ServedCatalog.
  storage_uri`; created on start if missing and the user may, else a one-line error naming it);
* access control is Tiled's own: an authentication database (``authn.db``, or
  ``auth_database=``) holds principals and hashed API keys; anonymous access is off, so a
  request without a key reads nothing (HTTP 401). On the first start the server's admin (a
  password only this folder knows) makes two service principals and one API key for each,
  restricted by Tiled scopes: the **writer** key (for the RE Manager) may read, create nodes,
  write metadata and data and delete partial runs; the **reader** key (the monitor, scientists)
  only ``read:metadata`` and ``read:data``, so Tiled refuses every write it tries (HTTP 401,
  "Requires scopes ['create:node']" for a new run).

The secrets (admin password, token signing key, the two API keys) are kept in ``access.json``
in the folder, readable by its owner only; later starts reuse them, so the keys stay valid.
The PostgreSQL password is in ``tiled.yml`` (owner-only too), never in what is printed.
Nothing listens beyond 127.0.0.1, and the PostgreSQL address must be 127.0.0.1 too.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import httpx
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from .catalog import BLUESKY_RUNS_SPEC, write_ahead_log
from .postgres_server import STORAGE_SUFFIX
from .processes import LOOPBACK, script_command
from .tiled_server import TiledServer

__all__ = ["READER_SCOPES", "WRITER_SCOPES", "ServeConfig", "ServedCatalog"]

WRITER_SCOPES = (
    "read:metadata",
    "read:data",
    "create:node",
    "write:metadata",
    "write:data",
    "delete:revision",
    "delete:node",
)
"""Tiled scopes of the writer key: what bluesky's TiledWriter and uedsteer's delivery use
(a partial run is deleted and written again whole from the journal)."""

READER_SCOPES = ("read:metadata", "read:data")
"""Tiled scopes of the reader key."""

ADMIN = "admin"
PROVIDER = "local"
ACCESS_FILE = "access.json"


def _check_loopback(argument: str, uri: str) -> None:
    host = urlsplit(uri).hostname
    if host != LOOPBACK:
        raise ValueError(
            f"{argument}={uri!r}: the host is {host!r}; only {LOOPBACK} is allowed (the catalog "
            "talks to no other address)"
        )


class ServeConfig(BaseModel):
    """What :class:`ServedCatalog` (and ``uedsteer serve``) serves, and where."""

    model_config = ConfigDict(extra="forbid")

    folder: Path = Field(
        description="catalog folder: data/ (zarr), catalog.db and storage.sqlite (SQLite "
        "catalog and its event columns), authn.db (keys), access.json (secrets), tiled.yml, "
        "server.log"
    )
    postgres: str | None = Field(
        default=None,
        description="catalog database on PostgreSQL, postgresql://USER:PASSWORD@127.0.0.1:PORT/DB; "
        "its event columns go to DB_storage on the same server (default: SQLite catalog.db and "
        "storage.sqlite in the folder)",
    )
    auth_database: str | None = Field(
        default=None,
        description="Tiled's authentication database (principals, hashed API keys): sqlite:///… "
        "or postgresql://…@127.0.0.1 (default: SQLite authn.db in the folder)",
    )
    port: int | None = Field(
        default=None, ge=1, le=65535, description="TCP port on 127.0.0.1 (default: a free one)"
    )

    @field_validator("postgres", "auth_database")
    @classmethod
    def _sql_on_loopback(cls, value: str | None, info: Any) -> str | None:
        if value is None:
            return value
        scheme = value.split("://", 1)[0]
        allowed = ("postgresql", "postgresql+asyncpg")
        if info.field_name == "auth_database":
            allowed = (*allowed, "sqlite", "sqlite+aiosqlite")
        if scheme not in allowed or "://" not in value:
            raise ValueError(
                f"{info.field_name}={value!r} is not allowed: give a "
                f"{' or '.join(allowed)}:// address"
            )
        if scheme.startswith("postgresql"):
            _check_loopback(info.field_name, value)
            name = unquote(urlsplit(value).path.lstrip("/"))
            if not name:
                raise ValueError(
                    f"{info.field_name}={value!r} names no database: give "
                    "postgresql://USER:PASSWORD@127.0.0.1:PORT/DB"
                )
            if info.field_name == "postgres" and len((name + STORAGE_SUFFIX).encode()) > 63:
                raise ValueError(
                    f"{info.field_name}: the database name {name!r} is too long: at most "
                    f"{63 - len(STORAGE_SUFFIX)} bytes (its event tables go to "
                    f"{name}{STORAGE_SUFFIX})"
                )
            if scheme == "postgresql":  # Tiled's server runs SQLAlchemy's asyncio engine
                value = "postgresql+asyncpg://" + value.split("://", 1)[1]
        return value


class ServedCatalog(TiledServer):
    """``tiled serve config`` on 127.0.0.1 with a SQL catalog and scoped API keys.

    Parameters
    ----------
    config : ServeConfig
        Folder, catalog database, authentication database, port.
    log : str or PathLike, optional
        File for the server's output (default: ``<folder>/server.log``).

    Attributes
    ----------
    writer_key, reader_key : str
        The two API keys (after :meth:`start`).
    """

    def __init__(self, config: ServeConfig, log: str | os.PathLike | None = None) -> None:
        super().__init__(config.folder, port=config.port, log=log)
        self.config = config
        self.api_key = ""  # set to the writer key by start()

    @property
    def access_file(self) -> Path:
        """``access.json``: the secrets (owner-only)."""
        return self.folder / ACCESS_FILE

    def _access(self) -> dict[str, str]:
        if self.access_file.exists():
            return json.loads(self.access_file.read_text())
        return {}

    def _save_access(self, access: dict[str, str]) -> None:
        tmp = self.access_file.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(access, f, indent=2)
        os.replace(tmp, self.access_file)

    @property
    def writer_key(self) -> str:
        """API key of the writer (RE Manager): :data:`WRITER_SCOPES`."""
        return self._access()["writer_key"]

    @property
    def reader_key(self) -> str:
        """API key of readers (monitor, scientists): :data:`READER_SCOPES`."""
        return self._access()["reader_key"]

    @property
    def catalog_uri(self) -> str:
        """The catalog database's address (SQLite file or PostgreSQL)."""
        return self.config.postgres or f"sqlite:///{self.folder / 'catalog.db'}"

    @property
    def storage_uri(self) -> str:
        """Where Tiled writes event columns (tables): its tabular ``writable_storage``.

        ``sqlite:///FOLDER/storage.sqlite`` with the SQLite catalog; with a PostgreSQL catalog
        ``DB`` the database ``DB_storage`` on the same server with the same user and password,
        as ``postgresql://`` (Tiled opens it with ADBC's libpq driver, which takes no
        ``+asyncpg``; the catalog address's query, SQLAlchemy's, is left out).
        """
        if self.config.postgres is None:
            return f"sqlite:///{self.folder / 'storage.sqlite'}"
        return _storage_database_uri(self.config.postgres)

    @property
    def _old_storage(self) -> Path | None:
        """``storage.sqlite`` of a PostgreSQL catalog served before its event columns moved to
        PostgreSQL: still read (Tiled's ``readable_storage``), never written."""
        old = self.folder / "storage.sqlite"
        return old if self.config.postgres is not None and old.exists() else None

    def tiled_config(self, access: dict[str, str]) -> dict[str, Any]:
        """The ``tiled serve config`` configuration (a dict written as ``tiled.yml``)."""
        auth_db = self.config.auth_database or f"sqlite:///{self.folder / 'authn.db'}"
        catalog: dict[str, Any] = {
            "uri": self.catalog_uri,
            "writable_storage": [f"file://{self.folder / 'data'}", self.storage_uri],
        }
        if self._old_storage is not None:
            catalog["readable_storage"] = [f"sqlite:///{self._old_storage}"]
        return {
            "catalog": {
                **catalog,
                "init_if_not_exists": True,
                "specs": [BLUESKY_RUNS_SPEC],
            },
            "authentication": {
                "providers": [
                    {
                        "provider": PROVIDER,
                        "authenticator": "tiled.authenticators:DictionaryAuthenticator",
                        "args": {"users_to_passwords": {ADMIN: access["admin_password"]}},
                    }
                ],
                "tiled_admins": [{"provider": PROVIDER, "id": ADMIN}],
                "secret_keys": [access["secret_key"]],
                "allow_anonymous_access": False,
            },
            "database": {"uri": auth_db, "init_if_not_exists": True},
        }

    def command(self) -> list[str]:
        """The command line that starts the server."""
        return [
            *script_command("tiled"),
            "serve",
            "config",
            str(self.folder / "tiled.yml"),
            "--host",
            LOOPBACK,
            "--port",
            str(self.port),
        ]

    def start(self, timeout: float = 60.0) -> ServedCatalog:
        """Start the server, wait until it answers, make the two keys on the first start.

        Later starts reuse the keys kept in :attr:`access_file`. With a PostgreSQL catalog the
        event-table database (:attr:`storage_uri`) is created first unless it exists.

        Raises
        ------
        ServerExited, NoAnswer
            As :meth:`TiledServer.start <uedsteer.plans.tiled_server.TiledServer.start>`.
        RuntimeError
            The server refused to make the keys; or the event-table database is missing and the
            catalog's user may not create it, or refuses the user (one line naming it).
        """
        (self.folder / "data").mkdir(parents=True, exist_ok=True)
        os.chmod(self.folder / "data", 0o700)
        # the owner's only; where a started PostgreSQL keeps its data inside (it runs as the
        # postgres user when we are root), others may pass through to it but not list the
        # folder: access.json is the owner's only either way
        inside = (self.folder / "postgres").is_dir()
        os.chmod(self.folder, 0o711 if inside else 0o700)
        access = self._access()
        if "admin_password" not in access:
            access = {"admin_password": secrets.token_hex(16), "secret_key": secrets.token_hex(32)}
            self._save_access(access)
        if self.config.postgres is None:
            write_ahead_log(self.folder / "storage.sqlite")
            os.chmod(self.folder / "storage.sqlite", 0o600)
        else:
            _ensure_storage_database(self.config.postgres, self.storage_uri)
            if self._old_storage is not None:
                os.chmod(self._old_storage, 0o600)
        auth_db = self.config.auth_database
        if auth_db and auth_db.startswith("postgresql") and "writer_key" not in access:
            _init_auth_database(auth_db)
        # Tiled logs the catalog's address with its password ("Initializing links store ...")
        os.close(os.open(self.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
        os.chmod(self.log, 0o600)
        config = self.folder / "tiled.yml"
        fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            yaml.safe_dump(self.tiled_config(access), f, sort_keys=False)
        self._serve(timeout)
        try:
            if "writer_key" not in access:
                self._make_keys(access)
        except BaseException:
            self.stop()
            raise
        self.api_key = access["writer_key"]
        return self

    def _make_keys(self, access: dict[str, str]) -> None:
        """Log in as the admin and make a service principal and a scoped key for each role."""
        with httpx.Client(base_url=self.url, timeout=30) as http:
            r = http.post(
                f"/auth/provider/{PROVIDER}/token",
                data={
                    "grant_type": "password",
                    "username": ADMIN,
                    "password": access["admin_password"],
                },
            )
            _raise(r, "admin login")
            http.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
            for role, scopes in (("writer", WRITER_SCOPES), ("reader", READER_SCOPES)):
                r = http.post("/auth/principal", params={"role": "user"})
                _raise(r, f"the {role}'s service principal")
                uuid = r.json()["uuid"]
                r = http.post(
                    f"/auth/principal/{uuid}/apikey",
                    json={"scopes": list(scopes), "expires_in": None, "note": f"uedsteer {role}"},
                )
                _raise(r, f"the {role}'s API key")
                access[f"{role}_key"] = r.json()["secret"]
                access[f"{role}_principal"] = uuid
        self._save_access(access)

    def banner(self) -> str:
        """What ``uedsteer serve`` prints on start: the address, the keys and their scopes."""
        if self.config.postgres:
            db = f"PostgreSQL {_where(self.config.postgres)}"
            tables = f"PostgreSQL {_where(self.storage_uri)}"
        else:
            db = f"SQLite {self.folder / 'catalog.db'}"
            tables = f"SQLite {self.folder / 'storage.sqlite'}"
        return "\n".join(
            [
                f"catalog  {self.url}",
                f"database {db}; event columns in {tables}; arrays in {self.folder / 'data'}",
                f"writer key (RE Manager; {', '.join(WRITER_SCOPES)}):",
                f"  TILED_API_KEY={self.writer_key}",
                f"reader key (monitor, scientists; {', '.join(READER_SCOPES)}):",
                f"  TILED_API_KEY={self.reader_key}",
                f"keys are kept in {self.access_file} (owner only); no key reads nothing",
            ]
        )


def _where(uri: str) -> str:
    """``HOST:PORT/DB`` of a PostgreSQL address: what may be printed (no user, no password)."""
    parts = urlsplit(uri)
    return f"{parts.hostname}:{parts.port or 5432}/{unquote(parts.path.lstrip('/'))}"


def _storage_database_uri(catalog: str) -> str:
    """The ``postgresql://`` address of the event-table database ``DB_storage`` of ``catalog``
    (``postgresql[+asyncpg]://USER:PASSWORD@HOST:PORT/DB``), without the catalog's query."""
    parts = urlsplit(catalog)
    name = unquote(parts.path.lstrip("/")) + STORAGE_SUFFIX
    return urlunsplit(("postgresql", parts.netloc, "/" + quote(name, safe=""), "", ""))


def _libpq_error(err: Exception) -> str:
    """The PostgreSQL server's own words in an ADBC error (one line, no address)."""
    line = (str(err).strip().splitlines() or [type(err).__name__])[0]
    for mark in ("FATAL:", "ERROR:"):
        if mark in line:
            line = line.rsplit(mark, 1)[1]
    return " ".join(line.split())


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _ensure_storage_database(catalog: str, storage: str) -> None:
    """Create the event-table database ``storage`` unless it is there.

    Connects to it as Tiled will (ADBC, libpq); if that fails, connects to the ``catalog``
    database with the same credentials and creates it (``CREATE DATABASE``, which needs the
    ``CREATEDB`` privilege or a superuser).

    Raises
    ------
    RuntimeError
        One line naming the database: the catalog's server cannot be reached, the database is
        missing and the user may not create it (with the command an administrator runs), or it
        exists and refuses the user.
    """
    import adbc_driver_postgresql.dbapi as adbc
    from adbc_driver_manager import Error

    parts = urlsplit(storage)
    name = unquote(parts.path.lstrip("/"))
    user = unquote(parts.username or "")
    where = f"{parts.hostname}:{parts.port or 5432}"
    try:
        adbc.connect(storage).close()
        return
    except Error as err:
        refused = _libpq_error(err)
    catalog_db = urlunsplit(("postgresql", *urlsplit(catalog)[1:3], "", ""))
    try:
        con = adbc.connect(catalog_db, autocommit=True)
    except Error as err:
        raise RuntimeError(
            f"postgres: the catalog database {_where(catalog)} refuses a connection: "
            f"{_libpq_error(err)}"
        ) from None
    try:
        with con.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = $1", parameters=(name,))
            if cur.fetchall():
                raise RuntimeError(
                    f"postgres: the event-table database {name!r} on {where} refuses user "
                    f"{user!r}: {refused}"
                )
            try:
                cur.execute(f"CREATE DATABASE {_identifier(name)}")
            except Error as err:
                if getattr(err, "sqlstate", None) == "42P04":  # made meanwhile by another
                    return
                if getattr(err, "sqlstate", None) == "42501":
                    raise RuntimeError(
                        f"postgres: the event-table database {name!r} does not exist on {where} "
                        f"and user {user!r} may not create it; a PostgreSQL superuser runs: "
                        f"CREATE DATABASE {_identifier(name)} OWNER {_identifier(user)}"
                    ) from None
                raise RuntimeError(
                    f"postgres: cannot create the event-table database {name!r} on {where}: "
                    f"{_libpq_error(err)}"
                ) from None
    finally:
        con.close()


def _init_auth_database(uri: str) -> None:
    """Create Tiled's authentication tables in ``uri`` unless they are there.

    The steps of ``tiled admin initialize-database``. Tiled's server would run that command
    itself (``init_if_not_exists``), but passes it the address with the password masked
    (``***``), which a PostgreSQL with a password refuses. Runs in a worker thread with its
    own event loop.
    """
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from sqlalchemy.ext.asyncio import create_async_engine
    from tiled.alembic_utils import UninitializedDatabase, check_database, stamp_head
    from tiled.authn_database.alembic_constants import ALEMBIC_DIR, ALEMBIC_INI_TEMPLATE_PATH
    from tiled.authn_database.core import ALL_REVISIONS, REQUIRED_REVISION, initialize_database

    async def create_tables() -> bool:
        engine = create_async_engine(uri)
        try:
            await check_database(engine, REQUIRED_REVISION, ALL_REVISIONS)
            return False
        except UninitializedDatabase:
            await initialize_database(engine)
            return True
        finally:
            await engine.dispose()

    def create() -> None:
        if asyncio.run(create_tables()):
            stamp_head(ALEMBIC_INI_TEMPLATE_PATH, ALEMBIC_DIR, uri)

    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(create).result()


def _raise(response: httpx.Response, what: str) -> None:
    if response.status_code >= 400:
        raise RuntimeError(
            f"tiled refused {what}: HTTP {response.status_code} {response.text[:200]}"
        )
