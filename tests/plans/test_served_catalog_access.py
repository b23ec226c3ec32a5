"""The served catalog at a facility: a real PostgreSQL, a real ``tiled serve`` with scoped keys.

Every server here is a real process on 127.0.0.1, started once for the module and stopped by
PID: PostgreSQL (Debian's binaries), Tiled serving a PostgreSQL catalog (its event columns in
PostgreSQL too), and ``uedsteer serve`` on the SQLite default. The writer key writes a simulated
campaign through uedsteer's own catalog writing; the reader key reads every shot back and is
refused every write; no key reads nothing.
"""

import os
import shutil
import signal
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest
from bluesky import RunEngine
from helpers import run_main

from uedsteer.controller.config import CampaignConfig
from uedsteer.plans import acquire_frames, read_frames, subscribe
from uedsteer.plans.catalog import connect_catalog
from uedsteer.plans.postgres_server import PostgresServer, postgres_bin_dir
from uedsteer.plans.served_catalog import READER_SCOPES, ServeConfig, ServedCatalog
from uedsteer.plans.simulate import simulate_campaign
from uedsteer.sim_devices.beamline import FrameRenderer, SimulatedBeamline

try:
    postgres_bin_dir()
    NO_POSTGRES = None
except FileNotFoundError as err:
    NO_POSTGRES = str(err)

needs_postgres = pytest.mark.skipif(NO_POSTGRES is not None, reason=NO_POSTGRES or "")


@pytest.fixture(scope="module", autouse=True)
def journal(tmp_path_factory):
    """Journals of the served catalogs in this module's own folder, not the user's."""
    folder = tmp_path_factory.mktemp("journal")
    saved = os.environ.get("UEDSTEER_JOURNAL")
    os.environ["UEDSTEER_JOURNAL"] = str(folder)
    yield folder
    if saved is None:
        os.environ.pop("UEDSTEER_JOURNAL", None)
    else:
        os.environ["UEDSTEER_JOURNAL"] = saved


@pytest.fixture(scope="module")
def postgres():
    pg = PostgresServer().start()  # its own folder under /tmp: the postgres user must reach it
    yield pg
    pg.stop()
    assert pg.process.poll() is not None, "postgres stopped by its pid"
    shutil.rmtree(pg.folder, ignore_errors=True)


@pytest.fixture(scope="module")
def served(postgres, tmp_path_factory):
    config = ServeConfig(
        folder=tmp_path_factory.mktemp("served"),
        postgres=postgres.uri(),
        auth_database=postgres.create_database("uedsteer_auth"),
    )
    with ServedCatalog(config) as server:
        yield server
    assert server.process.poll() is not None


def _small_beamline(seed=0):
    return SimulatedBeamline(seed=seed, n_spots=4, renderer=FrameRenderer(supercell=(20, 12)))


def _wait_for(predicate, timeout=30.0):
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.1)


@needs_postgres
def test_postgres_listens_on_loopback_only_and_holds_the_catalog(postgres, served):
    assert postgres.psql("SHOW listen_addresses") == "127.0.0.1"
    assert postgres.psql("SELECT current_user") == "uedsteer"
    names = postgres.psql("SELECT datname FROM pg_database").split()
    assert {"uedsteer", "uedsteer_auth", "uedsteer_storage"} <= set(names)
    # Tiled made its tables there: the catalog and the keys live in PostgreSQL, no SQLite file
    assert "nodes" in postgres.psql("SELECT tablename FROM pg_tables", "uedsteer").split()
    assert "api_keys" in postgres.psql("SELECT tablename FROM pg_tables", "uedsteer_auth").split()
    for sqlite_file in ("catalog.db", "authn.db", "storage.sqlite"):
        assert not (served.folder / sqlite_file).exists(), sqlite_file
    assert served.storage_uri == postgres.uri("uedsteer_storage", driver="postgresql")
    # the files that hold the password (tiled.yml; Tiled logs the catalog's address) or keys
    for secret in (served.access_file, served.folder / "tiled.yml", served.log):
        assert oct(os.stat(secret).st_mode & 0o777) == "0o600", secret
    assert postgres.password not in served.banner()


@needs_postgres
def test_writer_writes_a_campaign_and_the_reader_reads_every_shot(served, postgres):
    writer = connect_catalog(served.url, api_key=served.writer_key)
    bl = SimulatedBeamline(seed=2)  # full frames: the heating reading needs them
    rec = simulate_campaign(CampaignConfig(budget=3, target=2.0), catalog=writer, beamline=bl)
    assert len(rec) == 3, rec.stop_reason
    reader = connect_catalog(served.url, api_key=served.reader_key)
    _wait_for(lambda: len(reader) >= 1 and "stop" in (reader.values().last().metadata or {}))
    run = reader.values().last()
    shots = np.asarray(run["primary"]["campaign_shot"].read()).tolist()
    assert shots == [0, 1, 2], "every shot, once, read with the reader key"
    frames = read_frames(run)
    assert frames.shape[0] == 3 and np.isfinite(frames).all() and frames.max() > 0
    fluence = np.asarray(run["primary"]["pump_fluence"].read())
    assert np.allclose(fluence, [t.settings["fluence"] for t in rec.trials])
    assert run.metadata["stop"]["reason"] == rec.stop_reason
    uid = run.metadata["start"]["uid"]
    count = f"SELECT count(*) FROM nodes WHERE key = '{uid}'"
    assert postgres.psql(count, "uedsteer") == "1", "the run's node is a PostgreSQL row"
    # the event columns are rows of a table in the event-table database, nowhere else
    (source,) = run["primary"].base["internal"].data_sources()
    table, dataset = source.parameters["table_name"], source.parameters["dataset_id"]
    rows = postgres.psql(
        f'SELECT campaign_shot FROM "{table}" WHERE _dataset_id = {int(dataset)} '
        "ORDER BY campaign_shot",
        "uedsteer_storage",
    )
    assert rows.split() == ["0", "1", "2"]
    assert not (served.folder / "storage.sqlite").exists()
    assets = postgres.psql("SELECT data_uri FROM assets", "uedsteer").split()
    assert f"postgresql://127.0.0.1:{postgres.port}/uedsteer_storage" in assets
    assert not any(postgres.password in a or "sqlite" in a for a in assets)


@needs_postgres
def test_the_reader_key_cannot_write(served):
    from tiled.client import from_uri

    reader = from_uri(served.url, api_key=served.reader_key)
    with pytest.raises(httpx.HTTPStatusError) as err:
        reader.create_container("intruder")
    assert err.value.response.status_code == 401
    assert "create:node" in err.value.response.text
    assert "intruder" not in from_uri(served.url, api_key=served.writer_key)
    # uedsteer's writing refuses the key before anything fires, naming what it lacks
    RE = RunEngine({})
    with pytest.raises(ValueError, match="may not write runs") as refused:
        subscribe(RE, connect_catalog(served.url, api_key=served.reader_key))
    message = str(refused.value)
    assert "\n" not in message and all(s in message for s in READER_SCOPES)
    assert "writer" in message
    # the writer's own run cannot be changed or deleted with it either
    writer = connect_catalog(served.url, api_key=served.writer_key)
    RE = RunEngine({})
    subscribe(RE, writer)
    (uid,) = RE(acquire_frames(_small_beamline(), n=1))
    _wait_for(lambda: uid in reader)
    with pytest.raises(httpx.HTTPStatusError) as err:
        reader[uid].update_metadata({"sample": "changed"})
    assert err.value.response.status_code == 401
    with pytest.raises(httpx.HTTPStatusError):
        reader[uid].delete(recursive=True, external_only=False)
    assert uid in reader and "sample" not in reader[uid].metadata


@needs_postgres
def test_no_key_reads_nothing(served):
    for path in ("/search/", "/metadata/"):
        r = httpx.get(served.url + path)
        assert r.status_code == 401, path
        assert "shots" not in r.text and "uid" not in r.text
    wrong = httpx.get(served.url + "/search/", headers={"Authorization": "Apikey " + "ab" * 36})
    assert wrong.status_code == 401
    env_key = os.environ.pop("TILED_API_KEY", None)
    try:
        with pytest.raises(ValueError, match="requires an API key"):
            connect_catalog(served.url)
    finally:
        if env_key is not None:
            os.environ["TILED_API_KEY"] = env_key


@needs_postgres
def test_an_event_table_database_the_user_may_not_create_is_one_line(postgres, tmp_path):
    postgres.psql("CREATE ROLE limited LOGIN PASSWORD 'limited-pw'")  # no CREATEDB
    postgres.create_database("limited_cat")  # without limited_cat_storage
    uri = f"postgresql://limited:limited-pw@127.0.0.1:{postgres.port}/limited_cat"
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:  # uedsteer serve, in this process: it sets its own signal handlers
        res = run_main(["serve", str(tmp_path / "cat"), "--postgres", uri])
    finally:
        for s, handler in handlers.items():
            signal.signal(s, handler)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.count("\n") == 1, res.stderr
    assert "'limited_cat_storage' does not exist" in res.stderr
    assert 'CREATE DATABASE "limited_cat_storage" OWNER "limited"' in res.stderr
    assert "limited-pw" not in res.stderr
    assert not (tmp_path / "cat" / "tiled.yml").exists(), "no tiled started"
    # a user who may create databases gets it made, with the catalog's credentials
    from uedsteer.plans.served_catalog import _ensure_storage_database

    postgres.psql("ALTER ROLE limited CREATEDB")
    served = ServedCatalog(ServeConfig(folder=tmp_path / "cat", postgres=uri))
    _ensure_storage_database(served.config.postgres, served.storage_uri)
    owner = "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'limited_cat_storage'"
    assert postgres.psql(owner) == "limited"


def test_event_columns_go_beside_the_catalog(tmp_path):
    access = {"admin_password": "a", "secret_key": "s"}
    sqlite = ServedCatalog(ServeConfig(folder=tmp_path))
    storage = sqlite.tiled_config(access)["catalog"]["writable_storage"]
    assert storage == [f"file://{tmp_path}/data", f"sqlite:///{tmp_path}/storage.sqlite"]
    uri = "postgresql://u:p%40ss@127.0.0.1:5433/cat?prepared_statement_cache_size=0"
    pg = ServedCatalog(ServeConfig(folder=tmp_path, postgres=uri))
    # Tiled's ADBC storage wants postgresql:// (not +asyncpg) and libpq takes no SQLAlchemy query
    assert pg.storage_uri == "postgresql://u:p%40ss@127.0.0.1:5433/cat_storage"
    catalog = pg.tiled_config(access)["catalog"]
    assert catalog["writable_storage"] == [f"file://{tmp_path}/data", pg.storage_uri]
    assert "readable_storage" not in catalog
    # a folder served before the move keeps its old event columns readable, never written
    (tmp_path / "storage.sqlite").touch()
    catalog = pg.tiled_config(access)["catalog"]
    assert catalog["readable_storage"] == [f"sqlite:///{tmp_path}/storage.sqlite"]
    assert catalog["writable_storage"][1] == pg.storage_uri
    with pytest.raises(ValueError, match="names no database"):
        ServeConfig(folder=tmp_path, postgres="postgresql://u:p@127.0.0.1:5432")
    with pytest.raises(ValueError, match="at most 55 bytes"):
        ServeConfig(folder=tmp_path, postgres="postgresql://u:p@127.0.0.1:5432/" + "c" * 56)


def test_serve_config_refuses_other_addresses(tmp_path):
    with pytest.raises(ValueError, match="only 127.0.0.1 is allowed"):
        ServeConfig(folder=tmp_path, postgres="postgresql://u:p@10.1.2.3:5432/cat")
    with pytest.raises(ValueError, match="postgres='mysql://x'"):
        ServeConfig(folder=tmp_path, postgres="mysql://x")
    with pytest.raises(ValueError, match="extra"):
        ServeConfig(folder=tmp_path, host="0.0.0.0")
    c = ServeConfig(folder=tmp_path, postgres="postgresql://u:p@127.0.0.1:5432/cat")
    assert c.postgres.startswith("postgresql+asyncpg://")


def test_serve_refuses_bad_arguments_in_one_line(tmp_path):
    res = run_main(["serve", str(tmp_path), "--postgres", "postgresql://u:p@example.org/cat"])
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.count("\n") == 1
    assert "--postgres" in res.stderr or "postgres=" in res.stderr
    assert "127.0.0.1" in res.stderr
    res = run_main(["serve", str(tmp_path), "--port", "70000"])
    assert res.returncode == 2 and "--port=70000" in res.stderr and "65535" in res.stderr
    assert not (tmp_path / "tiled.yml").exists(), "nothing started"


@pytest.fixture(scope="module", autouse=True)
def serve_command(tmp_path_factory):
    """``uedsteer serve FOLDER`` as a real process, started first: it boots (imports, the
    server) while the other tests run."""
    folder = tmp_path_factory.mktemp("serve_command") / "catalog"
    proc = subprocess.Popen(
        [sys.executable, "-m", "uedsteer.controller.cli", "serve", str(folder)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    yield proc, folder
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)


def test_uedsteer_serve_on_the_sqlite_default(serve_command):
    """The command a facility runs: keys printed on start, SQLite catalog, SIGTERM stops it."""
    proc, folder = serve_command
    try:
        lines = []
        while not lines or lines[-1] != "ready":
            line = proc.stdout.readline()
            assert line, f"uedsteer serve ended: {proc.stderr.read()}"
            lines.append(line.strip())
        url = next(ln.split()[1] for ln in lines if ln.startswith("catalog "))
        keys = [ln.split("=", 1)[1] for ln in lines if ln.startswith("TILED_API_KEY=")]
        assert url.startswith("http://127.0.0.1:") and len(keys) == 2
        writer_key, reader_key = keys
        assert (folder / "catalog.db").exists() and (folder / "authn.db").exists()
        RE = RunEngine({})
        subscribe(RE, connect_catalog(url, api_key=writer_key))
        bl = _small_beamline(seed=1)
        (uid,) = RE(acquire_frames(bl, n=2))
        reader = connect_catalog(url, api_key=reader_key)
        _wait_for(lambda: uid in reader and len(read_frames(reader[uid])) == 2)
        assert np.isfinite(read_frames(reader[uid])).all()
        with pytest.raises(ValueError, match="may not write runs"):
            subscribe(RunEngine({}), reader)
        assert httpx.get(url + "/search/").status_code == 401
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "uedsteer serve: stopped" in out
    with pytest.raises(httpx.TransportError):
        httpx.get(url + "/", timeout=2)
