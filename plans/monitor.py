"""The live campaign monitor: a web page on 127.0.0.1 that follows a campaign from the catalog.

The monitor reads only the catalog (a folder or a Tiled server); it never talks to the
RunEngine, so it can watch a campaign run by the queueserver, by another IPython session or by
``uedsteer campaign``. One thread (:class:`CampaignFollower`) looks at the catalog every
``poll_s`` seconds; when the followed run has a new shot (or its stop document arrives) it reads
what changed and draws the plots (matplotlib, PNG) once. The web app (:func:`create_app`) only
hands out the latest snapshot, so any number of browsers cost the catalog nothing extra.

What the page shows, and where it comes from:

* the run's uid, shot count, status (``running`` until the stop document, then its exit
  status) and stop reason, from the run's start and stop documents and its ``primary`` stream;
* the latest frame and its difference from the mean of the run's reference frames;
* objective and damage probability per shot, the settings path over fluence × wavelength with
  the GP maps and the safe-set boundary: the campaign is rebuilt from the catalog by
  :func:`uedsteer.plans.resume.resume_campaign` (recorded configuration, shots and GP state)
  and drawn by :mod:`uedsteer.controller.plots`, once per shot count;
* the latent path against the 2H–1T' line, from the recorded ``progress`` and
  ``line_distance`` scores of each shot.

A failure (catalog unreachable, no campaign run yet, a plot that cannot be drawn) is one line
on the page; the monitor keeps looking. Everything binds to 127.0.0.1 only.
"""

from __future__ import annotations

import io
import signal
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from . import documents as doc

__all__ = [
    "HOST",
    "IMAGES",
    "CampaignFollower",
    "ModelWorker",
    "MonitorConfig",
    "Snapshot",
    "bind_socket",
    "create_app",
    "draw_models",
    "serve",
]

HOST = "127.0.0.1"
"""The only address the monitor binds to."""

IMAGES = ("frame", "objective", "latent", "gp")
"""The plots of the page: latest frame and difference image, objective and damage per shot,
latent path, GP maps with the settings path and the safe-set boundary."""

READ_TRIES = 5
"""Reads of a growing array are retried this often (a shot written between Tiled's two
requests of one read makes the server refuse the second)."""


class MonitorConfig(BaseModel):
    """What ``uedsteer monitor`` follows and how."""

    model_config = ConfigDict(extra="forbid")

    catalog: str = Field(
        min_length=1,
        description="Catalog folder, or a Tiled server address http(s)://HOST:PORT/api/v1.",
    )
    api_key: str | None = Field(
        None,
        repr=False,
        description="API key of a Tiled server (a reader's key is enough); default: the "
        "TILED_API_KEY environment variable.",
    )
    port: int = Field(
        8765, ge=0, le=65535, description="TCP port on 127.0.0.1 (0: a free one, printed)."
    )
    run: str | None = Field(
        None, description="uid of the run to follow; default: the newest campaign run."
    )
    poll_s: float = Field(0.5, gt=0, le=60, description="Seconds between two looks at the catalog.")
    gp_grid: int = Field(40, ge=10, le=200, description="Grid points per axis of the GP maps.")


@dataclass
class Snapshot:
    """What the page shows at one moment: the JSON state and the PNG of each plot."""

    state: dict[str, Any]
    images: dict[str, bytes] = field(default_factory=dict)


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    text = f"{type(err).__name__}: {text}" if text else type(err).__name__
    return text[:400]


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return buf.getvalue()


def _figure(width: float, height: float) -> Any:
    """A matplotlib figure that does not go through pyplot (safe outside the main thread)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _read_rows(run: Any, key: str, rows: slice | int, stream: str = doc.SHOTS) -> np.ndarray:
    """Rows of one array of a stream, retried while the run grows (see :data:`READ_TRIES`)."""
    import httpx

    for attempt in range(READ_TRIES):
        try:
            return np.asarray(run[stream][key].read(slice=rows))
        except httpx.HTTPStatusError:
            if attempt == READ_TRIES - 1:
                raise
            time.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")


def frame_figure(frame: np.ndarray, reference: np.ndarray | None, shot: int) -> bytes:
    """The latest frame and its difference from the reference (red: gained, blue: lost).

    Parameters
    ----------
    frame : (n, n) array
        The detector frame of the latest shot.
    reference : (n, n) array or None
        Mean of the run's pristine reference frames (None: no difference panel).
    shot : int
        Shot index, for the title.

    Returns
    -------
    bytes
        PNG.
    """
    fig = _figure(9.0, 4.2)
    axes = fig.subplots(1, 2)
    finite = frame[np.isfinite(frame)]
    top = float(np.percentile(finite, 99.5)) if finite.size else 1.0
    im = axes[0].imshow(frame, cmap="gray", vmin=0.0, vmax=top or 1.0, origin="lower")
    fig.colorbar(im, ax=axes[0], shrink=0.8)
    axes[0].set_title(f"shot {shot}: frame")
    if reference is not None and reference.shape == frame.shape:
        diff = frame - reference
        finite = np.abs(diff[np.isfinite(diff)])
        lim = float(np.percentile(finite, 99.5)) if finite.size else 1.0
        im = axes[1].imshow(
            diff, cmap="RdBu_r", vmin=-(lim or 1.0), vmax=lim or 1.0, origin="lower"
        )
        fig.colorbar(im, ax=axes[1], shrink=0.8)
        axes[1].set_title("difference from the reference (red +, blue −)")
    else:
        axes[1].text(0.5, 0.5, "no reference frames recorded", ha="center", va="center")
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    return _png(fig)


def latent_figure(progress: np.ndarray, distance: np.ndarray, shots: np.ndarray) -> bytes:
    """The frames' path against the 2H–1T' line: position along it and distance to it.

    Parameters
    ----------
    progress, distance : (N,) arrays
        The recorded ``progress`` (0 = 2H … 1 = 1T') and ``line_distance`` scores.
    shots : (N,) array
        Shot indices (colour).

    Returns
    -------
    bytes
        PNG.
    """
    fig = _figure(6.5, 4.2)
    ax = fig.subplots()
    ok = np.isfinite(progress) & np.isfinite(distance)
    ax.plot([0, 1], [0, 0], "k-", lw=3, alpha=0.4, label="2H–1T' line")
    ax.annotate("2H", (0, 0), textcoords="offset points", xytext=(-12, 6))
    ax.annotate("1T'", (1, 0), textcoords="offset points", xytext=(4, 6))
    ax.plot(progress[ok], distance[ok], "-", color="0.6", lw=0.8)
    sc = ax.scatter(progress[ok], distance[ok], c=shots[ok], cmap="viridis", s=28, zorder=3)
    fig.colorbar(sc, ax=ax, label="shot")
    ax.set_xlabel("progress along the line (0 = 2H, 1 = 1T')")
    ax.set_ylabel("latent distance to the line")
    ax.set_title("frame path in the VAE latent space")
    ax.legend(fontsize=8, loc="upper right")
    return _png(fig)


class CampaignFollower:
    """Follows one campaign run in the catalog and keeps the page's latest :class:`Snapshot`.

    Only :meth:`poll` (run by one thread, :meth:`run`) reads the catalog and draws; any
    number of web requests read :meth:`snapshot` at no cost to the catalog.

    Parameters
    ----------
    config : MonitorConfig
    catalog : tiled client, optional
        Already opened (read-only) catalog; default: opened from ``config`` on the first poll.
    """

    def __init__(self, config: MonitorConfig, catalog: Any | None = None) -> None:
        self.config = config
        self.catalog = catalog
        self._lock = threading.Lock()
        self._snapshot = Snapshot(state=self._state(error="not looked at the catalog yet"))
        self._seen: tuple | None = None  # (uid, shots, stopped) last drawn fast
        self._wanted: tuple | None = None  # (uid, shots, stopped) for the model plots
        self._wake = threading.Condition()
        self._worker: ModelWorker | None = None  # the modelling process (while run() runs)
        self._reference: tuple[str, np.ndarray | None] | None = None

    # ------------------------------------------------------------------ the page's side
    def snapshot(self) -> Snapshot:
        """The latest snapshot (state and PNGs); cheap, safe from any thread."""
        with self._lock:
            return self._snapshot

    def _state(self, **values: Any) -> dict[str, Any]:
        state: dict[str, Any] = {
            "catalog": self.config.catalog,
            "following": self.config.run or "newest campaign run",
            "uid": None,
            "scan_id": None,
            "shots": 0,
            "status": "waiting",
            "stop_reason": None,
            "last": {},
            "images": {},
            "notes": {},
            "error": None,
            "checked": None,
            "read_seconds": None,
            "draw_seconds": None,
            "model_shots": None,
            "model_seconds": None,
            "poll_s": self.config.poll_s,
        }
        state.update(values)
        return state

    def _publish(self, images: dict[str, bytes] | None = None, **values: Any) -> None:
        with self._lock:
            old = self._snapshot
            state = dict(old.state)
            state.update(values)
            merged = dict(old.images)
            if images:
                merged.update(images)
                versions = dict(state.get("images") or {})
                for name in images:
                    versions[name] = f"{state.get('uid')}-{state.get('shots')}-{time.time():.3f}"
                state["images"] = versions
            self._snapshot = Snapshot(state=state, images=merged)

    def _note(self, name: str, text: str | None) -> None:
        """Set (or with None clear) the page's note about one plot."""
        with self._lock:
            notes = dict(self._snapshot.state.get("notes") or {})
            if text:
                notes[name] = text
            else:
                notes.pop(name, None)
            state = dict(self._snapshot.state, notes=notes)
            self._snapshot = Snapshot(state=state, images=self._snapshot.images)

    def _forget(self) -> None:
        with self._lock:
            state = dict(self._snapshot.state, images={}, notes={})
            self._snapshot = Snapshot(state=state)
        self._seen = None

    # ------------------------------------------------------------------ the catalog's side
    def run(self, stop: threading.Event) -> None:
        """Poll until ``stop`` is set (the body of the monitor's reading thread).

        The plots that rebuild the campaign (objective, GP maps) are drawn by a second thread
        (:meth:`model`), always for the newest shot count, so a slow GP map never holds back
        the shot count, the frame or the stop reason.
        """
        # the models are drawn in their own process: a GP map holds neither this process's
        # GIL (the shot count and the web requests go on) nor the campaign's cores (niced)
        self._worker = ModelWorker()
        modeller = threading.Thread(
            target=self.model, args=(stop,), name="uedsteer-monitor-model", daemon=True
        )
        modeller.start()
        _png(_figure(1, 1))  # matplotlib's imports now, not when the first shot arrives
        try:
            while not stop.is_set():
                self.poll()
                stop.wait(self.config.poll_s)
        finally:
            with self._wake:
                self._wake.notify_all()
            self.close()  # a drawing under way ends with the process
            modeller.join(timeout=30)

    def model(self, stop: threading.Event) -> None:
        """Draw the campaign's model plots whenever :meth:`poll` saw a new shot, until
        ``stop`` is set (skipping shot counts that were passed while it drew)."""
        done: tuple | None = None
        while not stop.is_set():
            with self._wake:
                while not stop.is_set() and (self._wanted is None or self._wanted == done):
                    self._wake.wait(1.0)
                wanted = self._wanted
            if stop.is_set() or wanted is None:
                return
            self.draw_model(wanted)
            done = wanted

    def draw_model(self, wanted: tuple[str, int, bool] | None = None) -> None:
        """Draw the model plots now, for ``(uid, shots, stopped)`` (default: the newest
        :meth:`poll` saw), and publish them unless the monitor moved on to another run
        meanwhile."""
        wanted = wanted or self._wanted
        if wanted is None:
            return
        started = time.monotonic()
        images, shots = self._draw_campaign(wanted[0])
        if images and self._wanted is not None and self._wanted[0] == wanted[0]:
            self._publish(images, model_shots=shots)
        self._publish(model_seconds=round(time.monotonic() - started, 2))

    def close(self) -> None:
        """Stop the modelling process, if one runs."""
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.close()

    def _open(self) -> Any:
        if self.catalog is None:
            from .catalog import open_catalog

            self.catalog = open_catalog(
                self.config.catalog, api_key=self.config.api_key, create=False, read_only=True
            )
        return self.catalog

    def _find_run(self, catalog: Any) -> Any | None:
        if self.config.run:
            try:
                return catalog[self.config.run]
            except KeyError:
                raise ValueError(f"no run {self.config.run!r} in the catalog (yet)") from None
        from tiled.queries import Key

        found = catalog.search(Key(f"start.{doc.PLAN_NAME_KEY}") == doc.CAMPAIGN_PLAN)
        if not len(found):
            return None
        return found.values().last()

    def poll(self) -> None:
        """Look at the catalog once; redraw what a new shot or the stop document changed.

        Never raises: a failure becomes the page's error line (the previous plots stay).
        """
        now = time.strftime("%H:%M:%S")
        try:
            catalog = self._open()
            run = self._find_run(catalog)
            if run is None:
                self._publish(error="no campaign run in the catalog yet", checked=now)
                return
            self._follow(run, now)
        except Exception as err:  # noqa: BLE001 - the page says what failed and keeps looking
            self._publish(error=self._explain(err), checked=now)

    def _explain(self, err: BaseException) -> str:
        import httpx

        if isinstance(err, httpx.TransportError):
            return (
                f"catalog {self.config.catalog} does not answer ({type(err).__name__}); "
                "the monitor keeps trying"
            )
        if isinstance(err, ValueError):
            return str(err).splitlines()[0][:400]
        return _one_line(err)

    def _follow(self, run: Any, now: str) -> None:
        from .resume import stream_table

        began = time.monotonic()
        start = run.metadata["start"]
        stop = run.metadata.get("stop") or None
        uid = start["uid"]
        cols = stream_table(run, doc.SHOTS, doc.readout_prefix(doc.SHOT_READOUT))
        n = len(cols.get("shot", ()))
        status = "running" if stop is None else str(stop.get("exit_status") or "stopped")
        reason = None if stop is None else str(stop.get("reason") or "") or None
        last: dict[str, Any] = {}
        if n:
            for k in ("shot", "spot", "status", "action", "class_name", "damage_prob", "objective"):
                if k in cols:
                    v = cols[k][n - 1]
                    last[k] = v.item() if hasattr(v, "item") else v
            for k in ("fluence", "wavelength"):
                if k in cols:
                    last[k] = float(cols[k][n - 1])
            last = {
                k: (None if isinstance(v, float) and not np.isfinite(v) else v)
                for k, v in last.items()
            }
        values = dict(
            uid=uid,
            scan_id=start.get("scan_id"),
            shots=n,
            status=status,
            stop_reason=reason,
            last=last,
            error=None,
            checked=now,
        )
        if self._seen is not None and self._seen[0] != uid:
            self._forget()  # a new run: the last run's plots go
        key = (uid, n, stop is not None)
        if key == self._seen:
            self._publish(**values)
            return
        self._publish(read_seconds=round(time.monotonic() - began, 2), **values)
        if n and key[:2] != (self._seen or ())[:2]:  # the numbers are out; the plots follow
            began = time.monotonic()
            images = self._draw_fast(run, start, cols, n)
            self._publish(images, draw_seconds=round(time.monotonic() - began, 2))
        self._seen = key
        if n:
            with self._wake:
                self._wanted = (uid, n, stop is not None)  # the stop redraws the titles
                self._wake.notify_all()

    def _draw_fast(
        self, run: Any, start: dict, cols: dict[str, np.ndarray], n: int
    ) -> dict[str, bytes]:
        """The plots that need no model: latest frame and difference, latent path."""
        images: dict[str, bytes] = {}
        key = doc.frame_key(start)
        try:
            frame = _read_rows(run, key, n - 1).astype(np.float64)
            images["frame"] = frame_figure(frame, self._reference_of(run, start), n - 1)
            self._note("frame", None)
        except Exception as err:  # noqa: BLE001 - one line on the page
            self._note("frame", f"latest frame: {self._explain(err)}")
        if "progress" in cols and "line_distance" in cols:
            shots = np.asarray(cols["shot"], dtype=float)
            images["latent"] = latent_figure(
                np.asarray(cols["progress"], dtype=float),
                np.asarray(cols["line_distance"], dtype=float),
                shots,
            )
            self._note("latent", None)
        else:
            self._note("latent", "latent path: the run records no progress/line_distance scores")
        return images

    def _reference_of(self, run: Any, start: dict) -> np.ndarray | None:
        uid = start["uid"]
        if self._reference is None or self._reference[0] != uid:
            try:
                frames = _read_rows(run, doc.frame_key(start), slice(None), doc.REFERENCE)
                ref = frames.mean(axis=0) if len(frames) else None
            except KeyError:
                ref = None
            self._reference = (uid, ref)
        return self._reference[1]

    def _draw_campaign(self, uid: str) -> tuple[dict[str, bytes], int]:
        """Objective per shot and the GP maps (:func:`draw_models`), in the modelling
        process where :meth:`model` started one, else here; their notes go to the page.
        Returns the PNGs and the number of shots they show."""
        args = (self.config.catalog, self.config.api_key, uid, self.config.gp_grid)
        try:
            worker = self._worker
            if worker is not None:
                images, notes, shots = worker.draw(args, lambda: self._worker is None)
            else:
                images, notes, shots = draw_models(*args)
        except Exception as err:  # noqa: BLE001 - e.g. the modelling process died
            images, notes, shots = {}, {"gp": f"model plots: {self._explain(err)}"}, 0
        for name in ("objective", "gp"):
            self._note(name, notes.get(name))
        return images, shots


MODEL_TIMEOUT = 300.0
"""Seconds the monitor waits for one drawing of the model plots."""

_MODEL_CATALOGS: dict[tuple[str, str | None], Any] = {}


class ModelWorker:
    """A process of its own that runs :func:`draw_models` (spawned on first use, niced, one
    thread, deaf to Ctrl-C: the monitor stops it with :meth:`close`)."""

    def __init__(self) -> None:
        self._process: Any | None = None
        self._conn: Any | None = None

    def _start(self) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(
            target=_model_worker, args=(child,), name="uedsteer-monitor-model", daemon=True
        )
        self._process.start()
        child.close()

    def draw(self, args: tuple, cancelled: Any) -> tuple[dict[str, bytes], dict[str, str], int]:
        """:func:`draw_models` ``(*args)`` in the process; a process that died is started
        again. Raises ``TimeoutError`` after :data:`MODEL_TIMEOUT` s or once ``cancelled()``."""
        if self._process is None or not self._process.is_alive():
            self._start()
        conn, process = self._conn, self._process
        try:
            conn.send(args)
            end = time.monotonic() + MODEL_TIMEOUT
            while not conn.poll(0.5):
                if cancelled() or time.monotonic() > end or not process.is_alive():
                    break
            else:
                return conn.recv()
        except (EOFError, OSError):  # the process died, or close() ended it meanwhile
            pass
        self.close()
        raise TimeoutError("the modelling process gave no plots")

    def close(self) -> None:
        """End the process (at once: a drawing under way is dropped)."""
        process, self._process = self._process, None
        if process is not None and process.is_alive():
            process.kill()
            process.join(10)
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _model_worker(conn: Any) -> None:
    """The modelling process: below the campaign's priority, one thread, Ctrl-C left to the
    monitor; draws what it is sent until the pipe closes."""
    import os

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        os.nice(10)
    except OSError:
        pass
    import torch

    torch.set_num_threads(1)
    while True:
        try:
            args = conn.recv()
        except (EOFError, OSError):
            return
        conn.send(draw_models(*args))


def draw_models(
    catalog: str, api_key: str | None, uid: str, grid: int
) -> tuple[dict[str, bytes], dict[str, str], int]:
    """Rebuild campaign ``uid`` from the catalog and draw its objective trace and GP maps.

    The campaign comes back as ``uedsteer campaign --resume`` would rebuild it
    (:func:`~uedsteer.plans.resume.resume_campaign`: recorded configuration, shots, GP
    state); the plots are the campaign's own (:func:`~uedsteer.controller.plots.objective_trace`,
    :func:`~uedsteer.controller.plots.gp_maps`). Runs in the monitor's modelling process.

    Parameters
    ----------
    catalog, api_key : str
        Where the run is (opened read-only, once per process).
    uid : str
        The campaign run.
    grid : int
        Grid points per axis of the GP maps.

    Returns
    -------
    images : dict
        PNG bytes of ``objective`` and ``gp`` (those that could be drawn).
    notes : dict
        One line per plot that could not be drawn.
    shots : int
        The shots the plots show (the run may have grown since the monitor asked).
    """
    from uedsteer.controller.plots import gp_maps, objective_trace

    from .catalog import open_catalog
    from .resume import resume_campaign

    images: dict[str, bytes] = {}
    notes: dict[str, str] = {}
    try:
        client = _MODEL_CATALOGS.get((catalog, api_key))
        if client is None:
            client = open_catalog(catalog, api_key=api_key, create=False, read_only=True)
            _MODEL_CATALOGS[(catalog, api_key)] = client
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            camp = resume_campaign(client, uid)
    except Exception as err:  # noqa: BLE001 - e.g. a shot written between two reads
        notes["objective"] = f"campaign not rebuilt yet: {_one_line(err)}"
        return images, notes, 0
    if not len(camp.record):
        return images, notes, 0
    camp.record.stop_reason = camp.previous_stop or None
    with tempfile.TemporaryDirectory(prefix="uedsteer-monitor-") as tmp:
        for name, draw in (
            ("objective", lambda p: objective_trace(camp, p)),
            ("gp", lambda p: gp_maps(camp, p, n=grid)),
        ):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    images[name] = draw(Path(tmp) / f"{name}.png").read_bytes()
            except Exception as err:  # noqa: BLE001 - one line on the page
                notes[name] = f"{name} plot: {_one_line(err)}"
    return images, notes, len(camp.record)


def bind_socket(port: int) -> Any:
    """A listening TCP socket on 127.0.0.1:``port`` (0: a free port).

    Raises
    ------
    ValueError
        One line naming the port and what is allowed, if it cannot be bound.
    """
    import socket

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((HOST, port))
        sock.listen(64)
    except OSError as err:
        sock.close()
        raise ValueError(
            f"argument --port: {port} cannot be used on {HOST} ({err.strerror}); choose another "
            "port from 1 to 65535, or 0 for a free one"
        ) from None
    return sock


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>uedsteer monitor</title>
<style>
 body { font-family: system-ui, sans-serif; margin: 1em; background: #fafafa; color: #222; }
 table.facts td { padding: 0 1em 0 0; }
 #error { color: #b00; min-height: 1.2em; }
 .notes { color: #a60; font-size: 90%; }
 .grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); gap: 1em; }
 .grid figure { margin: 0; background: #fff; padding: .5em; border: 1px solid #ddd; }
 .grid img { width: 100%; height: auto; }
 figcaption { font-size: 90%; color: #555; }
</style></head>
<body>
<h1>uedsteer campaign monitor</h1>
<table class="facts">
 <tr><td>catalog</td><td id="catalog"></td></tr>
 <tr><td>run</td><td id="uid">–</td></tr>
 <tr><td>scan id</td><td id="scan-id">–</td></tr>
 <tr><td>shots</td><td id="shots">0</td></tr>
 <tr><td>status</td><td id="status">waiting</td></tr>
 <tr><td>stop reason</td><td id="stop-reason">–</td></tr>
 <tr><td>last shot</td><td id="last">–</td></tr>
 <tr><td>model plots</td><td id="model">–</td></tr>
 <tr><td>checked</td><td id="checked">–</td></tr>
</table>
<p id="error"></p>
<ul class="notes" id="notes"></ul>
<div class="grid">
 <figure><img id="img-frame" alt="latest frame and its difference image">
  <figcaption>latest frame and its difference from the reference</figcaption></figure>
 <figure><img id="img-objective" alt="objective and damage probability per shot">
  <figcaption>objective and damage probability per shot</figcaption></figure>
 <figure><img id="img-gp" alt="GP maps over fluence and wavelength">
  <figcaption>settings path over fluence × wavelength on the GP maps; white: safe-set
  boundary</figcaption></figure>
 <figure><img id="img-latent" alt="latent path against the 2H-1T' line">
  <figcaption>latent path against the 2H–1T' line</figcaption></figure>
</div>
<script>
"use strict";
const shown = {};
function put(id, value) {
  document.getElementById(id).textContent = (value === null || value === undefined) ? "–" : value;
}
function has(v) { return v !== undefined && v !== null; }
function lastShot(l) {
  if (!l || !has(l.shot)) return "–";
  const parts = ["#" + l.shot];
  if (has(l.fluence)) parts.push(l.fluence.toFixed(2) + " mJ/cm²");
  if (has(l.wavelength)) parts.push(l.wavelength.toFixed(0) + " nm");
  if (has(l.objective)) parts.push("objective " + l.objective.toFixed(3));
  if (has(l.damage_prob)) parts.push("damage p " + l.damage_prob.toFixed(3));
  if (l.class_name) parts.push(l.class_name);
  if (l.action) parts.push(l.action);
  return parts.join(", ");
}
async function tick() {
  let wait = 1000;
  try {
    const r = await fetch("api/state", {cache: "no-store"});
    const s = await r.json();
    wait = Math.min(1000, Math.max(250, 1000 * s.poll_s));
    put("catalog", s.catalog); put("uid", s.uid); put("scan-id", s.scan_id);
    put("shots", s.shots); put("status", s.status); put("stop-reason", s.stop_reason);
    put("last", lastShot(s.last)); put("checked", s.checked);
    put("model", has(s.model_shots) ? "of " + s.model_shots + " shots, drawn in "
        + s.model_seconds + " s" : null);
    document.getElementById("error").textContent = s.error || "";
    const notes = document.getElementById("notes");
    notes.replaceChildren(...Object.values(s.notes || {}).map(t => {
      const li = document.createElement("li"); li.textContent = t; return li; }));
    for (const [name, version] of Object.entries(s.images || {})) {
      if (shown[name] !== version) {
        document.getElementById("img-" + name).src =
          "plot/" + name + ".png?v=" + encodeURIComponent(version);
        shown[name] = version;
      }
    }
  } catch (e) {
    document.getElementById("error").textContent = "the monitor does not answer: " + e;
  }
  setTimeout(tick, wait);
}
tick();
</script>
</body></html>
"""


def create_app(follower: CampaignFollower) -> Any:
    """The FastAPI app of the page: ``/`` (HTML), ``/api/state`` (JSON), ``/plot/NAME.png``.

    Parameters
    ----------
    follower : CampaignFollower
        Its snapshots are what every request returns; requests never read the catalog.

    Returns
    -------
    fastapi.FastAPI
    """
    from fastapi import FastAPI, HTTPException
    from fastapi.responses import HTMLResponse, JSONResponse, Response

    app = FastAPI(title="uedsteer monitor", docs_url=None, redoc_url=None, openapi_url=None)
    no_store = {"Cache-Control": "no-store"}

    @app.get("/", response_class=HTMLResponse)
    def page() -> HTMLResponse:
        return HTMLResponse(PAGE, headers=no_store)

    @app.get("/api/state")
    def state() -> JSONResponse:
        return JSONResponse(follower.snapshot().state, headers=no_store)

    @app.get("/plot/{name}.png")
    def plot(name: str) -> Response:
        png = follower.snapshot().images.get(name)
        if png is None:
            allowed = ", ".join(IMAGES)
            raise HTTPException(404, f"no plot {name!r} yet (plots: {allowed})")
        # the page asks with ?v=<version>: a new shot is a new address
        return Response(png, media_type="image/png", headers={"Cache-Control": "max-age=3600"})

    return app


def serve(config: MonitorConfig, sock: Any, catalog: Any | None = None) -> None:
    """Serve the page on ``sock`` (from :func:`bind_socket`) until SIGINT or SIGTERM, which
    end it normally.

    Parameters
    ----------
    config : MonitorConfig
    sock : socket.socket
        Bound to 127.0.0.1 and listening.
    catalog : tiled client, optional
        Already opened read-only (default: opened by the follower).
    """
    import uvicorn

    host = sock.getsockname()[0]
    if host != HOST:
        raise ValueError(f"the monitor binds to {HOST} only, not {host}")
    follower = CampaignFollower(config, catalog)
    stop = threading.Event()
    reader = threading.Thread(
        target=follower.run, args=(stop,), name="uedsteer-monitor-reader", daemon=True
    )
    reader.start()
    server = uvicorn.Server(
        uvicorn.Config(create_app(follower), log_level="warning", access_log=False)
    )
    # uvicorn stops on SIGINT/SIGTERM and then raises the signal again for the handler it
    # found: make that one a no-op, so a stop request ends the monitor normally (status 0)
    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {s: signal.signal(s, lambda *_: None) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.run(sockets=[sock])
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        stop.set()
        reader.join(timeout=30)
        follower.close()
        sock.close()
