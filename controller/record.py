"""The record of a campaign: its shots (:class:`Trial`), the record itself
(:class:`CampaignRecord`), the two answers of :meth:`~uedsteer.controller.campaign.Campaign.next`
(:class:`Step`, :class:`Stop`) and a shot's score row (:func:`score_row`, :func:`failed_scores`).

Nothing here reads the simulated sample: :attr:`Trial.truth` is filled only by the simulation
harness for benchmarks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from uedsteer.sim_devices.materials import default_material

from .config import SCORE_NAMES
from .safe.optimizer import Proposal


@dataclass
class Trial:
    """One shot of a campaign.

    Attributes
    ----------
    index : int
        Shot number within the campaign (0, 1, …), continuous across resumes.
    settings : dict
        fluence (mJ/cm²), wavelength (nm), charge (fC), delay (ps).
    spot : int
        Sample spot.
    status : str
        ``"ok"`` or ``"failed"`` (device fault or an invalid frame); failed shots are kept.
    scores : dict
        The frame's score fields (NaN for a failed shot) and the computed ``objective``.
    error : str
        Why a shot failed.
    action : str
        What the halting rules decided after this shot (``continue``, ``move``, ``stop``).
    proposal : dict
        The optimizer's figures for this shot (damage bound, acquisition, safe-set size …).
    truth : dict, optional
        The simulated sample's hidden truth (benchmarks only; the controller never reads it).
    """

    index: int
    settings: dict[str, float]
    spot: int
    status: str = "ok"
    scores: dict[str, float] = field(default_factory=dict)
    error: str = ""
    action: str = "continue"
    proposal: dict[str, float | str] = field(default_factory=dict)
    truth: dict[str, Any] | None = None


@dataclass
class CampaignRecord:
    """Every shot of a campaign in order, and why it stopped."""

    trials: list[Trial] = field(default_factory=list)
    stop_reason: str | None = None

    def __len__(self) -> int:
        return len(self.trials)

    def to_dataframe(self):
        """One row per shot: settings, spot, status, score fields and, when known, the truth
        as ``truth_x``, ``truth_vacancy``, ``truth_molten`` (plus the other truth fields)."""
        import pandas as pd

        rows = []
        for t in self.trials:
            row: dict[str, Any] = {"shot": t.index, "spot": t.spot, "status": t.status}
            row.update(t.settings)
            row.update(t.scores)
            row.update({"error": t.error, "action": t.action})
            row.update({f"proposal_{k}": v for k, v in t.proposal.items()})
            if t.truth is not None:
                for k, v in t.truth.items():
                    if k != "phonon_amplitudes":
                        row[f"truth_{k}"] = v
            rows.append(row)
        return pd.DataFrame(rows)


@dataclass(frozen=True)
class Stop:
    """The campaign is over; ``reason`` says why."""

    reason: str


@dataclass(frozen=True)
class Step:
    """Settings for the next shot (all four settings, plus the optimizer's figures)."""

    settings: dict[str, float]
    spot: int
    proposal: Proposal | None = None

    def info(self) -> dict[str, float | str]:
        """The optimizer's figures as plain numbers, and why the point was chosen (``mode``:
        see :class:`Proposal`; ``initial`` for the initial shots and ramp-down steps)."""
        p = self.proposal
        if p is None:  # initial shots and ramp-down steps: no optimizer figures
            return {
                "mode": "initial",
                "damage_ucb": math.nan,
                "acquisition": math.nan,
                "n_safe": 0,
                "n_candidates": 0,
                "heating_limit": math.nan,
            }
        return {
            "mode": p.mode,
            "damage_ucb": p.damage_ucb,
            "acquisition": p.acquisition,
            "n_safe": p.n_safe,
            "n_candidates": p.n_candidates,
            "heating_limit": p.heating_limit,
        }


def default_classes() -> tuple[str, ...]:
    """Class names of the default material (what a model card without names is read as):
    what a failed shot's row names before any scored shot has named the scorer's classes."""
    return tuple(str(c) for c in default_material().class_names)


def score_row(scores: Mapping[str, Any], classes: Sequence[str] | None = None) -> dict[str, float]:
    """Flatten a scorer row (``Scores.row``) into numbers: class probabilities as
    ``p_<class>``, latent as ``z<i>``.

    The class names are the row's own ``classes`` (the scorer's model card); ``classes``
    names them for a row without (default :func:`default_classes`).
    """
    out: dict[str, float] = {}
    for k in SCORE_NAMES:
        out[k] = float(scores.get(k, math.nan))
    out["predicted_class"] = float(scores.get("predicted_class", -1))
    names = scores.get("classes") or (default_classes() if classes is None else classes)
    probs = scores.get("class_probs") or [math.nan] * len(names)
    out.update({f"p_{c}": float(v) for c, v in zip(names, probs, strict=True)})
    for i, v in enumerate(scores.get("latent") or []):
        out[f"z{i}"] = float(v)
    return out


def failed_scores(n_latent: int = 4, classes: Sequence[str] | None = None) -> dict[str, float]:
    """The score row of a failed shot: every field NaN (``classes``: see :func:`score_row`)."""
    row = score_row({}, classes)
    row.update({f"z{i}": math.nan for i in range(n_latent)})
    return row
