"""Damage attribution: which shot hurt the spot.

Damage is irreversible and shows in the frames *after* the shot that caused it. The damage
evidence of a shot is therefore the damage probability of the next frame on the same spot (its
own frame's while no later frame exists), and of the probe-only frame taken right after it
where the campaign takes one (``check_frames``: ``check_damage_prob``). A shot on a spot that
was hurt before it says nothing about its own settings, so such shots are left out of the
damage model; they stay in the record. The spot was hurt before a shot when the shot's own frame
shows damage, or when an earlier check frame on the spot did: the pumped frame of a shot can
read a hurt spot as undamaged where the probe-only frame does not.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .record import Trial

DAMAGED = 0.5
"""A frame whose damage probability reaches this shows a hurt spot (for attribution)."""


def attributed_damage(trials: Sequence[Trial]) -> np.ndarray:
    """Damage evidence per shot: the next frame's damage probability on the same spot
    (own frame's for the latest shot), at least its check frame's; NaN for failed shots and
    shots on a spot that was already hurt (their own frame, or an earlier check frame there,
    shows damage)."""
    return damage_evidence(trials)[0]


def damage_evidence(trials: Sequence[Trial]) -> tuple[np.ndarray, np.ndarray]:
    """:func:`attributed_damage`, and per shot whether its check frame (``check_frames``)
    saw its spot: a probe-only frame right after the shot. Without one, the shot's own frame
    and the next pumped frame are all that speak for it, and a pumped frame can read a hurt
    spot as undamaged."""
    out = np.full(len(trials), np.nan)
    checked = np.zeros(len(trials), dtype=bool)
    hurt: set[int] = set()  # spots an earlier check frame showed damaged
    for i, t in enumerate(trials):
        own = t.scores.get("damage_prob", math.nan)
        check = t.scores.get("check_damage_prob", math.nan)
        before = t.spot in hurt
        if np.isfinite(check) and check >= DAMAGED:
            hurt.add(t.spot)
        if t.status != "ok" or not np.isfinite(own) or own >= DAMAGED or before:
            continue
        nxt = next(
            (
                u
                for u in trials[i + 1 :]
                if u.spot == t.spot
                and u.status == "ok"
                and np.isfinite(u.scores.get("damage_prob", math.nan))
            ),
            None,
        )
        out[i] = own if nxt is None else max(own, nxt.scores["damage_prob"])
        checked[i] = bool(np.isfinite(check))
        if np.isfinite(check):
            out[i] = max(out[i], check)
    return out, checked


def damage_free(damage: np.ndarray) -> np.ndarray:
    """Indices of the shots whose attributed damage is known and below ``DAMAGED``, latest
    first (failed shots and shots on a hurt spot have none)."""
    d = np.asarray(damage, dtype=np.float64)
    ok = np.flatnonzero(np.isfinite(d) & (d < DAMAGED))
    return ok[::-1]
