"""``uedsteer monitor`` in a real browser: real processes from end to end.

A real ``tiled serve`` with an API key, ``uedsteer monitor`` as a subprocess on it, a simulated
campaign (a RunEngine in a process of its own) writing into the served catalog with the writer's
key, and two headless Chromium sessions (Debian's package, driven by selenium with Debian's
chromedriver; nothing is downloaded) watching the page while the campaign runs. Everything
listens on 127.0.0.1.

``UEDSTEER_MONITOR_SCREENSHOT=docs/images/monitor.png`` saves the page as the campaign ends (the
README's screenshot).
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import run_main

from uedsteer.controller.config import CampaignConfig
from uedsteer.plans.catalog import open_catalog
from uedsteer.plans.resume import stream_table
from uedsteer.plans.simulate import simulate_campaign
from uedsteer.plans.tiled_server import TiledServer, free_port
from uedsteer.sim_devices.beamline import SimulatedBeamline
from uedsteer.surrogates.scorer import FrameScorer

UEDSTEER = [sys.executable, "-m", "uedsteer.controller.cli"]
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1760",
)
SCREENSHOT_ENV = "UEDSTEER_MONITOR_SCREENSHOT"
IMAGE_IDS = ("img-frame", "img-objective", "img-gp", "img-latent")
CAMPAIGN = """
import sys
from uedsteer.controller.config import CampaignConfig
from uedsteer.plans.catalog import open_catalog
from uedsteer.plans.simulate import simulate_campaign
from uedsteer.sim_devices.beamline import SimulatedBeamline
from uedsteer.surrogates.scorer import FrameScorer
record = simulate_campaign(
    CampaignConfig(budget=6, target=2.0),  # a target out of reach: all six shots
    scorer=FrameScorer.pretrained(),
    catalog=open_catalog(sys.argv[1]),  # the writer's key from TILED_API_KEY
    beamline=SimulatedBeamline(seed=2),
)
print(f"stop: {record.stop_reason}", flush=True)
"""
"""A short simulated campaign writing into the served catalog ``argv[1]``."""
CATALOG_LAG_S = 15.0
"""The page shows a shot count or the stop reason within this many seconds of the catalog
(it looks every 0.5 s, the page asks every second; the margin is for a busy machine)."""


def _browser_missing() -> str | None:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        return f"no {CHROMIUM} and {CHROMEDRIVER}: install them with `make chromium` (as root)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed: pip install -e '.[dev]'"
    return None


needs_browser = pytest.mark.skipif(_browser_missing() is not None, reason=str(_browser_missing()))


class Browser:
    """One headless Chromium session (its own profile folder), closed by :meth:`quit`."""

    def __init__(self) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.profile = tempfile.mkdtemp(prefix="uedsteer-chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={self.profile}"):
            options.add_argument(flag)
        service = Service(
            str(CHROMEDRIVER), port=free_port(), service_args=["--allowed-ips=127.0.0.1"]
        )
        self.driver = webdriver.Chrome(options=options, service=service)

    def text(self, element_id: str) -> str:
        return self.driver.execute_script(
            "const e = document.getElementById(arguments[0]); return e ? e.textContent : null;",
            element_id,
        )

    def images(self) -> dict[str, int]:
        """naturalWidth of each plot that has loaded (0: none yet)."""
        return self.driver.execute_script(
            "const out = {}; for (const id of arguments[0]) { const i = "
            "document.getElementById(id); out[id] = (i && i.complete) ? i.naturalWidth : 0; } "
            "return out;",
            list(IMAGE_IDS),
        )

    def quit(self) -> None:
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)


def _wait(what: str, check, timeout: float, every: float = 0.2, page: Browser | None = None):
    """Poll ``check`` until it returns something true; fail naming ``what`` (and what the
    ``page`` says: its error line and notes)."""
    end = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > end:
            said = ""
            if page is not None:
                shown = [page.text(k) for k in ("shots", "status", "checked", "error", "notes")]
                said = f"; the page shows shots, status, checked, error, notes = {shown}"
            raise AssertionError(f"waited {timeout} s for {what}{said}")
        time.sleep(every)


def _stop(proc: subprocess.Popen) -> None:
    """End a process this test started (its own process group), politely first."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(15)


@needs_browser
def test_two_browsers_follow_a_campaign_from_the_served_catalog(tmp_path, monkeypatch):
    monkeypatch.setenv("UEDSTEER_JOURNAL", str(tmp_path / "journal"))
    env = dict(os.environ)
    env.pop("TILED_API_KEY", None)
    monitor_log, campaign_log = tmp_path / "monitor.log", tmp_path / "campaign.log"
    server = TiledServer(tmp_path / "served").start()
    procs: list[subprocess.Popen] = []
    browsers: list[Browser] = []
    try:
        monitor = subprocess.Popen(
            [*UEDSTEER, "monitor", "--catalog", server.url, "--api-key", server.api_key]
            + ["--port", "0"],
            stdout=subprocess.PIPE,
            stderr=monitor_log.open("w"),
            text=True,
            env=env,
            start_new_session=True,
        )
        procs.append(monitor)
        first = monitor.stdout.readline()
        assert first.startswith("monitor http://127.0.0.1:"), first + monitor_log.read_text()
        url = first.split()[1]
        assert monitor.stdout.readline().startswith("ready")

        browsers = [Browser(), Browser()]
        for b in browsers:
            b.driver.get(url)
        for b in browsers:  # an empty catalog is a line on the page, not a crash
            _wait("the empty-catalog line", lambda b=b: "no campaign run" in b.text("error"), 20)

        # the campaign: a RunEngine in its own process writing into the served catalog with
        # the writer's key (without the command's banner and closing plots)
        campaign = subprocess.Popen(
            [sys.executable, "-c", CAMPAIGN, server.url],
            stdout=subprocess.PIPE,
            stderr=campaign_log.open("w"),
            text=True,
            env=dict(env, TILED_API_KEY=server.api_key),
            start_new_session=True,
        )
        procs.append(campaign)
        t0 = time.monotonic()

        # when the catalog has each shot count and the stop document (what the page follows)
        client = open_catalog(server.url, api_key=server.api_key, read_only=True)
        in_catalog: dict[object, float] = {}
        watching = threading.Event()
        watching.set()

        def watch_catalog() -> None:
            while watching.is_set():
                try:
                    run = client.values().last()
                    n = len(stream_table(run, "primary", "campaign_").get("shot", ()))
                    in_catalog.setdefault(n, time.monotonic() - t0)
                    if run.metadata.get("stop"):
                        in_catalog.setdefault("stop", time.monotonic() - t0)
                except (KeyError, IndexError):
                    pass  # no run yet, or no shot yet
                except Exception:  # noqa: BLE001 - a slow answer on a busy machine: look again
                    pass
                time.sleep(0.25)

        watcher = threading.Thread(target=watch_catalog, daemon=True)
        watcher.start()

        # the page follows the run while it is written: shot counts that rise, then the stop
        on_page: list[dict[object, float]] = [{}, {}]
        end = time.monotonic() + 150
        while time.monotonic() < end and not all("stop" in seen for seen in on_page):
            for b, seen in zip(browsers, on_page, strict=True):
                text = b.text("shots")
                if text and text.isdigit():
                    seen.setdefault(int(text), time.monotonic() - t0)
                if b.text("stop-reason") not in ("–", "", None):
                    seen.setdefault("stop", time.monotonic() - t0)
            time.sleep(0.2)
        for b, seen in zip(browsers, on_page, strict=True):  # the count shown with the stop
            text = b.text("shots")  # (read before the stop reason, it may have been older)
            if text and text.isdigit():
                seen.setdefault(int(text), time.monotonic() - t0)
        out, _ = campaign.communicate(timeout=120)
        assert campaign.returncode == 0, campaign_log.read_text()
        _wait("the catalog watcher to see the stop", lambda: "stop" in in_catalog, 60)
        watching.clear()
        watcher.join(10)

        run = client.values().last()
        uid = run.metadata["start"]["uid"]
        shots = np.asarray(run["primary"]["campaign_shot"].read()).tolist()
        reason = run.metadata["stop"]["reason"]
        assert shots == list(range(len(shots))) and len(shots) >= 2
        assert f"stop: {reason}" in out
        print("in the catalog (s):", {k: round(v, 1) for k, v in in_catalog.items()})
        for seen in on_page:
            print("on the page (s):   ", {k: round(v, 1) for k, v in seen.items()})
            counts = [k for k in seen if k != "stop"]
            assert counts == sorted(counts), f"the shot count went back: {counts}"
            # the page showed the run while it ran (a shot count between the first and the
            # last), not only its end; how close it follows each shot is a matter of the
            # machine's load, bounded below by the lag
            running = [c for c in counts if 0 < c < len(shots)]
            assert running, f"the page showed only the run's start and end: {counts}"
            for what in (len(shots), "stop"):
                assert what in seen, f"the page never showed {what!r}: {seen}"
                lag = seen[what] - in_catalog[what]
                assert lag < CATALOG_LAG_S, f"{what!r} came {lag:.1f} s after the catalog had it"
        for b in browsers:
            assert b.text("shots") == str(len(shots)) and b.text("stop-reason") == reason
            assert b.text("uid") == uid
            assert b.text("status") == run.metadata["stop"]["exit_status"]
            assert b.text("error") == ""
        for b in browsers:
            loaded = _wait(
                "every plot to load",
                lambda b=b: (lambda w: w if all(w.values()) else None)(b.images()),
                40,
                every=0.5,
                page=b,
            )
            assert all(width > 200 for width in loaded.values()), (loaded, b.text("notes"))
        shot_path = os.environ.get(SCREENSHOT_ENV)
        if shot_path:  # once the model plots show every shot
            done = f"of {len(shots)} shots"
            _wait("the final model plots", lambda: done in browsers[0].text("model"), 120)
            time.sleep(1.5)  # the page fetches the new plots
            Path(shot_path).parent.mkdir(parents=True, exist_ok=True)
            browsers[0].driver.save_screenshot(shot_path)
        state = browsers[0].driver.execute_script("return fetch('api/state').then(r => r.json())")
        print("model plots drawn in", state["model_seconds"], "s")

        monitor.send_signal(signal.SIGTERM)
        out, _ = monitor.communicate(timeout=30)
        assert monitor.returncode == 0, monitor_log.read_text()
        assert "stopped" in out and "Traceback" not in monitor_log.read_text()
    finally:
        for b in browsers:
            b.quit()
        for proc in procs:
            _stop(proc)
        server.stop()


def test_cli_errors_are_one_line(tmp_path):
    results = []
    res = run_main(["monitor", "--catalog", str(tmp_path), "--port", "70000"])
    assert res.returncode == 2 and "argument --port" in res.stderr and "70000" in res.stderr
    assert "1 to 65535" in res.stderr
    results.append(res)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        res = run_main(["monitor", "--catalog", str(tmp_path), "--port", str(port)])
    assert res.returncode == 2 and f"argument --port: {port} cannot be used" in res.stderr
    results.append(res)
    nowhere = f"http://127.0.0.1:{free_port()}/api/v1"
    res = run_main(["monitor", "--catalog", nowhere, "--port", "0"])
    assert res.returncode == 2 and nowhere in res.stderr and "does not answer" in res.stderr
    results.append(res)
    res = run_main(["monitor", "--catalog", str(tmp_path / "none"), "--port", "0"])
    assert res.returncode == 2 and "holds no catalog" in res.stderr
    assert not (tmp_path / "none").exists(), "the monitor creates no catalog"
    results.append(res)
    for res in results:  # argparse's usage lines may come first, as for any bad argument
        lines = res.stderr.strip().splitlines()
        assert "Traceback" not in res.stderr
        assert [line for line in lines if "error" in line] == lines[-1:]
        assert lines[-1].startswith("uedsteer monitor: error: ")


def test_the_follower_draws_a_finished_campaign_from_a_catalog_folder(tmp_path):
    """Without a browser: what the page is served, from a campaign in a catalog folder."""
    from fastapi.testclient import TestClient

    from uedsteer.plans.catalog import local_catalog
    from uedsteer.plans.monitor import CampaignFollower, MonitorConfig, create_app

    folder = tmp_path / "cat"
    writer = local_catalog(folder)
    follower = CampaignFollower(MonitorConfig(catalog=str(folder), port=0, gp_grid=12))
    try:
        follower.poll()
        state = follower.snapshot().state
        assert state["error"] == "no campaign run in the catalog yet" and not state["images"]

        bl = SimulatedBeamline(seed=2)
        rec = simulate_campaign(
            CampaignConfig(budget=3, target=2.0),
            scorer=FrameScorer.pretrained(),
            catalog=writer,
            beamline=bl,
        )
        follower.poll()
        follower.draw_model()  # what the modelling thread does after a poll saw a new shot
        snap = follower.snapshot()
        run = writer.values().last()
        assert snap.state["uid"] == run.metadata["start"]["uid"]
        assert snap.state["shots"] == len(rec) == 3, rec.stop_reason
        assert snap.state["stop_reason"] == rec.stop_reason == run.metadata["stop"]["reason"]
        assert snap.state["status"] == run.metadata["stop"]["exit_status"]
        assert snap.state["last"]["shot"] == 2 and snap.state["error"] is None
        assert set(snap.images) == {"frame", "objective", "latent", "gp"}, snap.state["notes"]
        assert all(png.startswith(b"\x89PNG") for png in snap.images.values())
        assert snap.state["model_shots"] == 3, "the model plots show every shot"

        app = TestClient(create_app(follower))
        assert app.get("/api/state").json()["shots"] == 3
        page = app.get("/")
        assert page.status_code == 200 and 'id="stop-reason"' in page.text
        versions = snap.state["images"]
        got = app.get(f"/plot/gp.png?v={versions['gp']}")
        assert got.headers["content-type"] == "image/png" and got.content == snap.images["gp"]
        assert app.get("/plot/nothing.png").status_code == 404
        before = dict(versions)
        follower.poll()  # nothing new in the catalog: nothing is drawn again
        assert follower.snapshot().state["images"] == before
    finally:
        follower.close()
