"""Where logging meets the outside world: a real ``tiled serve`` process, kills, signals, pauses.

Every server here is a real ``tiled serve catalog`` subprocess on 127.0.0.1 with an API key,
stopped by PID; every campaign that is killed is a real process.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest
from bluesky import RunEngine
from bluesky.utils import RunEngineInterrupted
from helpers import run_main

from uedsteer.controller.campaign import Campaign
from uedsteer.controller.config import CampaignConfig
from uedsteer.plans import acquire_frames, event_columns, read_frames, subscribe
from uedsteer.plans.campaign import campaign
from uedsteer.plans.catalog import local_catalog, open_catalog, scan_id_source
from uedsteer.plans.delivery import LAG_SECONDS, CatalogDelivery
from uedsteer.plans.journal import DocumentJournal, pending
from uedsteer.plans.resume import resume_campaign
from uedsteer.plans.simulate import simulate_campaign
from uedsteer.plans.tiled_server import TiledServer
from uedsteer.sim_devices.beamline import FrameRenderer, SimulatedBeamline
from uedsteer.surrogates.scorer import FrameScorer

UEDSTEER = [sys.executable, "-m", "uedsteer.controller.cli"]


@pytest.fixture(scope="module")
def scorer():
    return FrameScorer.pretrained()


@pytest.fixture
def journal(tmp_path, monkeypatch):
    folder = tmp_path / "journal"
    monkeypatch.setenv("UEDSTEER_JOURNAL", str(folder))
    return folder


def _small_beamline(seed=0):
    return SimulatedBeamline(seed=seed, n_spots=4, renderer=FrameRenderer(supercell=(20, 12)))


def test_a_moved_catalog_folder_serves_its_frames(tmp_path):
    client = local_catalog(tmp_path / "cat")
    RE = RunEngine({})
    subscribe(RE, client)
    (uid,) = RE(acquire_frames(_small_beamline(), n=2))
    frames = read_frames(client[uid])
    shutil.copytree(tmp_path / "cat", tmp_path / "copy")
    shutil.move(tmp_path / "cat", tmp_path / "moved")
    for folder in ("copy", "moved"):
        again = read_frames(local_catalog(tmp_path / folder)[uid])
        assert np.array_equal(again, frames), folder


def test_scan_ids_count_on_across_run_engines(tmp_path):
    client = local_catalog(tmp_path / "cat")
    ids = []
    for _ in range(2):  # two sessions, one after the other
        RE = RunEngine({}, scan_id_source=scan_id_source(client))
        subscribe(RE, client)
        for _ in range(2):
            (uid,) = RE(acquire_frames(_small_beamline(), n=1))
            ids.append(client[uid].metadata["start"]["scan_id"])
    assert ids == [1, 2, 3, 4]
    assert client[3].metadata["start"]["scan_id"] == 3


def test_subscribing_twice_writes_each_run_once(tmp_path):
    client = local_catalog(tmp_path / "cat")
    RE = RunEngine({})
    assert subscribe(RE, client) == subscribe(RE, client)
    RE(acquire_frames(_small_beamline(), n=2))
    RE(acquire_frames(_small_beamline(), n=1))
    assert len(client) == 2
    with pytest.raises(ValueError, match="another catalog"):
        subscribe(RE, local_catalog(tmp_path / "other"))


def test_a_paused_campaign_waits_with_the_shutter_closed(scorer, tmp_path):
    """Ctrl-C in IPython pauses the RunEngine: the shutter must not stay open meanwhile."""
    client = local_catalog(tmp_path / "cat")
    RE = RunEngine({})  # with bluesky's Ctrl-C handler, as in IPython
    subscribe(RE, client)
    bl = SimulatedBeamline(seed=4)
    camp = Campaign(CampaignConfig(budget=5, target=2.0))
    shutter_at_shot = []

    def on_shot(trial):
        shutter_at_shot.append(bl.pump.shutter.get())
        if trial.index == 1:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C: pause at the next checkpoint
            time.sleep(0.5)

    with pytest.raises(RunEngineInterrupted):
        RE(campaign(bl, scorer, camp, on_shot=on_shot))
    assert RE.state == "paused"
    assert bl.pump.shutter.get() == "closed", "paused with the pump on the sample"
    RE.resume()
    assert len(camp.record) == 5
    assert shutter_at_shot == ["open"] * 5, "every shot after the pause is pumped again"
    assert bl.pump.shutter.get() == "closed"
    run = client.values().last()
    assert np.asarray(run["primary"]["campaign_shot"].read()).tolist() == [0, 1, 2, 3, 4]


def test_a_document_of_a_run_delivered_already_is_passed_over(tmp_path):
    """A probe that finds the catalog back delivers the whole run from its journal, stop
    included; the run's documents still queued then belong to no run, and the delivery goes
    on to the next run rather than ending its thread."""
    client = local_catalog(tmp_path / "cat")
    delivery = CatalogDelivery(client, tmp_path / "journal")
    delivery._queue.put(("a-run-delivered-already", 7, "event", {}))
    RE = RunEngine({})
    RE.subscribe(delivery)
    (uid,) = RE(acquire_frames(_small_beamline(), n=2))
    assert delivery.flush(30) and delivery._thread.is_alive()
    assert len(read_frames(client[uid])) == 2


def test_kill_minus_nine_loses_no_document(tmp_path):
    script = textwrap.dedent(
        """
        import sys
        from bluesky import RunEngine
        from uedsteer.plans import acquire_frames, local_catalog, subscribe
        from uedsteer.sim_devices.beamline import FrameRenderer, SimulatedBeamline
        RE = RunEngine({})
        subscribe(RE, local_catalog(sys.argv[1]))
        RE.subscribe(lambda n, d: print("event", d["seq_num"], flush=True), "event")
        bl = SimulatedBeamline(seed=0, n_spots=4, renderer=FrameRenderer(supercell=(20, 12)))
        RE(acquire_frames(bl, n=200))
        """
    )
    path = tmp_path / "cat"
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(path)], stdout=subprocess.PIPE, text=True
    )
    seen = 0
    while seen < 6:
        line = proc.stdout.readline()
        assert line, "the writer died before its sixth event"
        seen = int(line.split()[1])
    proc.kill()
    proc.wait(10)
    assert pending(path / "journal"), "the killed run left its journal"
    client = local_catalog(path)  # opening delivers what the journal holds
    frames = read_frames(client.values().last())
    assert len(frames) >= seen, "every event the RunEngine had emitted is in the catalog"
    assert not pending(path / "journal")


def test_a_run_whose_files_outlived_its_catalog_entry_is_delivered_again(tmp_path):
    """A writer killed between creating a run's array files and recording them in the
    catalog leaves the files without an entry; delivering the journal again must write the
    run whole, not fail on the files already there."""
    path = tmp_path / "cat"
    client = local_catalog(path)
    RE = RunEngine({})
    copy = DocumentJournal(tmp_path / "copy")  # the documents as the killed writer journalled them
    RE.subscribe(copy)
    subscribe(RE, client)
    bl = SimulatedBeamline(seed=0, n_spots=4, renderer=FrameRenderer(supercell=(20, 12)))
    (uid,) = RE(acquire_frames(bl, n=3))
    for run in copy.runs.values():
        run.close()
    files = path / "data" / uid
    assert files.is_dir()
    shutil.copytree(files, tmp_path / "files")
    client[uid].delete(recursive=True, external_only=False)
    shutil.copytree(tmp_path / "files", files, dirs_exist_ok=True)  # without their entry
    shutil.copy(tmp_path / "copy" / f"{uid}.journal", path / "journal" / f"{uid}.journal")
    reopened = local_catalog(path)  # opening delivers what the journal holds
    assert len(read_frames(reopened[uid])) == 3
    assert not pending(path / "journal")


_run_cli = run_main


def test_served_catalog_refuses_before_anything_fires(tmp_path, journal):
    with TiledServer(tmp_path / "served") as server:
        env = {k: v for k, v in os.environ.items() if k != "TILED_API_KEY"}
        env["UEDSTEER_JOURNAL"] = str(journal)
        out = tmp_path / "out"
        res = _run_cli(["campaign", "--catalog", server.url, "--out", str(out)], env=env)
        assert res.returncode == 2 and "Traceback" not in res.stderr
        assert "API key" in res.stderr and server.url in res.stderr
        assert "--api-key" in res.stderr
        res = _run_cli(
            ["campaign", "--catalog", server.url, "--api-key", "0" * 32, "--out", str(out)],
            env=env,
        )
        assert res.returncode == 2 and "refused" in res.stderr
        assert not (out / "campaign.csv").exists()
        # with the key: the run goes to the server, not to a local folder named after the URL
        env["TILED_API_KEY"] = server.api_key
        res = _run_cli(
            ["campaign", "--catalog", server.url, "--budget", "2", "--out", str(out)],
            env=env,
        )
        assert res.returncode == 0, res.stderr
        client = open_catalog(server.url, api_key=server.api_key)
        run = client.values().last()
        assert np.asarray(run["primary"]["campaign_shot"].read()).tolist() == [0, 1]
        assert run.metadata["stop"]["exit_status"] == "success"
    assert not list(tmp_path.glob("http*")) and not os.path.exists("http:")
    assert not os.path.exists(os.path.join(os.getcwd(), "http:"))
    res = _run_cli(["campaign", "--catalog", server.url, "--api-key", server.api_key])
    assert res.returncode == 2 and "does not answer" in res.stderr
    assert "Traceback" not in res.stderr


def test_a_served_catalog_that_goes_away_loses_nothing(scorer, tmp_path, journal, capfd):
    server = TiledServer(tmp_path / "served").start()
    try:
        client = open_catalog(server.url, api_key=server.api_key)
        bl = SimulatedBeamline(seed=2)
        shutter, restart = [], []

        def on_shot(trial):
            shutter.append(bl.pump.shutter.get())
            if trial.index == 1:
                server.kill()
            if trial.index == 4:
                # down for longer than the delivery waits before telling the user: a server
                # back within it is only a slow write (the client retries it), and says nothing
                def later():
                    time.sleep(LAG_SECONDS + 1)
                    server.start()

                restart.append(threading.Thread(target=later))
                restart[0].start()
            if trial.index >= 4:
                time.sleep(1.0)  # the campaign keeps going while the server comes back

        rec = simulate_campaign(
            CampaignConfig(budget=8, target=2.0),
            scorer=scorer,
            catalog=client,
            beamline=bl,
            on_shot=on_shot,
        )
        restart[0].join()
        assert len(rec) == 8 and bl.pump.shutter.get() == "closed"
        assert shutter == ["open"] * 8
        uid = bl.history and client  # noqa: F841 - the client reconnects by itself
        deadline = time.monotonic() + 120
        folder = next(journal.iterdir())
        while pending(folder) and time.monotonic() < deadline:
            time.sleep(1)
        if pending(folder):
            err, log = capfd.readouterr().err, server.log.read_text()
            tail = f"{err[-4000:]}\n{log[-4000:]}"
            pytest.fail(f"journal undelivered 120 s after the restart:\n{tail}")
        run = client.values().last()
        shots = np.asarray(run["primary"]["campaign_shot"].read()).tolist()
        assert shots == list(range(8)), "every shot once"
        assert run.metadata["stop"]["reason"] == rec.stop_reason
        err = capfd.readouterr().err
        assert err.count("has not answered") + err.count("stopped accepting") == 1, err
    finally:
        server.stop()


def _campaign_until_shot_2(args, stderr=None):
    """Start ``uedsteer campaign ARGS`` as a real process and read its output up to the line
    of shot 2; returns (process, run uid, lines read)."""
    proc = subprocess.Popen(
        [*UEDSTEER, "campaign", *args], stdout=subprocess.PIPE, stderr=stderr, text=True
    )
    uid, lines = None, []
    while True:
        line = proc.stdout.readline()
        assert line, "the campaign ended before its third shot"
        lines.append(line)
        if line.startswith("run "):
            uid = line.split()[1]
        if line.split()[:1] == ["2"]:
            return proc, uid, lines


def test_a_stop_signal_ends_a_cli_campaign_like_ctrl_c(tmp_path):
    """SIGTERM here; SIGHUP (a closed terminal) takes the same handler, the CLI's
    ``STOP_SIGNALS``, so one signal end to end is enough for the suite's time."""
    from uedsteer.controller.cli.campaign import STOP_SIGNALS

    assert set(STOP_SIGNALS) == {signal.SIGTERM, signal.SIGHUP}
    sig = signal.SIGTERM
    cat, out = tmp_path / "cat", tmp_path / "out"
    args = ["--budget", "30", "--sample", "213", "--catalog", str(cat), "--out", str(out)]
    proc, uid, lines = _campaign_until_shot_2(args, stderr=subprocess.PIPE)
    proc.send_signal(sig)
    rest, err = proc.communicate(timeout=180)
    assert proc.returncode == 128 + sig
    assert "Traceback" not in err and "Traceback" not in rest
    assert f"stop: signal {sig.name}" in rest and "--resume" in rest
    assert (out / "campaign.csv").exists() and (out / "campaign_gp_maps.png").exists()
    run = local_catalog(cat).values().last()
    assert run.metadata["stop"]["reason"] == f"signal {sig.name}"
    assert run.metadata["stop"]["exit_status"] == "abort"
    assert run.metadata["start"]["uid"] == uid, "the uid is printed when the run opens"
    assert any(uid in line for line in lines[:3])


def _killed_campaign(root):
    """``uedsteer campaign`` with a recorded search box (budget 12) as a real process, killed
    with SIGKILL once it printed shot 2: its catalog folder as the kill left it (each check
    copies it before opening it: opening delivers the journal, resuming adds a run), the run's
    uid and the shots it printed."""
    root.mkdir()
    cfg = root / "campaign.yaml"
    cfg.write_text(
        "parameters:\n"
        "  - {name: fluence, low: 0.2, high: 12, hard_high: 20, max_step: 1.5, safe_start: 0.5}\n"
        "  - {name: wavelength, low: 600, high: 1000, hard_low: 400, hard_high: 1600,\n"
        "     max_step: 150, safe_start: 800}\n"
        "budget: 12\ntarget: 2.0\n"
    )
    cat = root / "cat"
    args = ["--config", str(cfg), "--sample", "213", "--catalog", str(cat)]
    proc, uid, lines = _campaign_until_shot_2([*args, "--out", str(root / "out")])
    proc.kill()
    proc.wait(10)
    assert proc.returncode == -signal.SIGKILL, "the campaign was killed mid-way"
    shots = [int(line[:4]) for line in lines if line[:4].strip().isdigit()]
    return SimpleNamespace(cat=cat, uid=uid, shots=shots)


def _copy(killed, tmp_path):
    """A copy of the killed campaign's catalog folder, for one check."""
    tmp_path.mkdir()
    shutil.copytree(killed.cat, tmp_path / "cat")
    return tmp_path / "cat"


def test_a_campaign_killed_with_sigkill_resumes(scorer, tmp_path):
    """One killed campaign (the slow part, made once), resumed on two copies of its catalog:
    by the README's command line and through the Python API."""
    killed = _killed_campaign(tmp_path / "killed")
    _cli_resume_after_kill_continues_the_recorded_campaign(killed, tmp_path / "cli")
    _resume_after_sigkill_loses_nothing_and_repeats_no_shot(killed, scorer, tmp_path / "api")


def _cli_resume_after_kill_continues_the_recorded_campaign(killed, tmp_path):
    """kill -9 mid-campaign, then the README's resume command: same box, every shot once."""
    cat, out, uid = _copy(killed, tmp_path), tmp_path / "out", killed.uid
    res = _run_cli(
        ["campaign", "--resume", uid, "--budget", "5", "--catalog", str(cat), "--out", str(out)]
    )
    assert res.returncode == 0, res.stderr
    assert "budget: 12 -> 5" in res.stdout
    client = local_catalog(cat)
    child = client.values().last()
    start = child.metadata["start"]
    assert start["resumed_from"] == uid
    assert (
        start["campaign_config"]["parameters"]
        == client[uid].metadata["start"]["campaign_config"]["parameters"]
    ), "the recorded search box, not the defaults"
    assert start["resume_changes"] == {"budget": {"recorded": 12, "resumed": 5}}
    before = np.asarray(client[uid]["primary"]["campaign_shot"].read()).tolist()
    after = np.asarray(child["primary"]["campaign_shot"].read()).tolist()
    assert before + after == list(range(5)), "every shot once"
    assert np.all(np.asarray(child["primary"]["pump_wavelength"].read()) >= 600)
    # the same run again: refused, naming the run that continued it
    res = _run_cli(["campaign", "--resume", uid, "--budget", "7", "--catalog", str(cat)])
    assert res.returncode == 2 and start["uid"] in res.stderr and "--newest" in res.stderr
    # the finished campaign fires nothing without a larger budget
    n_runs = len(client)
    res = _run_cli(["campaign", "--resume", start["uid"], "--catalog", str(cat), "--out", str(out)])
    assert res.returncode == 0 and "nothing to do" in res.stdout
    assert len(local_catalog(cat)) == n_runs
    # a wrong uid or a missing catalog folder: one line, and no folder is created
    res = _run_cli(["campaign", "--resume", "nosuchuid", "--catalog", str(tmp_path / "none")])
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert not (tmp_path / "none").exists()


def _resume_after_sigkill_loses_nothing_and_repeats_no_shot(killed, scorer, tmp_path):
    """The same through :func:`resume_campaign`: the journal delivered, the GPs warm, the
    settings of the shots before the kill unchanged, every shot once across the two runs."""
    cat = local_catalog(_copy(killed, tmp_path))
    run = cat.values().last()
    assert "stop" not in run.metadata or run.metadata["stop"] is None
    uid = run.metadata["start"]["uid"]
    assert uid == killed.uid
    camp = resume_campaign(cat, uid, changes={"budget": 7})
    got = [t.index for t in camp.record.trials]
    seen = killed.shots
    assert seen == [0, 1, 2]
    assert got[: len(seen)] == seen and got == list(range(len(got))), "nothing lost"
    assert camp.reference is not None
    states = np.asarray(run["proposals"]["proposal_gp_state"].read())
    recorded = json.loads(str(states[-1]))
    assert recorded and camp.optimizer.export_state() == recorded, "the GPs resume warm"
    before = [dict(t.settings) for t in camp.record.trials]
    rec = simulate_campaign(scorer=scorer, controller=camp, catalog=cat, seed=6)
    assert [t.index for t in rec.trials] == list(range(7))
    assert [t.settings for t in rec.trials[: len(before)]] == before
    resumed = cat.values().last()
    assert resumed.metadata["start"]["resumed_from"] == uid
    new = np.asarray(resumed["primary"]["campaign_shot"].read()).tolist()
    assert new == list(range(len(got), 7)), "each shot exactly once across the two runs"
    again = resume_campaign(cat, resumed.metadata["start"]["uid"])
    assert [t.index for t in again.record.trials] == list(range(7))


def test_a_second_session_reads_a_running_campaign(scorer, tmp_path):
    """A second client on the same catalog folder polls the run while shots are written."""
    path = tmp_path / "cat"
    writer = local_catalog(path)
    reader = local_catalog(path)  # what a second IPython session opens
    counts, errors, done = [], [], threading.Event()

    def poll():
        while not done.is_set():
            try:
                run = reader.values().last()
                shots = event_columns(run, ["campaign_shot"])["campaign_shot"]
                frames = read_frames(run)
                counts.append((len(shots), len(frames)))
            except (KeyError, IndexError):
                pass  # the run or its primary stream is not there yet
            except Exception as err:  # noqa: BLE001 - any other failure is the finding
                errors.append(repr(err))
            time.sleep(0.2)

    def wait_for_the_reader(trial):  # the next shot once the reader has seen this one
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(n > trial.index for n, _ in counts):
            time.sleep(0.05)

    thread = threading.Thread(target=poll)
    thread.start()
    try:
        simulate_campaign(
            CampaignConfig(budget=4, target=2.0),
            scorer=scorer,
            catalog=writer,
            seed=3,
            on_shot=wait_for_the_reader,
        )
    finally:
        done.set()
        thread.join(30)
    assert not errors, errors[:3]
    shots = [c[0] for c in counts]
    assert shots == sorted(shots) and len(set(shots)) > 1, "the reader saw the run grow"
    final = event_columns(reader.values().last(), ["campaign_shot"])["campaign_shot"]
    assert final.tolist() == list(range(4))


def test_sigterm_ends_an_ipython_session_like_an_abort(tmp_path):
    cat = tmp_path / "cat"
    proc = subprocess.Popen(
        [*UEDSTEER, "ipython", "--catalog", str(cat), "--", "--simple-prompt", "--no-banner"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    proc.stdin.write(
        "RE(campaign(bl, scorer, Campaign(CampaignConfig(budget=30, target=2.0)), "
        "on_shot=lambda t: print('SHOT', t.index, flush=True)))\n"
    )
    proc.stdin.flush()
    while True:
        line = proc.stdout.readline()
        assert line, "the session ended before its second shot"
        if "SHOT 1" in line:
            break
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGTERM
    assert "RequestAbort" not in out
    stop = local_catalog(cat).values().last().metadata["stop"]
    assert stop["exit_status"] == "abort" and stop["reason"] == "signal SIGTERM"


def test_a_served_catalog_reads_event_columns_while_a_writer_holds_their_file(tmp_path, journal):
    """A reader of a running campaign is never refused by the writer's lock: the server's
    table file is in write-ahead-log mode. (In SQLite's default mode the read fails with
    "database is locked", the server answers 500, and Tiled's client waits out its 30 s read
    timeout before it asks again: the monitor's page froze for half a minute.)"""
    import sqlite3

    with TiledServer(tmp_path / "served") as server:
        RE = RunEngine({})
        subscribe(RE, open_catalog(server.url, api_key=server.api_key))
        RE(acquire_frames(_small_beamline(), n=2))
        reader = open_catalog(server.url, api_key=server.api_key, read_only=True)
        run = reader.values().last()
        (column,) = [k for k in run["primary"].base["internal"].columns if k != "time"][:1]

        holder = sqlite3.connect(tmp_path / "served" / "storage.sqlite", isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")  # what a writer holds while it commits shots
        read: list = []
        try:
            thread = threading.Thread(
                target=lambda: read.append(event_columns(run, [column])[column]), daemon=True
            )
            started = time.monotonic()
            thread.start()
            thread.join(20)
            took = time.monotonic() - started
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert read and len(read[0]) == 2, f"no answer in {took:.0f} s while the file was held"
