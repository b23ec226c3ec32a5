"""Rebuild a :class:`~uedsteer.controller.campaign.Campaign` from its runs in the catalog.

A campaign run (``plans.campaign``) writes each shot as one event: settings, frame and
scores together (stream ``primary``), failed shots to ``failures``, the optimizer's figures
per proposal to ``proposals``, and its pristine reference frames to ``reference``. A resumed
campaign writes a new run whose start document names the run it continues (``resumed_from``);
loading follows that chain back to the origin, so the newest run of a chain can be resumed.

A campaign has one line of runs: a run that another run already continues is not resumed a
second time (that would fire the same shot numbers twice on two branches); the caller either
resumes the newest run or asks for it (``follow="newest"``). Children are found with a Tiled
metadata query on ``start.resumed_from``.

The resumed campaign keeps its recorded configuration, changed only as
:mod:`~uedsteer.controller.resume_changes` allows. The GP hyperparameters recorded with the
latest proposal warm-start the optimizer, so the first proposal after a resume is as fast as
any other.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from .campaign import SETTING_NAMES, Trial, frame_key
from .config import CampaignConfig
from .resume_changes import apply_changes, config_changes

PREFIX = "campaign_"
MAX_CHAIN = 1000
FOLLOW = ("refuse", "newest")
"""What :func:`load_campaign` does with a run that another run already continues."""

PROPOSAL_FIELDS = {
    "mode": str,
    "damage_ucb": float,
    "acquisition": float,
    "n_safe": int,
    "n_candidates": int,
    "heating_limit": float,
}
"""The optimizer's figures of a shot (``Step.info``), as recorded in the ``proposals`` stream."""


class AlreadyResumed(ValueError):
    """Run ``uid`` was already continued by another run; resuming it again would fire the same
    shot numbers on a second branch.

    Attributes
    ----------
    uid : str
        The run asked for.
    children : list of str
        The runs that continue it, oldest first.
    newest : str
        The newest run descending from it: the one to resume (``follow="newest"``).
    """

    def __init__(self, uid: str, children: list[str], newest: str) -> None:
        self.uid, self.children, self.newest = uid, list(children), newest
        more = f" (and {len(children) - 1} more)" if len(children) > 1 else ""
        super().__init__(
            f"run {uid!r} was already resumed by run {children[-1]!r}{more}; resume the newest "
            f"run {newest!r} of this campaign, or pass follow='newest'"
        )


def catalog_name(catalog: Any) -> str:
    """A readable name of a catalog: the folder of an embedded one, else its address."""
    try:
        url = str(catalog.context.http_client.app.state.root_tree.context.engine.url)
    except AttributeError:
        url = ""
    if url.startswith("sqlite") and url.endswith("/catalog.db"):
        return url.split(":///", 1)[-1].rsplit("/", 1)[0]
    return str(getattr(catalog, "uri", catalog))


def _run(catalog: Any, uid: str) -> Any:
    try:
        return catalog[uid]
    except KeyError:
        raise ValueError(f"no run {uid!r} in catalog {catalog_name(catalog)}") from None


def children(catalog: Any, uid: str) -> list[Any]:
    """The runs that continue run ``uid`` (full uid), oldest first."""
    from tiled.queries import Key

    found = list(catalog.search(Key("start.resumed_from") == uid).values())
    return sorted(found, key=lambda r: r.metadata["start"].get("time", 0.0))


def newest_descendant(catalog: Any, uid: str) -> Any | None:
    """The most recently started run that descends from run ``uid`` (None if none does)."""
    newest, todo, seen = None, [uid], {uid}
    while todo and len(seen) < MAX_CHAIN:
        for run in children(catalog, todo.pop()):
            start = run.metadata["start"]
            if start["uid"] in seen:
                continue
            seen.add(start["uid"])
            todo.append(start["uid"])
            if newest is None or start.get("time", 0.0) >= newest.metadata["start"].get(
                "time", 0.0
            ):
                newest = run
    return newest


def run_chain(catalog: Any, uid: str) -> list[Any]:
    """Run ``uid`` and the runs it continues, origin first.

    Raises
    ------
    ValueError
        If ``uid`` or a run the chain names is not in the catalog.
    """
    runs = [_run(catalog, uid)]
    while len(runs) < MAX_CHAIN:
        start = runs[-1].metadata["start"]
        prev = start.get("resumed_from")
        if not prev:
            break
        try:
            runs.append(catalog[prev])
        except KeyError:
            raise ValueError(
                f"run {start['uid']!r} continues run {prev!r}, which is not in catalog "
                f"{catalog_name(catalog)}"
            ) from None
    return runs[::-1]


def stream_table(run: Any, stream: str, prefix: str = "") -> dict[str, np.ndarray]:
    """The scalar columns of a run's event stream whose names start with ``prefix`` (removed
    from the returned names); {} for a stream the run lacks.

    The columns come in one request from the stream's table (bluesky-tiled-plugins keeps the
    scalar event data of a stream in its ``internal`` table), else one request per column.
    """
    try:
        node = run[stream]
    except KeyError:
        return {}
    try:
        table = node.base["internal"].read()
    except (AttributeError, KeyError):
        table = None
    if table is not None:
        return {
            str(k)[len(prefix) :]: table[k].to_numpy()
            for k in table.columns
            if str(k).startswith(prefix)
        }
    out = {}
    for k in node:
        if not k.startswith(prefix) or k.endswith("_image"):
            continue
        try:
            out[k[len(prefix) :]] = np.asarray(node[k].read())
        except Exception:  # noqa: BLE001 - a column that was never written is empty
            continue
    return out


def _is_number(values: np.ndarray) -> bool:
    return np.issubdtype(np.asarray(values).dtype, np.number)


def _trials_of(run: Any) -> list[Trial]:
    trials = []
    for stream in ("primary", "failures"):
        cols = stream_table(run, stream, PREFIX)
        if "shot" not in cols:
            continue
        for i in range(len(cols["shot"])):
            scores = {
                k: float(v[i])
                for k, v in cols.items()
                if k not in ("shot", "spot", "status", "error", "action", "class_name")
                and k not in SETTING_NAMES
                and _is_number(v)
            }
            trials.append(
                Trial(
                    index=int(cols["shot"][i]),
                    settings={k: float(cols[k][i]) for k in SETTING_NAMES},
                    spot=int(cols["spot"][i]),
                    status=str(cols["status"][i]),
                    scores=scores,
                    error=str(cols["error"][i]),
                    action=str(cols["action"][i]),
                )
            )
    return trials


def _proposals_of(cols: Mapping[str, np.ndarray]) -> dict[int, dict[str, float | str]]:
    """The optimizer's figures per shot index, as ``Trial.proposal`` holds them."""
    if "shot" not in cols or any(k not in cols for k in PROPOSAL_FIELDS):
        return {}
    out: dict[int, dict[str, float | str]] = {}
    for i, shot in enumerate(cols["shot"]):
        out[int(shot)] = {k: kind(cols[k][i]) for k, kind in PROPOSAL_FIELDS.items()}
    return out


def _latest_gp_state(proposals: list[Mapping[str, np.ndarray]]) -> dict:
    """The GP state recorded with the chain's latest proposal ({} if none was recorded);
    ``proposals``: each run's ``proposals`` columns, origin first."""
    for cols in proposals[::-1]:
        for raw in cols.get("gp_state", [])[::-1]:
            state = json.loads(str(raw))
            if state:
                return state
    return {}


def _continued_run(catalog: Any, uid: str, follow: str) -> Any:
    """The run to continue: ``uid``, or with ``follow="newest"`` its newest descendant."""
    if follow not in FOLLOW:
        raise ValueError(f"follow={follow!r} is not one of {FOLLOW}")
    run = _run(catalog, uid)
    start = run.metadata["start"]
    if start.get("plan_name") != "campaign":
        raise ValueError(f"run {uid!r} is a {start.get('plan_name')!r} run, not a campaign")
    newest = newest_descendant(catalog, start["uid"])
    if newest is None:
        return run
    if follow == "newest":
        return newest
    kids = [r.metadata["start"]["uid"] for r in children(catalog, start["uid"])]
    raise AlreadyResumed(start["uid"], kids, newest.metadata["start"]["uid"])


def load_campaign(
    cls,
    catalog: Any,
    uid: str,
    changes: Mapping[str, Any] | None = None,
    follow: str = "refuse",
    config: CampaignConfig | None = None,
    **kwargs: Any,
):
    """Rebuild a campaign of class ``cls`` from run ``uid`` (see the module docstring).

    Parameters
    ----------
    catalog : tiled client of bluesky runs
    uid : str
    changes : mapping, optional
        Allowed configuration changes (:func:`~uedsteer.controller.resume_changes.apply_changes`).
    follow : {"refuse", "newest"}
        For a run that another run already continues.
    config : CampaignConfig, optional
        A full configuration whose differences from the recorded one become changes
        (:func:`~uedsteer.controller.resume_changes.config_changes`).
    **kwargs
        Passed to ``cls`` (``objective``, ``constraints``, ``spots``).

    Returns
    -------
    Campaign
        With ``resumed_from`` (the continued run's uid), ``resumed_runs`` (the chain, origin
        first), ``resume_changes``, ``previous_stop`` and ``finished_reason``.

    Raises
    ------
    ValueError
        See :meth:`Campaign.resume`.
    """
    runs = run_chain(catalog, _continued_run(catalog, uid, follow).metadata["start"]["uid"])
    start = runs[-1].metadata["start"]
    recorded = CampaignConfig.model_validate(start["campaign_config"])
    asked = dict(config_changes(recorded, config)) if config is not None else {}
    asked.update(changes or {})
    cfg, applied = apply_changes(recorded, asked)
    trials: dict[int, Trial] = {}
    proposals: dict[int, dict[str, float | str]] = {}
    proposal_columns = [stream_table(run, "proposals", "proposal_") for run in runs]
    for run, cols in zip(runs, proposal_columns, strict=True):
        for t in _trials_of(run):
            trials[t.index] = t  # a shot index is unique; later runs never repeat one
        proposals.update(_proposals_of(cols))  # a later run re-proposes a shot it lost
    ordered = [trials[k] for k in sorted(trials)]
    missing = sorted(set(range(max(trials, default=-1) + 1)) - set(trials))
    if missing:
        raise ValueError(f"campaign {uid!r} lacks shots {missing} in the catalog")
    for t in ordered:
        t.proposal = dict(proposals.get(t.index, {}))
    camp = cls(cfg, **kwargs)
    damaged = sorted({t.spot for t in ordered if t.action == "move"})
    camp.restore_trials(ordered, damaged)
    last_stop = runs[-1].metadata.get("stop") or {}
    # the last shot's own decision first: a run can end in a crash after a stopping shot
    reason = camp.recorded_stop(recorded) or str(last_stop.get("reason") or "")
    if ordered and ordered[-1].action == "stop" and reason.startswith("damage"):
        camp.restore_trials(ordered, [*damaged, ordered[-1].spot])
    try:
        camp.optimizer.load_state(_latest_gp_state(proposal_columns))
    except ValueError as err:  # the GPs then refit from scratch: slower, nothing lost
        warnings.warn(f"campaign {uid!r}: recorded GP state not used ({err})", stacklevel=2)
    for run in runs:
        try:
            ref = np.asarray(run["reference"][frame_key(run.metadata["start"])].read())
        except KeyError:
            continue
        if len(ref):
            camp.reference = ref.mean(axis=0)
            break
    camp.resumed_from = start["uid"]
    camp.resumed_runs = runs
    camp.resume_changes = applied
    camp.previous_stop = reason
    return camp
