"""Rebuild a :class:`~uedsteer.controller.campaign.Campaign` from its runs in the catalog.

A campaign run (:func:`uedsteer.plans.campaign.campaign`) writes each shot as one event:
settings, frame and scores together (stream ``primary``), failed shots to ``failures``, the
optimizer's figures per proposal to ``proposals``, and its pristine reference frames to
``reference`` (the layout: :mod:`uedsteer.plans.documents`, read here by it). A resumed
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

from uedsteer.controller.campaign import Campaign
from uedsteer.controller.config import CampaignConfig
from uedsteer.controller.record import Trial
from uedsteer.controller.resume_changes import apply_changes, config_changes
from uedsteer.sim_devices.contracts import SETTING_NAMES

from . import documents as doc
from .documents import PROPOSAL_FIELDS, frame_key

__all__ = [
    "AlreadyResumed",
    "catalog_name",
    "children",
    "newest_descendant",
    "resume_campaign",
    "run_chain",
    "stream_table",
]

MAX_CHAIN = 1000
FOLLOW = ("refuse", "newest")
"""What :func:`resume_campaign` does with a run that another run already continues."""


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

    found = list(catalog.search(Key(f"start.{doc.RESUMED_FROM_KEY}") == uid).values())
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
        prev = start.get(doc.RESUMED_FROM_KEY)
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
    scalar event data of a stream in its ``internal`` table), else one request per column of a
    catalog that stores each as an array of its own. A table that is being created (its
    columns listed, its node not yet found) reads as no rows: reading its columns one by one
    while the run grows makes the served catalog fail each read (the client's cached shape no
    longer matches) and the client wait out its timeout.
    """
    try:
        node = run[stream]
    except KeyError:
        return {}
    base = getattr(node, "base", node)  # a composite stream lists its table's columns too
    try:
        table = base["internal"].read()
    except KeyError:
        table = None
    if table is not None:
        return {
            str(k)[len(prefix) :]: table[k].to_numpy()
            for k in table.columns
            if str(k).startswith(prefix)
        }
    out = {}
    for k in base:
        if k == "internal" or not k.startswith(prefix) or k.endswith("_image"):
            continue
        try:
            out[k[len(prefix) :]] = np.asarray(base[k].read())
        except Exception:  # noqa: BLE001 - a column that was never written is empty
            continue
    return out


def _is_number(values: np.ndarray) -> bool:
    return np.issubdtype(np.asarray(values).dtype, np.number)


def _trials_of(run: Any) -> list[Trial]:
    trials = []
    for stream in (doc.SHOTS, doc.FAILURES):
        cols = stream_table(run, stream, doc.readout_prefix(doc.SHOT_READOUT))
        if "shot" not in cols:
            continue
        for i in range(len(cols["shot"])):
            scores = {
                k: float(v[i])
                for k, v in cols.items()
                if k not in doc.SHOT_COUNTS + doc.SHOT_LABELS
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
    checks = stream_table(run, doc.CHECKS, doc.readout_prefix(doc.CHECK_READOUT))
    by_shot = {t.index: t for t in trials}
    shots = checks.get("shot", ())
    actions = checks.get("action", [""] * len(shots))  # runs recorded before it: none
    for shot, p, action in zip(shots, checks.get("damage_prob", ()), actions, strict=True):
        if int(shot) in by_shot:
            by_shot[int(shot)].scores["check_damage_prob"] = float(p)
            if str(action) not in ("", "continue"):  # the check changed the shot's action
                by_shot[int(shot)].action = str(action)
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
    if start.get(doc.PLAN_NAME_KEY) != doc.CAMPAIGN_PLAN:
        raise ValueError(f"run {uid!r} is a {start.get(doc.PLAN_NAME_KEY)!r} run, not a campaign")
    newest = newest_descendant(catalog, start["uid"])
    if newest is None:
        return run
    if follow == "newest":
        return newest
    kids = [r.metadata["start"]["uid"] for r in children(catalog, start["uid"])]
    raise AlreadyResumed(start["uid"], kids, newest.metadata["start"]["uid"])


def resume_campaign(
    catalog: Any,
    uid: str,
    changes: Mapping[str, Any] | None = None,
    follow: str = "refuse",
    config: CampaignConfig | None = None,
    **kwargs: Any,
) -> Campaign:
    """Rebuild a campaign from its run in the catalog and continue where it stopped.

    The campaign continues with its recorded configuration; only ``changes`` that never
    loosen its safety are applied (:mod:`uedsteer.controller.resume_changes`) and kept in
    :attr:`~uedsteer.controller.campaign.Campaign.resume_changes` for the new run's start
    document. Every recorded shot (successful and failed) comes back in order, with its scores
    and the optimizer's figures (``Trial.proposal``); the reference frames come back too, so
    the scorer scores exactly as before. The GP hyperparameters recorded with the latest
    proposal warm-start the optimizer. The resumed campaign proposes from the full record, so
    no shot is repeated; its budget counts the recorded shots. A run that had finished fires
    nothing unless the changes reopen it: see ``Campaign.finished_reason``.

    Parameters
    ----------
    catalog : tiled client of bluesky runs
    uid : str
        The campaign run's uid (or a prefix the catalog accepts); runs that themselves
        resumed another are followed back to their origin.
    changes : mapping, optional
        ``{field: value}`` of the configuration to change, e.g. ``{"budget": 60}``
        (:func:`~uedsteer.controller.resume_changes.apply_changes`).
    follow : {"refuse", "newest"}
        When the run was already resumed by another: refuse (:class:`AlreadyResumed`, a
        ``ValueError`` naming that run), or continue from the newest run that descends from it.
    config : CampaignConfig, optional
        A full configuration (e.g. from YAML): its differences from the recorded one must
        be allowed changes (:func:`~uedsteer.controller.resume_changes.config_changes`;
        ``changes`` apply on top).
    **kwargs
        Passed to the :class:`~uedsteer.controller.campaign.Campaign` constructor
        (``objective``, ``constraints``, ``spots``).

    Returns
    -------
    Campaign
        With ``resumed_from`` (the continued run's uid), ``resumed_runs`` (the chain, origin
        first), ``resume_changes``, ``previous_stop`` and ``finished_reason``.

    Raises
    ------
    ValueError
        One line: no such run in the catalog, not a campaign run, a run already resumed
        (with ``follow="refuse"``), a broken chain, or a change that is not allowed.

    Examples
    --------
    >>> camp = resume_campaign(db, db[-1].start["uid"], changes={"budget": 60})  # doctest: +SKIP
    >>> RE(campaign(bl, scorer, camp))  # doctest: +SKIP
    """
    runs = run_chain(catalog, _continued_run(catalog, uid, follow).metadata["start"]["uid"])
    start = runs[-1].metadata["start"]
    recorded = CampaignConfig.model_validate(start[doc.CONFIG_KEY])
    asked = dict(config_changes(recorded, config)) if config is not None else {}
    asked.update(changes or {})
    cfg, applied = apply_changes(recorded, asked)
    trials: dict[int, Trial] = {}
    proposals: dict[int, dict[str, float | str]] = {}
    prefix = doc.readout_prefix(doc.PROPOSAL_READOUT)
    proposal_columns = [stream_table(run, doc.PROPOSALS, prefix) for run in runs]
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
    camp = Campaign(cfg, **kwargs)
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
            ref = np.asarray(run[doc.REFERENCE][frame_key(run.metadata["start"])].read())
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
