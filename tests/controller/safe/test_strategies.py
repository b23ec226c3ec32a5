"""Strategies: the initial climb, the approach step, and the hottest-when-flat filter."""

import numpy as np
import pytest
from safe_sample import CFG, evidence, partly_transformed, start, truth

from uedsteer.controller.errors import NoSafeCandidate
from uedsteer.controller.safe.evidence import heating_readings
from uedsteer.controller.safe.optimizer import SafeOptimizer
from uedsteer.controller.safe.strategies import (
    APPROACH_MAX_RATIO,
    approach_point,
    climbing,
    hottest,
)

SPACE = SafeOptimizer(CFG).space


def test_a_partly_transformed_frame_sets_the_approach_step():
    """Progress 0.3 at 3 mJ/cm² with a transition width w = 0.1: x = 0.9 needs
    (1 + 0.1 logit 0.9)/(1 + 0.1 logit 0.3) = 1.333 × the fluence, at the same wavelength,
    beyond the heating expansion (which stops the climb over frames without a heating
    reading), with the damage bound still met."""
    x, scores = partly_transformed(0.3)
    prop = SafeOptimizer(CFG).propose(x, scores, x[-1])
    ratio = (1 + 0.1 * np.log(9.0)) / (1 + 0.1 * np.log(0.3 / 0.7))
    assert prop.strategy == "approach" and not prop.travel and prop.mode == "approach"
    assert prop.settings["wavelength"] == pytest.approx(800.0)
    assert prop.settings["fluence"] == pytest.approx(3.0 * ratio, rel=1e-6)
    assert prop.damage_ucb <= CFG.damage_bound
    p = SafeOptimizer(CFG.model_copy(update={"approach_width": None})).propose(x, scores, x[-1])
    assert p.strategy != "approach" and p.settings["fluence"] < 3.0 * ratio - 0.2


def test_the_approach_step_keeps_the_ramp_limit_and_needs_a_clean_partial_frame():
    def step(x, scores, last):
        return approach_point(SPACE, CFG, x, scores, last)

    x, scores = partly_transformed(0.16)
    point = step(x, scores, x[-1])
    ratio = (1 + 0.1 * np.log(9.0)) / (1 + 0.1 * np.log(0.16 / 0.84))
    assert ratio <= APPROACH_MAX_RATIO
    assert point[0] == pytest.approx(3.0 * ratio) and point[1] == 800.0
    x[-1, 0] = 8.0  # 1.46 × 8 = 11.7, but the ramp limit (1.5 mJ/cm²) allows only 9.5,
    # where the model predicts x = σ((9.5/8 (1 + 0.1 logit 0.16) − 1)/0.1) = 0.48 < target:
    # no step, the heating expansion governs the climb
    assert step(x, scores, x[-1]) is None
    scores["progress"][-1] = 0.5  # 1.22 × 8 = 9.76, cut to 9.5: x = σ(1.875) = 0.87 ≥ 0.8
    assert step(x, scores, x[-1])[0] == pytest.approx(9.5)
    x, scores = partly_transformed(0.3)
    assert step(x, scores, x[-2]) is None, "only from the ramp origin"
    for low in (0.1, 0.85):  # untransformed (a guess) or at the target already
        assert step(*partly_transformed(low), x[-1]) is None
    assert step(*partly_transformed(0.3, damage_last=0.3), x[-1]) is None
    x, scores = partly_transformed(0.3)
    scores["progress"][-2] = 0.2  # the last shot was itself an approach that fell short
    assert step(x, scores, x[-1]) is None
    scores["progress"][-2] = 0.04
    x[-2, 1] = 790.0  # a partial frame at another wavelength is no chain
    assert step(x, scores, x[-1]) is not None


def test_a_learned_damage_limit_bounds_the_approach_step():
    """A shot that caused damage at 1.5× the last frame's heating elsewhere: the approach step
    (~1.33× the fluence) would exceed heating_margin × that heating, so it is not proposed."""
    x, scores = partly_transformed(0.3)
    x = np.vstack([[[3.0, 780.0]], x])
    hot = 1.5 * truth(x[-1:])["heating"][0]
    for key, value in (("progress", 0.03), ("damage_prob", 0.95), ("heating", hot)):
        scores[key] = np.concatenate([[value], scores[key]])
    scores["line_distance"] = np.full(len(x), 0.3)
    try:
        prop = SafeOptimizer(CFG).propose(x, scores, x[-1])
    except NoSafeCandidate:
        return
    assert prop.strategy != "approach"
    new = np.array([[prop.settings["fluence"], prop.settings["wavelength"]]])
    assert truth(new)["heating"][0] < prop.heating_limit


def test_the_initial_climb_stays_at_the_start_wavelength_within_the_heating_expansion():
    """From a noise-level heating reading the climb goes to the highest safe fluence at the
    start's wavelength: more than the first shot, never beyond the ramp limit or the heating
    expansion's allowance (1.2 × 0.0012 + 0.002 Å² with heating ∝ fluence)."""
    x, scores = start([0.5], [0.0012])
    prop = SafeOptimizer(CFG).propose(x, scores, x[-1])
    assert prop.strategy == "climb" and not prop.travel
    assert prop.settings["wavelength"] == pytest.approx(800.0)
    assert 0.5 < prop.settings["fluence"] <= 0.5 + CFG.parameter("fluence").max_step
    assert prop.damage_ucb <= CFG.damage_bound
    allowed = CFG.heating_growth * 0.0012 + CFG.heating_floor
    assert 0.0012 * prop.settings["fluence"] / 0.5 <= allowed + 1e-9, "heating expansion"


def test_the_climb_ends_at_a_clear_heating_reading_a_move_damage_or_a_transformation():
    def on(x, scores, cfg=CFG):
        return climbing(SPACE, cfg, x, scores, x[-1])

    x, scores = start([0.5, 1.0, 2.0], [0.0012, 0.0025, 0.0045])
    assert on(x, scores)
    x, scores = start([0.5, 1.0, 2.0, 3.0], [0.0012, 0.0025, 0.0045, CFG.climb_heating])
    assert not on(x, scores), "the heating stands clear of the noise"
    assert SafeOptimizer(CFG).propose(x, scores, x[-1]).strategy != "climb"
    x, scores = start([0.5, 1.0, 2.0], [0.0012, 0.0025, 0.0045])
    x[1, 1] = 830.0
    assert not on(x, scores), "the campaign has moved from its start"
    x, scores = start([0.5, 1.0, 2.0], [0.0012, 0.0025, 0.0045])
    scores["damage_prob"][-1] = 0.9
    assert not on(x, scores), "a damaged frame"
    x, scores = start([0.5, 1.0, 2.0], [0.0012, 0.0025, 0.0045])
    scores["progress"][-1] = 0.3
    assert not on(x, scores), "something transforms"
    assert not on(*start([0.5], [0.0012]), CFG.model_copy(update={"climb_heating": None}))


def test_an_onset_frame_is_no_heating_reading_and_the_climb_goes_on():
    """At 2.96 mJ/cm² the onset of the transformation (x = 0.03) read progress 0.09 and
    lifted the Debye–Waller figure to 0.0098 Å², past ``climb_heating``. That figure is no
    lattice heating, so the climb goes on at the start's wavelength, to more fluence, still
    within the heating expansion of the untransformed frames."""
    x, scores = start([0.5, 0.79, 2.29, 2.96], [0.0019, 0.0019, 0.0041, 0.0098])
    scores["progress"][-1] = 0.09
    assert np.isnan(heating_readings(scores)[-1])
    assert heating_readings(scores)[:-1] == pytest.approx([0.0019, 0.0019, 0.0041])
    assert climbing(SPACE, CFG, x, scores, x[-1])
    prop = SafeOptimizer(CFG).propose(x, scores, x[-1])
    assert prop.strategy == "climb" and not prop.travel
    assert prop.settings["wavelength"] == pytest.approx(800.0)
    assert 2.96 < prop.settings["fluence"] <= 2.96 + CFG.parameter("fluence").max_step
    assert prop.damage_ucb <= CFG.damage_bound
    scores["progress"][-1] = 0.02  # the same reading on an untransformed frame ends the climb
    assert not climbing(SPACE, CFG, x, scores, x[-1])


def test_partly_transformed_frames_vouch_for_the_clean_reading_below_scaled_by_fluence():
    """Frames at 2.96 and 3.3 mJ/cm² are partly transformed (no heating reading). Each
    vouches for the clean reading at 2.29 mJ/cm² scaled by the fluence ratio (at one
    wavelength the absorbed energy is proportional to the fluence), never above the model's
    mean, so the climb goes on past what the model's lower bound alone would allow, and
    still within the heating expansion of that credit."""
    x, scores = start([0.5, 0.79, 2.29, 2.96, 3.3], [0.0019, 0.0019, 0.0041, 0.0098, 0.011])
    scores["progress"][-2:] = [0.09, 0.12]
    prop = SafeOptimizer(CFG).propose(x, scores, x[-1])
    assert prop.strategy == "climb" and prop.settings["wavelength"] == pytest.approx(800.0)
    data = evidence(x, scores)
    mean, sd = data.heating_posterior(x[-2:])
    lower, scaled = np.exp(mean - CFG.beta * sd), 0.0041 * x[-2:, 0] / 2.29
    credit = np.maximum(lower, np.minimum(np.exp(mean), scaled))
    assert credit.max() > lower.max()  # the scaled reading is what vouches here
    assert data.hottest == pytest.approx(max(0.0041, credit.max()))
    grown = [CFG.heating_growth * max(0.0041, c.max()) + CFG.heating_floor for c in (lower, credit)]
    m, s = data.heating_posterior(np.array([[prop.settings["fluence"], 800.0]]))
    bound = float(np.exp(m + CFG.beta * s)[0])
    assert grown[0] < bound <= grown[1]
    assert prop.damage_ucb <= CFG.damage_bound


def test_hottest_keeps_the_candidates_near_the_hottest_predicted_excitation():
    x, scores = start([0.5, 1.0, 2.0], [0.0012, 0.0025, 0.0045])
    data = evidence(x, scores)
    points = np.array([[0.5, 800.0], [1.0, 800.0], [2.0, 800.0]])
    assert hottest(points, data, 0.7).tolist() == [False, False, True]
    assert hottest(points, data, None) is None
