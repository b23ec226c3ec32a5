"""The safe optimizer: ramp and hard limits hold for every proposal; damage is never
proposed; asking for the safe set changes nothing; the proposal says why it was chosen."""

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safe_sample import CFG, lows_highs, truth, with_constraint

from uedsteer.controller.config import CampaignConfig
from uedsteer.controller.errors import ControllerError, NoSafeCandidate
from uedsteer.controller.safe.optimizer import SafeOptimizer


# derandomized: the same examples in every run (CI runs on a fresh clone, without the example
# database), so that a rare draw like the one below cannot turn a run red at random
@settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    st.lists(st.tuples(st.floats(0.2, 5.0), st.floats(500, 1100)), min_size=2, max_size=8),
    st.integers(0, 7),
)
def test_proposals_respect_ramp_and_hard_limits(points, which):
    x = np.array(points)
    last = x[which % len(x)]
    opt = SafeOptimizer(CFG)
    try:
        prop = opt.propose(x, truth(x), last)
    except NoSafeCandidate:
        return  # refusing is always allowed
    new = np.array([prop.settings[n] for n in opt.names])
    steps = np.array([p.max_step for p in CFG.parameters])
    lo, hi = lows_highs()
    assert np.all(np.abs(new - last) <= steps + 1e-9), "ramp limit"
    assert np.all(new >= lo - 1e-9) and np.all(new <= hi + 1e-9), "search box"
    hard_hi = np.array([p.hard_high or p.high for p in CFG.parameters])
    assert np.all(new <= hard_hi)
    assert prop.damage_ucb <= CFG.damage_bound + 1e-9
    sc = truth(x)
    hot = sc["heating"][sc["damage_prob"] < 0.5]
    if len(hot):
        h_new = truth(new[None])["heating"][0]
        assert h_new <= 3.0 * (CFG.heating_growth * hot.max() + CFG.heating_floor), "heating"


@pytest.mark.xfail(
    strict=True,
    reason="issue 33: readings at the frame noise (0.001 Å²) are floored and carry no fluence "
    "slope, so a step from them is bounded by the ramp limit, not by the heating frontier: on a "
    "strongly absorbing wavelength that is a large step in absorbed energy",
)
def test_a_climb_from_readings_at_the_noise_floor_stays_near_the_heating_frontier():
    """Two cold shots at 500 nm (0.25 and 0.20 mJ/cm², readings 0.00099 and 0.00076 Å²): the
    next shot must not heat more than three times the expansion's frontier. Found by the
    property test above (a rare random draw); it climbs to 1.75 mJ/cm², 0.0124 Å²."""
    x = np.array([[0.25, 500.0], [0.203125, 500.0]])
    prop = SafeOptimizer(CFG).propose(x, truth(x), x[0])
    new = np.array([[prop.settings["fluence"], prop.settings["wavelength"]]])
    frontier = CFG.heating_growth * truth(x)["heating"].max() + CFG.heating_floor
    assert truth(new)["heating"][0] <= 3.0 * frontier


def test_safe_set_leaves_the_optimizer_unchanged():
    """Asking for the safe set fits models but keeps none of them: the warm-start state and
    the candidates' sequences are as before, so the next proposal is the same as a twin's
    that never asked."""
    x = np.array([[0.5, 800.0], [1.0, 800.0], [1.5, 800.0], [2.0, 850.0]])
    opt, twin = SafeOptimizer(CFG), SafeOptimizer(CFG)
    opt.propose(x, truth(x), x[-1])
    twin.propose(x, truth(x), x[-1])
    state, before = opt.gp_state, json.dumps(opt.export_state(), sort_keys=True)
    x1 = np.vstack([x, [[2.5, 850.0]]])
    found = opt.safe_set(x1, truth(x1), x1)
    assert found.gp_state.fitted_at["damage"] == 5, "the safe set's own fits"
    assert opt.gp_state.fitted_at["damage"] == 4
    assert opt.gp_state is state and json.dumps(opt.export_state(), sort_keys=True) == before
    a, b = opt.propose(x1, truth(x1), x1[-1]), twin.propose(x1, truth(x1), x1[-1])
    assert a == b
    opt.keep_warm(found)
    assert opt.gp_state is found.gp_state


def test_a_constraint_on_a_small_score_does_not_block_the_start():
    """A score of size 0.001 under a bound of 0.03: one flat measurement must leave room to
    move (a GP assuming a spread of 1 would refuse every candidate)."""
    x = np.array([[0.5, 800.0]])
    scores = {**truth(x), "recon_error": np.array([0.001])}
    prop = SafeOptimizer(with_constraint(0.03)).propose(x, scores, x[0])
    assert prop.n_safe > 0


def test_failed_measurements_are_skipped_not_fatal():
    x = np.array([[0.5, 800], [1.5, 800], [2.5, 800]])
    scores = truth(x)
    scores["progress"][1] = np.nan
    prop = SafeOptimizer(CFG).propose(x, scores, x[0])
    assert set(prop.settings) == {"fluence", "wavelength"}
    scores = {k: np.full(3, np.nan) for k in scores}
    with pytest.raises(NoSafeCandidate, match="no successful measurement") as err:
        SafeOptimizer(CFG).propose(x, scores, x[-1])
    assert isinstance(err.value, ControllerError) and isinstance(err.value, RuntimeError)


def test_climbs_towards_the_transformation_without_damage():
    opt = SafeOptimizer(CFG)
    x = np.array([[0.5, 800.0], [1.0, 800.0], [1.5, 800.0], [2.0, 800.0]])
    for _ in range(16):
        try:
            prop = opt.propose(x, truth(x), x[-1])
        except NoSafeCandidate:
            break
        x = np.vstack([x, [prop.settings["fluence"], prop.settings["wavelength"]]])
    sc = truth(x)
    assert sc["progress"].max() > 0.5, f"reached {sc['progress'].max():.2f}"
    assert sc["damage_prob"].max() < 0.5, "never stepped into damage"


def test_a_target_beyond_the_ramp_limit_is_approached_through_the_safe_set():
    """The best safe point lies 200 nm away: the proposal walks there within the ramp limit."""
    x = np.array(
        [[0.5, 800], [1.5, 800], [2.5, 800], [3.0, 800], [3.3, 800], [1.0, 900], [1.0, 1000]]
    )
    last = x[-1]
    opt = SafeOptimizer(CFG)
    prop = opt.propose(x, truth(x), last)
    new = np.array([prop.settings[n] for n in opt.names])
    goal = np.array([prop.target[n] for n in opt.names])
    steps = np.array([p.max_step for p in CFG.parameters])
    assert np.all(np.abs(new - last) <= steps + 1e-9), "ramp limit"
    assert abs(goal[1] - 800) < abs(last[1] - 800), "the target is towards the transformation"
    assert prop.travel and prop.mode.endswith("+travel")
    assert not opt.space.within_ramp(goal, last)
    u = opt.space.to_model(np.array([new, last, goal]))
    assert np.linalg.norm(u[0] - u[2]) < np.linalg.norm(u[1] - u[2]), "closer to the target"
    assert prop.damage_ucb <= CFG.damage_bound


def test_before_any_transformation_the_target_is_at_the_hottest_safe_excitation():
    """Flat progress: a cold point at a new wavelength cannot show a low threshold, so the
    target's absorbed energy (heating) is at least that of the hottest damage-free shot."""
    x = np.array([[0.5, 800.0], [1.0, 800.0], [1.5, 800.0], [2.0, 800.0], [0.5, 650.0]])
    scores = truth(x)
    rng = np.random.default_rng(0)
    scores["progress"] = 0.02 + rng.normal(0, 0.003, len(x))
    opt = SafeOptimizer(CampaignConfig(n_candidates=64, explore_excitation=0.7))
    prop = opt.propose(x, scores, x[-2])
    goal = np.array([[prop.target["fluence"], prop.target["wavelength"]]])
    assert truth(goal)["heating"][0] >= scores["heating"].max(), prop.target
