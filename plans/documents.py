"""The layout of a campaign run's documents, written once for its writer and its readers.

:func:`uedsteer.plans.campaign.campaign` writes a run in this layout; :mod:`uedsteer.plans.resume`
and :mod:`uedsteer.plans.simulate` read it back from the catalog, and
:func:`uedsteer.plans.catalog.read_frames` finds the frames by it. Changing a name here changes
what new runs record and what is looked up in old ones, so a change needs a reader for both.

Streams (``run[stream]``)
    :data:`REFERENCE` (pristine frames, shutter closed), :data:`PROPOSALS` (one event per
    proposal), :data:`SHOTS` (one event per shot: frame, settings, scores, decision),
    :data:`FAILURES` (one event per failed shot) and, with ``check_frames``, :data:`CHECKS`
    (the probe-only frame after each shot, shutter closed).
Readouts
    Soft devices that carry the controller's side into events; a field ``f`` of readout ``r``
    is the event key ``f"{r}_{f}"`` (:func:`readout_key`): :data:`SHOT_READOUT` in
    :data:`SHOTS` and :data:`FAILURES`, :data:`PROPOSAL_READOUT` in :data:`PROPOSALS`,
    :data:`CHECK_READOUT` (:data:`CHECK_FIELDS`) in :data:`CHECKS`. Besides
    the fields named here, both carry every setting (``SETTING_NAMES``) and the shot readout
    every score.
Frames
    The detector's ``image`` reading: event key :func:`frame_key` of the start document.
Start document
    ``plan_name`` is :data:`CAMPAIGN_PLAN`; :data:`CONFIG_KEY` holds the campaign
    configuration, :data:`RESUMED_FROM_KEY` the uid of the run a resumed campaign continues,
    :data:`DETECTORS_KEY` the detector names, :data:`SIMULATION_KEY` a simulated run's sample,
    :data:`THREADS_KEY` the thread budget the campaign computed with.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "CAMPAIGN_PLAN",
    "CHECKS",
    "CHECK_FIELDS",
    "CHECK_LABELS",
    "CHECK_READOUT",
    "CONFIG_KEY",
    "DETECTORS_KEY",
    "FAILURES",
    "PLAN_NAME_KEY",
    "PROPOSALS",
    "PROPOSAL_COUNTS",
    "PROPOSAL_FIELDS",
    "PROPOSAL_FIGURES",
    "PROPOSAL_JSON",
    "PROPOSAL_LABELS",
    "PROPOSAL_READOUT",
    "REFERENCE",
    "RESUMED_FROM_KEY",
    "SHOTS",
    "SHOT_COUNTS",
    "SHOT_LABELS",
    "SHOT_READOUT",
    "SIMULATION_KEY",
    "THREADS_KEY",
    "frame_key",
    "readout_key",
    "readout_prefix",
]

# ------------------------------------------------------------------ streams
REFERENCE = "reference"
"""Pristine frames taken with the pump shutter closed before the first shot."""
PROPOSALS = "proposals"
"""One event per proposal: the settings and the optimizer's figures."""
SHOTS = "primary"
"""One event per shot: frame, every device reading, scores and decision (atomic)."""
FAILURES = "failures"
"""One event per failed shot (a detector fault): settings and the error."""
CHECKS = "checks"
"""With ``check_frames``: one event per shot, the probe-only frame taken right after it on the
same spot with the pump shutter closed, and its damage probability."""

# ------------------------------------------------------------------ readouts
CHECK_READOUT = "check"
"""Name of the readout of a check frame (keys ``check_<field>``)."""
CHECK_FIELDS = ("shot", "spot", "damage_prob")
"""A check frame's readout: the shot it checks, its spot, its damage probability."""
CHECK_LABELS = ("action",)
"""Text field of a check frame's readout: the shot's action after the check (a check frame
that shows damage turns ``continue`` into ``move`` or ``stop``)."""
SHOT_READOUT = "campaign"
"""Name of the readout carrying a shot's scores and decision (keys ``campaign_<field>``)."""
SHOT_COUNTS = ("shot", "spot")
"""Integer fields of the shot readout: shot index (continuous across resumes), sample spot."""
SHOT_LABELS = ("status", "error", "action", "class_name")
"""Text fields of the shot readout: ``ok``/``failed``, the fault, what the halting rules
decided, the predicted class (``invalid`` for a failed shot)."""

PROPOSAL_READOUT = "proposal"
"""Name of the readout carrying one proposal (keys ``proposal_<field>``)."""
PROPOSAL_COUNTS = ("shot", "spot", "n_safe", "n_candidates")
"""Integer fields of the proposal readout."""
PROPOSAL_FIGURES = ("damage_ucb", "acquisition", "heating_limit", "seconds")
"""Number fields of the proposal readout (NaN where a step has none)."""
PROPOSAL_LABELS = ("mode",)
"""Text fields of the proposal readout: why the point was chosen."""
PROPOSAL_JSON = ("models", "gp_state")
"""JSON fields of the proposal readout: the GP summary, and the full GP state a resumed
campaign warm-starts from."""

PROPOSAL_FIELDS: Mapping[str, type] = {
    "mode": str,
    "damage_ucb": float,
    "acquisition": float,
    "n_safe": int,
    "n_candidates": int,
    "heating_limit": float,
}
"""The optimizer's figures of a shot (``Step.info``) as read back into ``Trial.proposal``."""


def readout_prefix(readout: str) -> str:
    """The prefix of every event key of ``readout`` (``campaign_``)."""
    return f"{readout}_"


def readout_key(readout: str, field: str) -> str:
    """The event key of ``field`` of ``readout`` (``campaign_shot``, ``proposal_mode``)."""
    return readout_prefix(readout) + field


# ------------------------------------------------------------------ start document
PLAN_NAME_KEY = "plan_name"
"""Start-document key naming the plan; :data:`CAMPAIGN_PLAN` for a campaign run."""
CAMPAIGN_PLAN = "campaign"
"""``plan_name`` of a campaign run."""
CONFIG_KEY = "campaign_config"
"""Start-document key of the campaign configuration (``CampaignConfig.model_dump``)."""
RESUMED_FROM_KEY = "resumed_from"
"""Start-document key of the uid of the run a resumed campaign continues (None: a new one)."""
DETECTORS_KEY = "detectors"
"""Start-document key of the detector names; the first one's image holds the frames."""
SIMULATION_KEY = "simulation"
"""Start-document key of a simulated campaign's ``SimulationRecord``."""
THREADS_KEY = "threads"
"""Start-document key of the campaign's thread budget
(:class:`~uedsteer.surrogates.threads.ThreadBudget`'s fields) and, under ``limits``, the limits
read back in the thread that ran the plan (:func:`~uedsteer.surrogates.threads.current_limits`)."""


def frame_key(start: Mapping[str, Any]) -> str:
    """The event key of a run's frames: ``<detector>_image`` of the first detector its start
    document names (``det_image`` for the simulated beamline)."""
    return f"{(start.get(DETECTORS_KEY) or ['det'])[0]}_image"
