"""``uedsteer facility up|status|down|campaign|resume``: the whole stack on 127.0.0.1.

``uedsteer facility up`` starts, as detached processes that outlive it, Redis, the served
catalog (what ``uedsteer serve`` runs: SQLite, or PostgreSQL with ``--postgres``),
``uedsteer ioc`` and the RE Manager with uedsteer's profile pointed at them (the writer key
for its RunEngine), waits until each answers, writes ``FOLDER/facility.json`` (mode 600) and
prints the addresses and the two keys. ``status`` checks each process and port of the state
file; ``down`` stops each by its process id and removes the state (twice is harmless).
``campaign`` and ``resume`` queue a ``uedsteer_campaign`` or ``uedsteer_resume`` item through
``bluesky-queueserver-api``, start the queue and wait for the run (``--no-wait``: not).
See :mod:`uedsteer.plans.facility` and ``docs/howto/run-the-facility-stack.md``.
"""

from __future__ import annotations

import argparse
from typing import Any

from .arguments import (
    add_simulation_arguments,
    int_at_least,
    number,
    positive_int,
    pv_prefix,
    tcp_port,
)
from .errors import fail, print_error

DEFAULT_FOLDER = "uedsteer_facility"  # uedsteer.plans.facility.DEFAULT_FOLDER (light import)

port = tcp_port()


def add_parser(sub: Any) -> None:
    """The ``facility`` sub-command and its actions."""
    p = sub.add_parser(
        "facility",
        help="start, inspect and stop the whole stack on 127.0.0.1; queue campaigns on it",
        description="Redis, the served catalog, the IOC and the RE Manager on 127.0.0.1.",
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    p.set_defaults(func=run)

    def action(name: str, help: str) -> argparse.ArgumentParser:
        a = actions.add_parser(name, help=help, description=help)
        a.add_argument(
            "--folder",
            default=DEFAULT_FOLDER,
            help=f"the facility's folder: state, catalog, logs (default {DEFAULT_FOLDER})",
        )
        return a

    up = action("up", "start Redis, the catalog, the IOC and the RE Manager; print the keys")
    up.add_argument(
        "--postgres",
        action="store_true",
        help="keep the catalog and the keys in a PostgreSQL started in FOLDER/postgres",
    )
    up.add_argument(
        "--prefix", default="UED:", type=pv_prefix, help="the IOC's PV prefix (default UED:)"
    )
    add_simulation_arguments(up, whose="the IOC's ")
    up.add_argument(
        "--ca-port", type=port, default=None, help="Channel Access port (default: free)"
    )
    up.add_argument("--catalog-port", type=port, default=None, help="Tiled's port (default: free)")
    up.add_argument(
        "--control-port",
        type=port,
        default=None,
        help="the RE Manager's control port (default: free)",
    )
    up.add_argument(
        "--monitor-port", type=port, default=None, help="the browser monitor's port (default: free)"
    )
    up.add_argument(
        "--timeout",
        type=number(0, open_low=True),
        default=300.0,
        help="seconds to wait for each server and the RE Worker (default 300)",
    )

    action("status", "what runs, from the state file (status 1 if anything is down)")

    down = action("down", "stop every process by its id and remove the state file")
    down.add_argument(
        "--timeout",
        type=number(0, open_low=True),
        default=15.0,
        help="seconds each process has after SIGTERM before SIGKILL (default 15)",
    )

    camp = action("campaign", "queue a campaign on the RE Manager and wait for its run")
    camp.add_argument("--config", help="campaign YAML (fields of CampaignConfig)")
    camp.add_argument("--budget", type=positive_int, help="shot budget (overrides the config)")
    camp.add_argument(
        "--n-reference",
        type=int_at_least(3),
        default=None,
        help="pristine reference frames first (default 3)",
    )
    _queue_arguments(camp)

    res = action("resume", "queue the continuation of campaign run UID and wait for its run")
    res.add_argument("uid", help="the campaign run's uid (or a unique prefix)")
    res.add_argument("--budget", type=positive_int, help="new shot budget, recorded shots included")
    res.add_argument(
        "--newest",
        action="store_true",
        help="continue the newest run of that campaign, however often it was resumed",
    )
    _queue_arguments(res)


def run(args: argparse.Namespace) -> int:
    """Run ``uedsteer facility ACTION`` (module docstring); returns the exit status."""
    actions = {
        "up": run_up,
        "status": run_status,
        "down": run_down,
        "campaign": run_campaign,
        "resume": run_resume,
    }
    return actions[args.action](args)


def _queue_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--no-wait", action="store_true", help="queue the item and return (do not wait for it)"
    )
    p.add_argument(
        "--timeout",
        type=number(0, open_low=True),
        default=None,
        help="seconds to wait for the run (default: no limit)",
    )


def _state(args: argparse.Namespace) -> Any:
    """The running facility's state; one line when there is none."""
    from uedsteer.plans.facility import load_state

    state = load_state(args.folder)
    if state is None:
        fail(
            args,
            f"--folder {args.folder!r}: no facility runs from there (no facility.json); start "
            f"one with: uedsteer facility up --folder {args.folder}",
        )
    return state


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())


def run_up(args: argparse.Namespace) -> int:
    """Run ``uedsteer facility up`` (module docstring); returns the exit status."""
    from pydantic import ValidationError

    from uedsteer.plans.facility import FacilityConfig, FacilityError, start_facility

    values = {
        "folder": args.folder,
        "postgres": args.postgres,
        "prefix": args.prefix,
        "sample": args.sample,
        "seed": args.seed,
        "ca_port": args.ca_port,
        "catalog_port": args.catalog_port,
        "control_port": args.control_port,
        "monitor_port": args.monitor_port,
        "open_timeout": args.timeout,
    }
    try:
        config = FacilityConfig(**values)
    except ValidationError as err:
        first = err.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "value"
        option = {"open_timeout": "timeout"}.get(field, field).replace("_", "-")
        allowed = "letters, digits and _ - : ." if field == "prefix" else first["msg"]
        fail(args, f"argument --{option}: {values.get(field)!r} is not allowed: {allowed}")
    try:
        state = start_facility(config, say=lambda line: print(line, flush=True))
    except FacilityError as err:
        fail(args, _one_line(err))
    print(banner(state), flush=True)
    return 0


def banner(state: Any) -> str:
    """What ``up`` prints once everything answers: the state file, the addresses, the keys."""
    from uedsteer.plans.served_catalog import READER_SCOPES, WRITER_SCOPES
    from uedsteer.sim_devices.epics_env import LOOPBACK_ENVIRONMENT

    epics = " ".join(
        f"{k}={v}" for k, v in LOOPBACK_ENVIRONMENT.items() if k.startswith("EPICS_CA_")
    )
    lines = [
        f"facility up; state {state.path} (mode 600), logs beside it",
        f"catalog      {state.catalog_url}  ({state.database})",
        f"queue        control {state.control_address}  info {state.info_address}",
        f"redis        {state.redis_address}",
        f"ioc          prefix {state.epics_prefix}, Channel Access 127.0.0.1:{state.ca_port}",
        f"channel access clients: export EPICS_CA_SERVER_PORT={state.ca_port} {epics}",
        f"qserver: export QSERVER_ZMQ_CONTROL_ADDRESS={state.control_address} "
        f"QSERVER_ZMQ_INFO_ADDRESS={state.info_address}",
        f"writer key (the RE Manager's RunEngine; {', '.join(WRITER_SCOPES)}):",
        f"  TILED_API_KEY={state.writer_key}",
        f"reader key (monitor, scientists; {', '.join(READER_SCOPES)}):",
        f"  TILED_API_KEY={state.reader_key}",
        f"queue a campaign: uedsteer facility campaign --folder {state.folder} --budget 20",
        f"stop it all:      uedsteer facility down --folder {state.folder}",
    ]
    return "\n".join(lines)


def run_status(args: argparse.Namespace) -> int:
    """Run ``uedsteer facility status``: 0 when every process runs and answers, else 1."""
    from uedsteer.plans.facility import facility_status, load_state

    state = load_state(args.folder)
    if state is None:
        print(f"no facility runs from {args.folder} (no facility.json)")
        return 1
    report = facility_status(state)
    print(f"facility in {state.folder}, started {state.started_at}")
    healthy = True
    for name, s in report.items():
        rec = s["record"]
        closed = [p for p, is_open in s["ports"].items() if not is_open]
        if not s["running"]:
            what = "NOT RUNNING"
        elif closed:
            what = f"running, port {', '.join(map(str, closed))} CLOSED"
        else:
            what = "running"
        healthy &= what == "running"
        print(f"  {name:<9} pid {rec.pid:<8} {what:<12} {rec.address}  log {rec.log}")
    queue = report.get("manager", {}).get("queue")
    if queue is not None:
        env = "open" if queue["worker_environment_exists"] else "closed"
        print(
            f"  queue: manager {queue['manager_state']}, worker environment {env}, "
            f"{queue['items_in_queue']} queued, {queue['items_in_history']} in the history"
        )
    print(f"  catalog {state.catalog_url}: reader key TILED_API_KEY={state.reader_key}")
    return 0 if healthy else 1


def run_down(args: argparse.Namespace) -> int:
    """Run ``uedsteer facility down``; nothing to stop is not an error."""
    from uedsteer.plans.facility import FacilityError, load_state, stop_facility

    state = load_state(args.folder)
    if state is None:
        print(f"nothing to stop: no facility runs from {args.folder} (no facility.json)")
        return 0
    try:
        stop_facility(state, timeout=args.timeout, say=lambda line: print(line, flush=True))
    except FacilityError as err:
        fail(args, _one_line(err))
    print(f"facility down; {state.path.name} removed (the catalog and its keys stay in the folder)")
    return 0


def _campaign_config(args: argparse.Namespace) -> dict[str, Any] | None:
    """The fields of ``--config``, checked here before anything is queued."""
    if not args.config:
        return None
    from pathlib import Path

    from pydantic import ValidationError

    from uedsteer.controller.config import CampaignConfig, format_validation_error

    path = Path(args.config).expanduser()
    if not path.is_file():
        fail(args, f"argument --config: {args.config!r} is not a file; give a campaign YAML")
    try:
        cfg = CampaignConfig.from_yaml(path)
    except ValidationError as err:
        fail(args, f"argument --config: {args.config!r}: {format_validation_error(err)}")
    except Exception as err:  # noqa: BLE001 - a YAML syntax error, an unreadable file
        fail(args, f"argument --config: {args.config!r}: {_one_line(err)}")
    return cfg.model_dump(mode="json", exclude_unset=True)


def run_campaign(args: argparse.Namespace) -> int:
    """Run ``uedsteer facility campaign``; 0 when the item completed."""
    config = _campaign_config(args)
    kwargs: dict[str, Any] = {}
    if config is not None:
        kwargs["config"] = config
    if args.budget is not None:
        kwargs["budget"] = args.budget
    if args.n_reference is not None:
        kwargs["n_reference"] = args.n_reference
    return _queue(args, "uedsteer_campaign", kwargs)


def run_resume(args: argparse.Namespace) -> int:
    """Run ``uedsteer facility resume UID``; 0 when the item completed."""
    kwargs: dict[str, Any] = {"uid": args.uid, "follow": "newest" if args.newest else "refuse"}
    if args.budget is not None:
        kwargs["budget"] = args.budget
    return _queue(args, "uedsteer_resume", kwargs)


def _queue(args: argparse.Namespace, plan: str, kwargs: dict[str, Any]) -> int:
    from uedsteer.plans.facility import FacilityError, queue_item, run_summary

    state = _state(args)
    try:
        outcome = queue_item(
            state,
            plan,
            kwargs,
            wait=not args.no_wait,
            timeout=args.timeout,
            say=lambda line: print(line, flush=True),
        )
    except FacilityError as err:
        fail(args, _one_line(err))
    except KeyboardInterrupt:
        print(
            f"uedsteer facility: stopped waiting; the item runs on (uedsteer facility status "
            f"--folder {args.folder})",
            flush=True,
        )
        return 130
    if outcome.exit_status is None:
        print(f"follow it with: uedsteer facility status --folder {args.folder}")
        return 0
    if outcome.exit_status != "completed":
        reason = f": {outcome.msg}" if outcome.msg else ""
        runs = f" (runs {', '.join(outcome.run_uids)})" if outcome.run_uids else ""
        print_error(args.command, f"item {outcome.item_uid} {outcome.exit_status}{runs}{reason}")
        return 1
    for uid in outcome.run_uids:
        summary = run_summary(state, uid)
        print(f"run {uid}" + (f": {summary}" if summary else ""))
    if outcome.run_uids:
        uid = outcome.run_uids[-1]
        print("read it with the reader key:")
        print(
            f'  curl -H "Authorization: Apikey {state.reader_key}" '
            f"{state.catalog_url}/metadata/{uid}"
        )
        print(
            f"  python: uedsteer.plans.catalog.connect_catalog({state.catalog_url!r}, "
            f"api_key={state.reader_key!r})[{uid!r}]"
        )
    return 0
