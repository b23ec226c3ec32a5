"""An interactive beamline session: RunEngine, simulated beamline, plans, catalog, live tables.

``uedsteer ipython`` starts IPython with this namespace; ``make_session()`` builds it for any
other shell or notebook::

    RE(fluence_scan(bl, [0.5, 1, 2]))
    run = db[-1]
    frames = read_frames(run)          # (3, 261, 261) float32
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from . import catalog as _catalog
from . import scans as _scans


def make_session(
    catalog: str | Path = "uedsteer_catalog",
    seed: int = 0,
    live_table: bool = True,
    api_key: str | None = None,
) -> dict[str, Any]:
    """Build the session namespace.

    The process's thread budget is applied first
    (:func:`~uedsteer.surrogates.threads.apply_thread_budget`: ``OMP_NUM_THREADS`` and its
    family, or the cores the process may use), before the RunEngine's thread or the scorer
    computes anything. A bluesky-queueserver startup profile that builds its namespace here
    gets it too; one that builds its own calls ``apply_thread_budget()`` first.

    Parameters
    ----------
    catalog : str or Path
        Folder of the local Tiled catalog, or an ``http(s)://`` URI of a Tiled server
        (API key from ``api_key`` or ``TILED_API_KEY``).
    seed : int
        Seed of the simulated beamline.
    live_table : bool
        Print bluesky's BestEffortCallback tables while plans run (plots off: no display).
    api_key : str, optional
        For a Tiled server.

    Returns
    -------
    dict
        ``RE``, ``bl`` (the beamline), ``db`` (the catalog), ``bec``, the plans
        (``acquire_frames``, ``delay_scan``, ``fluence_scan``, ``grid_scan``, ``campaign``),
        ``Campaign``, ``CampaignConfig``, ``resume_campaign``, ``campaign_plots``, the shipped
        ``scorer``,
        ``read_frames``, ``event_columns``, ``subscribe`` (already done for ``RE`` and
        ``db``; calling it again changes nothing) and ``np``.
    """
    from bluesky import RunEngine
    from bluesky.callbacks.best_effort import BestEffortCallback

    from uedsteer.sim_devices.beamline import SimulatedBeamline
    from uedsteer.surrogates.threads import apply_thread_budget

    apply_thread_budget()  # before the RunEngine's thread and the scorer compute anything
    db = _catalog.open_catalog(catalog, api_key=api_key)
    RE = RunEngine({}, scan_id_source=_catalog.scan_id_source(db))
    _catalog.subscribe(RE, db)  # durable: every document journalled before the plan goes on
    bec = BestEffortCallback()
    bec.disable_plots()
    if live_table:
        RE.subscribe(bec)
    ns: dict[str, Any] = {
        "RE": RE,
        "bl": SimulatedBeamline(seed=seed),
        "db": db,
        "bec": bec,
        "np": np,
        "read_frames": _catalog.read_frames,
        "subscribe": _catalog.subscribe,
        "event_columns": _catalog.event_columns,
    }
    for name in ("acquire_frames", "delay_scan", "fluence_scan", "grid_scan"):
        ns[name] = getattr(_scans, name)
    from uedsteer.controller.campaign import Campaign
    from uedsteer.controller.config import CampaignConfig
    from uedsteer.controller.plots import campaign_plots
    from uedsteer.surrogates.scorer import FrameScorer

    from .campaign import campaign
    from .resume import resume_campaign

    ns.update(
        campaign=campaign,
        Campaign=Campaign,
        resume_campaign=resume_campaign,
        CampaignConfig=CampaignConfig,
        campaign_plots=campaign_plots,
        scorer=FrameScorer.pretrained(),
    )
    return ns


BANNER = """uedsteer session: simulated MoTe2 UED beamline
  bl.pump.fluence / .wavelength / .shutter, bl.gun.charge, bl.delay.delay,
  bl.stage.spot, bl.detector
  RE(fluence_scan(bl, [0.5, 1, 2]))      RE(delay_scan(bl, [-1, 0, 1, 5]))
  db[-1]  ->  the newest run;  read_frames(db[-1])  ->  its frames
  c = Campaign(CampaignConfig(budget=20));  RE(campaign(bl, scorer, c))
  c.record.to_dataframe();  resume_campaign(db, db[-1].start["uid"])
  campaign_plots(c, scorer.line, "campaign_output")   # GP maps, objective, latent path
  Ctrl-C pauses with the shutter closed: RE.resume() or RE.abort()
"""


STOP_SIGNALS = ("SIGTERM", "SIGHUP")


def _die(signum: int, RE: Any) -> None:
    """Let the delivery catch up briefly, then end the process by the signal it got."""
    import os
    import signal

    delivery = getattr(RE, "uedsteer_delivery", None)
    if delivery is not None:
        delivery[0].flush(timeout=10)  # what is left is journalled and delivered later
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def stop_on_signals(RE: Any, shell: Any | None = None) -> list[str]:
    """Make SIGTERM and SIGHUP end an interactive session the way ``RE.abort()`` does.

    A running plan is paused at once (its shutter guard closes the pump shutter), then
    aborted with the signal as the stop document's reason, and the process ends; a paused
    plan is aborted; an idle session just ends. Without this a scheduler's stop or a closed
    terminal killed the session with the run open.

    Parameters
    ----------
    RE : bluesky.RunEngine
    shell : IPython shell, optional
        Where a running plan returns to after the pause (a ``post_run_cell`` hook aborts it).

    Returns
    -------
    list of str
        The names of the signals received (for the caller's own checks).
    """
    import logging
    import signal

    received: list[str] = []

    def handler(signum, _frame) -> None:
        name = signal.Signals(signum).name
        received.append(name)
        if RE.state == "running" and shell is not None:
            RE.request_pause(defer=False)  # the cell returns; post_run_cell aborts
            return
        logging.getLogger("bluesky").setLevel(logging.CRITICAL)
        if RE.state != "idle":
            RE.abort(f"signal {name}")
        _die(signum, RE)

    def after_cell(_result=None) -> None:
        if received:  # the reason is in the stop document; no traceback on the way out
            logging.getLogger("bluesky").setLevel(logging.CRITICAL)
        if received and RE.state != "idle":
            RE.abort(f"signal {received[-1]}")
        if received:
            _die(getattr(signal, received[-1]), RE)

    for name in STOP_SIGNALS:
        signal.signal(getattr(signal, name), handler)
    if shell is not None:
        shell.events.register("post_run_cell", after_cell)
    return received


def start_ipython(
    catalog: str | Path = "uedsteer_catalog",
    seed: int = 0,
    ipython_args: list[str] | None = None,
    api_key: str | None = None,
) -> None:
    """Open IPython with :func:`make_session`'s namespace (``ipython_args`` go to IPython)."""
    import IPython
    from traitlets.config import Config

    ns = make_session(catalog, seed, api_key=api_key)
    cfg = Config()
    cfg.TerminalInteractiveShell.banner2 = BANNER
    print(f"catalog: {catalog}")
    argv = [a for a in (ipython_args or []) if a != "--"]
    cfg.InteractiveShellApp.exec_lines = ["__uedsteer_stop_on_signals__(RE, get_ipython())"]
    ns["__uedsteer_stop_on_signals__"] = stop_on_signals
    IPython.start_ipython(argv=argv, user_ns=ns, config=cfg)
