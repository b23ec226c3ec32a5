"""Where to go within the safe set besides the acquisition's choice: the initial climb, the
approach step, and the hottest-when-flat filter.

Each strategy proposes or filters candidates; none bypasses a rule except the approach step,
which is exempt from the heating expansion only (its growth in absorbed energy is known) and
must pass every other rule.
"""

from __future__ import annotations

import numpy as np

from ..config import CampaignConfig
from .coordinates import SearchSpace
from .evidence import Evidence, heating_readings
from .models import logit

APPROACH_FROM = 0.15
"""The approach step starts from frames that read at least this progress: the shipped scorer
reads 0.09–0.16 at x ≈ 0.03–0.06 (see ``HEATING_VALID_PROGRESS``), where the step would be a
guess."""
APPROACH_MAX_RATIO = 1.5
"""Largest fluence ratio of one approach step."""


def objective_values(scores: dict[str, np.ndarray], config: CampaignConfig) -> np.ndarray:
    """The ``objective`` column, or the configured objective's score field."""
    return np.asarray(scores.get("objective", scores[config.objective]), dtype=float)


def climbing(
    space: SearchSpace,
    config: CampaignConfig,
    settings: np.ndarray,
    scores: dict[str, np.ndarray],
    last: np.ndarray,
) -> bool:
    """True while the initial climb (``climb_heating``) goes on.

    The heating expansion judges a step by the hottest frame so far, and a frame at the safe
    start reads heating at the frame noise (≈ 0.001 Å²), so wavelength steps taken from there
    creep in fluence and cannot show a transformation. While the climb goes on, each shot
    stays at the start's other settings and goes to the highest fluence there that passes
    every rule (mode ``"climb"``): at one wavelength the absorbed energy is proportional to the
    fluence, so this is the cheapest way to a heating reading that lets later steps carry a
    useful excitation.

    It goes on while every measurement so far stood at the other settings of ``last`` (the
    campaign has not moved from its start), none caused damage (``damage_prob`` ≥ 0.5), the
    objective is flat (spread below ``objective_scale``) and no heating reading
    (:func:`~.evidence.heating_readings`: frames of an untransformed lattice; a
    transformation's onset lifts the Debye–Waller figure too, and is a reason to climb on)
    has reached ``climb_heating``.
    """
    cfg = config
    if cfg.climb_heating is None or "fluence" not in space.names or "heating" not in scores:
        return False
    settings = np.array(settings, dtype=np.float64, ndmin=2)
    if not len(settings) or not np.all(np.isfinite(settings)):
        return False
    if not space.at_other_settings(settings, last).all():
        return False
    dmg = np.asarray(scores["damage_prob"], dtype=np.float64)
    if np.any(np.nan_to_num(dmg, nan=0.0) >= 0.5):
        return False
    obj = objective_values(scores, cfg)
    obj = obj[np.isfinite(obj)]
    if len(obj) and float(obj.max() - obj.min()) >= cfg.objective_scale:
        return False
    heat = heating_readings(scores)
    return not np.any(np.nan_to_num(heat, nan=0.0) >= cfg.climb_heating)


def approach_point(
    space: SearchSpace,
    config: CampaignConfig,
    settings: np.ndarray,
    scores: dict[str, np.ndarray],
    last: np.ndarray,
) -> np.ndarray | None:
    """The approach step from the latest frame, or None (``approach_width``).

    A partly transformed frame carries no heating reading, so the heating expansion grows
    past it only by what it vouches for, and the climb stalls short of the target. If the
    latest measurement sits at the ramp origin ``last``, caused no damage (``damage_prob`` <
    δ) and reads a progress p with :data:`APPROACH_FROM` ≤ p < target, a transformation
    :math:`x = \\sigma((\\varepsilon - \\varepsilon_T)/(w\\,\\varepsilon_T))` of relative width
    w in absorbed energy puts the threshold at :math:`\\varepsilon/(1 + w\\,\\mathrm{logit}\\,p)`;
    the step goes to the same settings with the fluence scaled to reach
    :math:`x = (1 + \\text{target})/2` (at most :data:`APPROACH_MAX_RATIO`, within the ramp
    limit and the search box). At one wavelength the absorbed energy is proportional to the
    fluence, so the step's growth is known without the heating model.

    None where those limits leave the model predicting less than the target (a threshold far
    above the frame's fluence marks a wavelength off the resonance, where damage comes
    first), and after a shot that was itself such a step and fell short (the transition is
    slower there, or began above the damage threshold: the heating expansion decides again).
    The scorer reads an early transformation as more progress than it is (0.24 at x = 0.11),
    so the step errs short. The width w is an assumption about the sample, not a fit: a
    broader transition makes the step fall short, a sharper one overshoots the aim (the
    fluence ratio is the same). The damage bound, the constraints and the heating limit still
    apply to the step.
    """
    cfg = config
    w = cfg.approach_width
    if w is None or cfg.objective != "progress" or "fluence" not in space.names:
        return None
    settings = np.array(settings, dtype=np.float64, ndmin=2)
    if not len(settings) or "progress" not in scores:
        return None
    here = settings[-1]
    if not np.all(np.isfinite(here)) or not np.allclose(here, last, rtol=1e-9, atol=1e-9):
        return None
    p = float(np.asarray(scores["progress"], dtype=np.float64)[-1])
    d = float(np.asarray(scores["damage_prob"], dtype=np.float64)[-1])
    if not (np.isfinite(p) and np.isfinite(d)) or d >= cfg.damage_bound:
        return None
    if not APPROACH_FROM <= p < cfg.target:
        return None
    j = space.names.index("fluence")
    if len(settings) >= 2:
        # no chains: a shot before at these other settings with less fluence and a partly
        # transformed frame means this shot was that step, and it fell short of the model
        prev = settings[-2]
        p_prev = float(np.asarray(scores["progress"], dtype=np.float64)[-2])
        if (
            space.at_other_settings(prev, here, tol=1e-6)[0]
            and prev[j] < here[j]
            and np.isfinite(p_prev)
            and p_prev >= APPROACH_FROM
        ):
            return None
    # The onset x = σ((F − F_T)/s) at this wavelength, from this frame and the assumed
    # relative width w: F_T = F/(1 + w logit p), s = w·F_T.
    f_t = here[j] / (1.0 + w * float(logit(np.array(p))))
    scale = w * f_t
    f = min(
        f_t + scale * float(logit(np.array((1.0 + cfg.target) / 2.0))),
        here[j] * APPROACH_MAX_RATIO,
        here[j] + space.steps[j],
        space.box_high[j],
    )
    # the step bypasses the heating expansion only because the model says where it lands:
    # cut short of the target, the model itself expects another partial frame
    if f <= here[j] or (f - f_t) / scale < float(logit(np.array(cfg.target))):
        return None
    point = here.copy()
    point[j] = f
    return point


def hottest(points: np.ndarray, evidence: Evidence, share: float | None) -> np.ndarray | None:
    """Mask of ``points`` whose predicted heating (GP mean) is at least ``share`` × the
    hottest of them (``explore_excitation``); None without a heating model or share.

    While the objective is flat (nothing has transformed yet) a cold point cannot show where
    the threshold is low: the transformation grows with the absorbed energy, so only the
    candidates near the hottest safe excitation are worth a shot.
    """
    if share is None or evidence.heating is None or len(points) == 0:
        return None
    mean, _ = evidence.heating.posterior(points)
    return mean >= mean.max() + np.log(share)
