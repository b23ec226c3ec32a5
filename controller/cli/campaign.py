"""``uedsteer campaign``: a closed-loop campaign on the simulated beamline, from a shell.

What the command guarantees at its boundaries:

* the catalog (folder or Tiled server) is opened and checked before anything fires; a resumed
  campaign's catalog must already exist;
* the run's uid, scan id and the command that continues it are printed when the run opens;
* Ctrl-C, SIGTERM and SIGHUP all end the campaign the same way: the RunEngine aborts the plan
  (whose finalizer closes the pump shutter), the stop document records the reason, the CSV and
  plots are written, and one line says how to resume;
* a resumed campaign continues the recorded configuration with only the changes a user may
  make (a larger budget, a higher target, tighter halting), on the same simulated sample;
* the process runs within its thread budget (:mod:`uedsteer.surrogates.threads`: the
  configuration's ``threads``, the ``OMP_NUM_THREADS`` family, or the cores it may use), set
  before the models load and printed with the banner.
"""

from __future__ import annotations

import argparse
import logging
import signal
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .arguments import add_catalog_arguments

STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def nonnegative_int(text: str) -> int:
    """argparse type: an integer >= 0 (the campaign's own wording: 'x' is not an integer, -1 is
    negative)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative; use an integer >= 0")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = nonnegative_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: use an integer >= 1")
    return value


def add_parser(sub: Any) -> None:
    """The ``campaign`` sub-command's arguments."""
    p = sub.add_parser("campaign", help="closed-loop simulated campaign, logged to a catalog")
    p.add_argument("--config", help="campaign YAML (fields of CampaignConfig)")
    p.add_argument("--budget", type=positive_int, help="shot budget (overrides the config)")
    p.add_argument(
        "--sample",
        type=nonnegative_int,
        help="simulated sample ResponseParams.random(SAMPLE) instead of the defaults",
    )
    p.add_argument(
        "--seed",
        type=nonnegative_int,
        default=None,
        help="seed of the simulated beamline (default 0; on resume: the recorded one)",
    )
    add_catalog_arguments(p)
    p.add_argument("--out", default="campaign_output", help="folder for plots and the table")
    p.add_argument(
        "--resume",
        metavar="UID",
        help="continue the campaign of run UID with its recorded configuration (--budget and "
        "a --config may raise the budget or target and tighten the halting rules)",
    )
    p.add_argument(
        "--newest",
        action="store_true",
        help="with --resume: continue from the newest run of that campaign, however often it "
        "was resumed already",
    )
    p.set_defaults(func=run)


class _Signalled(Exception):
    """A stop signal arrived (SIGTERM, SIGHUP)."""


def _out_folder(out: str) -> Path:
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ValueError(f"--out {out!r} is a file; give a folder for the plots and the table")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _table(cfg, classes: Sequence[str]) -> tuple[str, Any]:
    """The live table's header and the function printing one shot (``classes``: the
    scorer's class names)."""
    from uedsteer.sim_devices.contracts import SETTING_UNITS

    extra = [p.name for p in cfg.parameters if p.name in ("charge", "delay")]
    symbol = {"charge": "Q", "delay": "t"}
    heads = {k: f"{symbol[k]} ({SETTING_UNITS[k]})" for k in extra}
    header = (
        f"{'shot':>4} {'spot':>4} {'fluence':>8} {'λ (nm)':>7} "
        + "".join(f"{heads[k]:>8} " for k in extra)
        + f"{'class':>12} {'progress':>8} {'damage':>7} {'heating':>8} {'action':>8}  why"
    )

    def show(t) -> None:
        s = t.scores
        cls = "invalid" if t.status != "ok" else _class_name(s, classes)
        print(
            f"{t.index:4d} {t.spot:4d} {t.settings['fluence']:8.2f} "
            f"{t.settings['wavelength']:7.0f} "
            + "".join(f"{t.settings[k]:8.1f} " for k in extra)
            + f"{cls:>12} {s['progress']:8.3f} {s['damage_prob']:7.3f} {s['heating']:8.4f}"
            f" {t.action:>8}  {t.proposal.get('mode', '')}",
            flush=True,
        )

    return header, show


def _class_name(scores: dict, classes: Sequence[str]) -> str:
    k = int(scores.get("predicted_class", -1))
    return classes[k] if 0 <= k < len(classes) else "invalid"


def _load_config(args: argparse.Namespace):
    from uedsteer.controller.config import CampaignConfig

    if not args.config:
        cfg = CampaignConfig()
    else:
        try:
            cfg = CampaignConfig.from_yaml(args.config)
        except FileNotFoundError:
            raise ValueError(f"--config {args.config!r}: no such file") from None
        except Exception as err:  # noqa: BLE001 - pydantic names the field
            raise ValueError(f"--config {args.config!r}: {_one_line(err)}") from None
    if args.budget is not None:
        cfg = CampaignConfig.model_validate({**cfg.model_dump(), "budget": args.budget})
    return cfg


def _one_line(err: Exception) -> str:
    from pydantic import ValidationError

    from uedsteer.controller.config import format_validation_error

    if isinstance(err, ValidationError):
        return format_validation_error(err)
    return " ".join(str(err).split())  # e.g. a YAML syntax error


def _resume(args: argparse.Namespace, catalog: Any):
    """The resumed campaign, its simulated sample and beamline seed."""
    from uedsteer.controller.config import CampaignConfig
    from uedsteer.plans.resume import AlreadyResumed, resume_campaign
    from uedsteer.plans.simulate import resume_simulation

    new = _load_config(args) if args.config else None
    changes = {"budget": args.budget} if args.budget is not None and new is None else None
    try:
        camp = resume_campaign(
            catalog,
            args.resume,
            changes=changes,
            config=new,
            follow="newest" if args.newest else "refuse",
        )
    except AlreadyResumed as err:
        raise ValueError(
            f"--resume {args.resume}: that run was already continued by {err.newest}; resume "
            f"that one, or add --newest to continue the newest run of the campaign"
        ) from None
    response, seed, sample = resume_simulation(
        catalog, camp.resumed_from, sample=args.sample, seed=args.seed
    )
    assert isinstance(camp.config, CampaignConfig)
    return camp, response, seed, sample


def run(args: argparse.Namespace) -> int:
    """Run ``uedsteer campaign`` (module docstring); returns the exit status."""
    from uedsteer.surrogates.threads import apply_thread_budget, choose_thread_budget

    # a bad OMP_NUM_THREADS is refused before torch loads (it would warn) and before the
    # catalog is touched
    choose_thread_budget()
    from bluesky import RunEngine

    from uedsteer.controller.campaign import Campaign
    from uedsteer.plans.catalog import open_catalog, scan_id_source, subscribe
    from uedsteer.sim_devices.response import ResponseParams
    from uedsteer.surrogates.scorer import FrameScorer

    warnings.filterwarnings("ignore", module="botorch|gpytorch|linear_operator")
    logging.getLogger("bluesky").setLevel(logging.CRITICAL)  # the reason is printed once
    out = _out_folder(args.out)
    catalog = open_catalog(args.catalog, api_key=args.api_key, create=not args.resume)
    if args.resume:
        camp, response, seed, sample = _resume(args, catalog)
        print(f"resuming {camp.resumed_from}: {len(camp.record)} shots recorded")
        for field, change in camp.resume_changes.items():
            print(f"  {field}: {change['recorded']} -> {change['resumed']}")
        if camp.finished_reason:
            print(f"nothing to do, no run opened: {camp.finished_reason}")
            return 0
    else:
        cfg = _load_config(args)
        camp = Campaign(cfg)
        sample, seed = args.sample, args.seed or 0
        response = ResponseParams() if sample is None else ResponseParams.random(sample)
    cfg = camp.config
    threads = apply_thread_budget(cfg.threads)  # before the RunEngine's thread computes
    scorer = FrameScorer.pretrained()
    print(
        f"simulated sample: {'defaults' if sample is None else f'random({sample})'}"
        f"; budget {cfg.budget} shots; catalog {args.catalog}"
    )
    print(threads.describe())
    header, show = _table(cfg, scorer.classes)

    RE = RunEngine({}, call_returns_result=True, scan_id_source=scan_id_source(catalog))
    subscribe(RE, catalog)
    where = f" --catalog {args.catalog}" if args.catalog != "uedsteer_catalog" else ""
    opened: list[str] = []  # uids of the runs this command opened

    def announce(name: str, doc: dict) -> None:
        if name == "start":
            opened.append(doc["uid"])
            print(
                f"run {doc['uid']} (scan {doc.get('scan_id')}); to continue it later: "
                f"uedsteer campaign --resume {doc['uid']}{where}"
            )
            print(header, flush=True)

    RE.subscribe(announce, "start")
    received: list[str] = []

    def on_signal(signum, _frame) -> None:
        received.append(signal.Signals(signum).name)
        if RE.state == "running":
            RE.request_pause(defer=False)  # RE(...) returns; the plan is aborted below
        elif RE.state == "idle" and not opened:
            raise _Signalled()  # before the run: nothing to close, nothing to write
        # after the run: the CSV and plots are being written; the exit status tells

    previous = {s: signal.signal(s, on_signal) for s in STOP_SIGNALS}
    try:
        _run_plan(RE, camp, response, seed, scorer, catalog, show, sample, received)
        _summary(camp, out, scorer)
        delivery = getattr(RE, "uedsteer_delivery", None)
        if delivery is not None and not delivery[0].flush(timeout=30):
            print(
                "catalog: not every document is delivered yet; they are journalled in "
                f"{delivery[0].journal.folder} and delivered when the catalog is next opened"
            )
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if camp.record.stop_reason and camp.record.stop_reason.startswith(("signal", "user")):
        print(f"to continue: uedsteer campaign --resume {(opened or ['UID'])[-1]}{where}")
    if received:
        return 128 + int(getattr(signal, received[-1]))
    return 130 if (camp.record.stop_reason or "").startswith("user") else 0


def _run_plan(RE, camp, response, seed, scorer, catalog, show, sample, received) -> None:
    """The campaign in the RunEngine; an interrupt or a signal aborts it (shutter closed)."""
    from bluesky.utils import RunEngineInterrupted

    from uedsteer.plans.simulate import simulate_campaign

    try:
        simulate_campaign(
            response=response,
            seed=seed,
            scorer=scorer,
            catalog=catalog,
            on_shot=show,
            RE=RE,
            controller=camp,
            sample=sample,
        )
    except (RunEngineInterrupted, _Signalled):
        why = f"signal {received[-1]}" if received else "user interrupt"
        if RE.state != "idle":
            RE.abort(why)  # the plan's finalizer closes the shutter; the stop doc says why
        camp.stop(f"{why} (shutter closed)")


def _summary(camp: Any, out: Path, scorer: Any) -> None:
    """Print the outcome, write the CSV and the plots."""
    from uedsteer.controller.plots import campaign_plots

    cfg = camp.config
    df = camp.record.to_dataframe()
    print(f"\nstop: {camp.record.stop_reason}")
    if len(df):
        ok = df[df["status"] == "ok"]
        if len(ok):
            best = ok.loc[ok["objective"].idxmax()]
            print(
                f"shots {len(df)} (failed {int((df['status'] != 'ok').sum())}); best "
                f"{cfg.objective} {best['objective']:.3f} at fluence {best['fluence']:.2f} "
                f"mJ/cm², wavelength {best['wavelength']:.0f} nm (shot {int(best['shot'])}); "
                f"max damage probability {ok['damage_prob'].max():.3f}; median proposal "
                f"{1000 * np.median(camp.proposal_seconds or [0]):.0f} ms"
            )
    if "truth_x" in df:  # simulated shots of this process (a resumed record has none before)
        sim = df[df["truth_x"].notna()]
        molten = sim["truth_molten"].astype(bool)
        succ = (sim["truth_x"] >= 0.8) & (sim["truth_vacancy"] < 0.02) & ~molten
        dmg = (sim["truth_vacancy"] >= 0.05) | molten
        print(
            f"hidden truth (simulation only, {len(sim)} shots): first success at shot "
            f"{int(sim['shot'][succ].iloc[0]) if succ.any() else 'none'}; damage events "
            f"{int(dmg.sum())}"
        )
    df.to_csv(out / "campaign.csv", index=False)
    for path in campaign_plots(camp, scorer.line, out):
        print(f"wrote {path}")
    print(f"wrote {out / 'campaign.csv'}")
