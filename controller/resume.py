"""Rebuild a :class:`~uedsteer.controller.campaign.Campaign` from its runs in the catalog.

A campaign run (``plans.campaign``) writes each shot as one event: settings, frame and
scores together (stream ``primary``), failed shots to ``failures``, and its pristine
reference frames to ``reference``. A resumed campaign writes a new run whose start document
names the run it continues (``resumed_from``); loading follows that chain back to the origin,
so any run of the chain can be resumed. The GP hyperparameters recorded with the latest
proposal warm-start the optimizer, so the first proposal after a resume is as fast as any other.
"""

from __future__ import annotations

import json
import warnings
from typing import Any

import numpy as np

from .campaign import SETTING_NAMES, Trial, frame_key
from .config import CampaignConfig

PREFIX = "campaign_"
MAX_CHAIN = 1000


def _columns(run: Any, stream: str) -> dict[str, np.ndarray]:
    try:
        node = run[stream]
    except KeyError:
        return {}
    keys = [k for k in node if k.startswith(PREFIX)]
    out = {}
    for k in keys:
        try:
            out[k[len(PREFIX) :]] = np.asarray(node[k].read())
        except Exception:  # noqa: BLE001 - a column that was never written is empty
            continue
    return out


def _trials_of(run: Any) -> list[Trial]:
    trials = []
    for stream in ("primary", "failures"):
        cols = _columns(run, stream)
        if "shot" not in cols:
            continue
        for i in range(len(cols["shot"])):
            scores = {
                k: float(v[i])
                for k, v in cols.items()
                if k not in ("shot", "spot", "status", "error", "action", "class_name")
                and k not in SETTING_NAMES
                and np.issubdtype(np.asarray(v).dtype, np.number)
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


def _latest_gp_state(runs: list[Any]) -> dict:
    """The GP state recorded with the chain's latest proposal ({} if none was recorded)."""
    for run in runs[::-1]:
        try:
            states = np.asarray(run["proposals"]["proposal_gp_state"].read())
        except KeyError:  # no proposal yet, or a run written before the state was recorded
            continue
        for raw in states[::-1]:
            state = json.loads(str(raw))
            if state:
                return state
    return {}


def _chain(catalog: Any, uid: str) -> list[Any]:
    runs = [catalog[uid]]
    while len(runs) < MAX_CHAIN:
        prev = runs[-1].metadata["start"].get("resumed_from")
        if not prev:
            break
        runs.append(catalog[prev])
    return runs[::-1]


def load_campaign(cls, catalog: Any, uid: str, config: CampaignConfig | None = None, **kwargs):
    """Rebuild a campaign of class ``cls`` from run ``uid`` (see the module docstring).

    Parameters
    ----------
    catalog : tiled client of bluesky runs
    uid : str
    config : CampaignConfig, optional
        Continue with another configuration (e.g. a larger budget); default: the recorded one.
    **kwargs
        Passed to ``cls`` (``objective``, ``constraints``, ``spots``).
    """
    runs = _chain(catalog, uid)
    start = runs[-1].metadata["start"]
    if start.get("plan_name") != "campaign":
        raise ValueError(f"run {uid!r} is a {start.get('plan_name')!r} run, not a campaign")
    cfg = config or CampaignConfig.model_validate(start["campaign_config"])
    trials: dict[int, Trial] = {}
    for run in runs:
        for t in _trials_of(run):
            trials[t.index] = t  # a shot index is unique; later runs never repeat one
    ordered = [trials[k] for k in sorted(trials)]
    missing = sorted(set(range(max(trials, default=-1) + 1)) - set(trials))
    if missing:
        raise ValueError(f"campaign {uid!r} lacks shots {missing} in the catalog")
    camp = cls(cfg, **kwargs)
    damaged = sorted({t.spot for t in ordered if t.action == "move"})
    last_stop = runs[-1].metadata.get("stop") or {}
    reason = str(last_stop.get("reason") or "")
    if ordered and ordered[-1].action == "stop" and reason.startswith("damage"):
        damaged.append(ordered[-1].spot)
    camp.restore_trials(ordered, damaged)
    try:
        camp.optimizer.load_state(_latest_gp_state(runs))
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
    camp.resumed_from = runs[-1].metadata["start"]["uid"]
    camp.previous_stop = reason
    return camp
