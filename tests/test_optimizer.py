"""Safe optimizer: ramp and hard limits hold for every proposal; damage is never proposed."""

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from uedsteer.controller.config import CampaignConfig
from uedsteer.controller.optimizer import (
    APPROACH_MAX_RATIO,
    NoSafeCandidate,
    SafeOptimizer,
    heating_readings,
)

CFG = CampaignConfig(n_candidates=64)


def truth(x):
    """Synthetic sample: damage above 6 mJ/cm², transformation from ~3 near 800 nm."""
    f, lam = x[:, 0], x[:, 1]
    damage = 1 / (1 + np.exp(-(f - 6.0) / 0.3))
    progress = np.exp(-((lam - 800) ** 2) / (2 * 120**2)) / (1 + np.exp(-(f - 3.0) / 0.4))
    heating = 0.002 * f**1.3 * np.where(lam < 600, 3.0, 1.0)  # C exciton absorbs more
    return {
        "progress": progress,
        "damage_prob": damage,
        "line_distance": np.full(len(x), 0.3),
        "heating": heating,
    }


def lows_highs():
    p = CFG.parameters
    return np.array([q.low for q in p]), np.array([q.high for q in p])


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
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


def test_learned_heating_limit_holds_at_every_wavelength():
    """Damage seen at one wavelength caps the heating everywhere (absorbed energy)."""
    x = np.array([[0.5, 800], [2.0, 800], [4.0, 800], [6.0, 800], [7.0, 800]])
    sc = truth(x)
    opt = SafeOptimizer(CFG)
    limit = opt.heating_limit_of(sc["heating"], sc["damage_prob"])
    hurt = sc["heating"][sc["damage_prob"] >= 0.5]
    assert limit == pytest.approx(CFG.heating_margin * hurt.min())
    probe = np.array([[3.0, 550.0], [2.0, 800.0]])  # 550 nm heats 3× more per fluence
    safe, _ = opt.safe_set(x, sc, probe)
    assert not safe[0], "a wavelength that absorbs more is not safe at the same fluence"


def test_configured_heating_cap_bounds_the_safe_set_before_any_damage():
    """heating_max is a hard limit on the heating upper bound, with no damage seen yet."""
    x = np.array([[0.5, 800], [1.0, 800], [2.0, 800], [3.0, 800], [4.0, 800], [2.0, 900]])
    sc = truth(x)
    probe = np.column_stack([np.linspace(0.5, 5.0, 10), np.full(10, 800.0)])
    free = SafeOptimizer(CFG)
    safe_free, _ = free.safe_set(x, sc, probe)
    assert free.heating_limit == float("inf")
    cap = float(truth(np.array([[2.5, 800.0]]))["heating"][0])
    capped = SafeOptimizer(CFG.model_copy(update={"heating_max": cap}))
    safe_cap, _ = capped.safe_set(x, sc, probe)
    assert capped.heating_limit == pytest.approx(cap)
    assert safe_free[probe[:, 0] > 2.5].any(), "without the cap the set reaches past 2.5 mJ/cm²"
    assert not safe_cap[probe[:, 0] > 2.5].any(), "nothing predicted hotter than the cap"
    assert safe_cap[probe[:, 0] < 2.0].all(), "below the cap the set is unchanged"
    with pytest.raises(ValueError, match="heating_max"):
        CampaignConfig(heating_max=-0.01)


def test_safe_set_excludes_known_damage_and_unexplored_space():
    x = np.array(
        [[0.5, 800], [1.0, 800], [1.5, 800], [2.0, 800], [3.5, 800], [7.0, 800], [7.0, 900]]
    )
    scores = truth(x)
    opt = SafeOptimizer(CFG)
    probe = np.array([[7.0, 800], [7.0, 850], [2.3, 800], [11.5, 1250]])
    safe, ucb = opt.safe_set(x, scores, probe)
    assert not safe[0] and not safe[1], "a measured damaging point is never safe"
    assert safe[2], "near measured safe points the set grows"
    assert not safe[3], "unexplored far-away settings are unsafe (prior: 50 % damage)"
    assert ucb[0] > 0.5


def test_the_bunch_charge_does_not_move_the_damage_or_heating_fences():
    """The charge acts on the probe: shots at 20 fC vouch for the same pump settings at any
    charge, and a damaging shot forbids its pump settings at every charge."""
    from uedsteer.controller.config import ParameterSpec

    charge = ParameterSpec(name="charge", low=5.0, high=100.0, max_step=20.0, safe_start=20.0)
    cfg = CampaignConfig(
        n_candidates=64, parameters=(*CFG.parameters, charge), fixed={"delay": 10.0}
    )
    pump = np.array([[0.5, 800], [1.0, 800], [1.5, 800], [2.0, 800], [3.5, 800], [7.0, 800]])
    x = np.column_stack([pump, np.full(len(pump), 20.0)])
    scores = truth(pump)
    probe = np.array([[2.3, 800, q] for q in (20.0, 60.0, 100.0)] + [[7.0, 800, 100.0]])
    opt = SafeOptimizer(cfg)
    safe, ucb = opt.safe_set(x, scores, probe)
    assert safe[:3].all() and not safe[3]
    assert ucb[:3] == pytest.approx(ucb[0]) and ucb[3] > 0.5
    heat = opt.heating_posterior(probe[:3])[0]
    assert heat == pytest.approx(heat[0])


def test_cold_frames_before_time_zero_do_not_open_the_safe_set():
    """Before time zero (and early after it) the probe sees a lattice that has not heated
    yet, whatever the pump deposited: such frames must not vouch for high fluences."""
    from uedsteer.controller.config import ParameterSpec

    delay = ParameterSpec(name="delay", low=-5.0, high=50.0, max_step=10.0, safe_start=10.0)
    cfg = CampaignConfig(
        n_candidates=64, parameters=(*CFG.parameters, delay), fixed={"charge": 20.0}
    )
    at_10 = np.array([[0.5, 800], [1.0, 800], [2.0, 800], [3.5, 800]])
    early = np.array([[3.5, 800], [5.0, 800], [6.5, 800], [8.0, 800]])
    x = np.vstack(
        [np.column_stack([at_10, np.full(4, 10.0)]), np.column_stack([early, np.full(4, -2.0)])]
    )
    scores = {k: np.concatenate([truth(at_10)[k], truth(early)[k]]) for k in truth(at_10)}
    scores["progress"][:] = 0.02  # nothing has transformed: every frame could read heating
    scores["heating"][4:] = 0.001  # no heating seen before time zero
    scores["damage_prob"][4:] = 0.0  # damage shows only in later frames
    opt = SafeOptimizer(cfg)
    probe = np.array([[9.5, 800, -2.0], [12.0, 800, -2.0], [9.5, 800, 10.0], [4.0, 800, 10.0]])
    safe, _ = opt.safe_set(x, scores, probe)
    assert not safe[:3].any(), "9.5 mJ/cm² and more lie far beyond the heating read at 10 ps"
    assert safe[3], "one step beyond the hottest reading stays open"
    # the cold frames are no heating readings: the model was fitted on the 10 ps frames only
    assert opt.summaries["heating"]["n"] == 4


def _with_constraint(bound: float) -> CampaignConfig:
    return CampaignConfig(
        n_candidates=64,
        constraints=[
            {"score": "line_distance", "bound": 3.0},
            {"score": "recon_error", "bound": bound},
        ],
    )


def test_a_constraint_on_a_small_score_does_not_block_the_start():
    """A score of size 0.001 under a bound of 0.03: one flat measurement must leave room to
    move (before, the GP assumed a spread of 1 and refused every candidate)."""
    x = np.array([[0.5, 800.0]])
    scores = {**truth(x), "recon_error": np.array([0.001])}
    prop = SafeOptimizer(_with_constraint(0.03)).propose(x, scores, x[0])
    assert prop.n_safe > 0


def test_constraints_are_judged_relative_to_their_bound():
    """The same constraint in other units (values and bound × 100) gives the same safe set,
    and a score rising past its bound with the fluence stops the climb."""
    x = np.array([[0.5, 800], [1.0, 800], [1.5, 800], [2.0, 800], [2.5, 800]])
    rising = 0.01 * x[:, 0]  # crosses 0.03 at 3 mJ/cm²
    probe = np.array([[2.6, 800], [6.0, 800], [9.0, 800]])
    sets = []
    for factor in (1.0, 100.0):
        scores = {**truth(x), "recon_error": factor * rising}
        safe, _ = SafeOptimizer(_with_constraint(0.03 * factor)).safe_set(x, scores, probe)
        sets.append(safe)
    assert np.array_equal(sets[0], sets[1])
    assert sets[0][0] and not sets[0][1] and not sets[0][2]


def test_callable_constraints_bound_the_safe_set_too():
    """Constraints computed by Python callables (Campaign(constraints=...)) are modelled and
    enforced like configured ones, not only checked when the target is reached."""
    from uedsteer.controller.campaign import Campaign

    x = np.array([[0.5, 800], [1.0, 800], [1.5, 800], [2.0, 800], [2.5, 800]])
    scores = {**truth(x), "hot": 0.01 * x[:, 0]}  # crosses 0.03 at 3 mJ/cm²
    probe = np.column_stack([np.linspace(2.5, 4.0, 31), np.full(31, 800.0)])
    free, _ = SafeOptimizer(CFG).safe_set(x, scores, probe)
    bounded, _ = SafeOptimizer(CFG, {"hot": 0.03}).safe_set(x, scores, probe)
    assert bounded[0] and not np.any(bounded & ~free), "a constraint only removes points"
    assert np.any(free & ~bounded), "and here it does"
    assert np.all(0.01 * probe[bounded, 0] <= 0.03 + 1e-9)
    camp = Campaign(CFG, constraints={"hot": (lambda s: 0.01 * s["heating"], 0.03)})
    assert ("hot", "x:hot", 0.03, "max") in camp.optimizer.constraints


def test_failed_measurements_are_skipped_not_fatal():
    x = np.array([[0.5, 800], [1.5, 800], [2.5, 800]])
    scores = truth(x)
    scores["progress"][1] = np.nan
    prop = SafeOptimizer(CFG).propose(x, scores, x[0])
    assert set(prop.settings) == {"fluence", "wavelength"}
    scores = {k: np.full(3, np.nan) for k in scores}
    with pytest.raises(NoSafeCandidate, match="no successful measurement"):
        SafeOptimizer(CFG).propose(x, scores, x[-1])


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
    assert opt.travel and not opt.within_ramp(goal, last)
    u = opt.to_model(np.array([new, last, goal]))
    assert np.linalg.norm(u[0] - u[2]) < np.linalg.norm(u[1] - u[2]), "closer to the target"
    assert prop.damage_ucb <= CFG.damage_bound


def test_exported_gp_state_warm_starts_a_fresh_optimizer():
    """What a resumed campaign gets from the catalog: the same GPs, no refit before it is due."""
    rng = np.random.default_rng(3)
    x = np.column_stack([rng.uniform(0.3, 4.0, 30), rng.uniform(600, 1000, 30)])
    opt = SafeOptimizer(CFG)
    opt.propose(x, truth(x), x[-1])
    state = json.loads(json.dumps(opt.export_state()))  # as stored in the proposals stream
    assert {"objective", "damage", "heating"} <= set(state)
    fresh = SafeOptimizer(CFG)
    fresh.load_state(state)
    x1 = np.vstack([x, [[2.0, 800.0]]])
    assert not fresh._needs_fit("damage", len(x1)), "a refit is due only every refit_every shots"
    cand = np.column_stack([np.linspace(0.2, 6.0, 40), np.full(40, 800.0)])
    safe_a, ucb_a = opt.safe_set(x1, truth(x1), cand)
    safe_b, ucb_b = fresh.safe_set(x1, truth(x1), cand)
    np.testing.assert_allclose(ucb_b, ucb_a, rtol=1e-9)
    assert (safe_a == safe_b).all()
    with pytest.raises(ValueError, match="state="):
        SafeOptimizer(CFG).load_state({"objective": 3})


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


def test_heating_model_does_not_extrapolate_an_absorbance_trend_to_unmeasured_wavelengths():
    """Readings at 750–850 nm where the absorbance rises steeply with the wavelength say
    nothing about 550 nm (the C exciton absorbs strongly there): far from readings the model
    falls back to the average absorbance, and its upper bound covers the strongest one seen."""
    f = np.array([0.5, 1.0, 2.0, 3.0] * 3)
    lam = np.repeat([750.0, 800.0, 850.0], 4)
    x = np.column_stack([f, lam])
    scores = truth(x)
    scores["heating"] = 0.002 * f * (lam / 800.0) ** 10
    opt = SafeOptimizer(CFG)
    opt.safe_set(x, scores, x)
    mean, sd = (float(v[0]) for v in opt.heating_posterior(np.array([[3.0, 550.0]])))
    seen = scores["heating"][f == 3.0]
    assert np.exp(mean) >= seen.min(), "no extrapolated fall of the absorbance"
    assert np.exp(mean + CFG.beta * sd) >= seen.max(), "the upper bound covers every reading"


def test_damage_evidence_carries_over_in_predicted_heating():
    """The damage model works over the predicted heating (the absorbed energy): damage-free
    shots up to 4 mJ/cm² along 900 → 700 nm vouch for the same heating 50 nm beyond either end
    (over fluence × wavelength those points are unexplored: about 50 % damage), but not for
    three times the hottest shot's fluence at a measured wavelength."""
    f = np.array([0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0])
    x = np.column_stack([f, np.linspace(900.0, 700.0, len(f))])
    scores = truth(x)
    at = np.array([[2.0, 650.0], [3.0, 950.0], [12.0, 800.0]])
    opt = SafeOptimizer(CFG)
    _, ucb = opt.safe_set(x, scores, at)
    assert np.all(ucb[:2] <= CFG.damage_bound) and ucb[2] > CFG.damage_bound
    assert np.all(opt.damage_features(at)[:2, 0] < opt.damage_features(x)[:, 0].max())
    plain = SafeOptimizer(CFG.model_copy(update={"heating_growth": None}))
    _, ucb = plain.safe_set(x, scores, at)
    assert np.all(ucb[:2] > 0.5), "over fluence × wavelength both are unexplored"


def _partly_transformed(progress_last: float, damage_last: float = 0.0):
    """A climb at 800 nm whose last frame (3 mJ/cm²) reads ``progress_last``: the frames
    before are untransformed (valid heating), the last one has no heating reading."""
    x = np.array([[0.5, 800.0], [1.0, 800.0], [1.5, 800.0], [2.0, 800.0], [3.0, 800.0]])
    scores = truth(x)
    scores["progress"] = np.array([0.02, 0.02, 0.03, 0.04, progress_last])
    scores["damage_prob"] = np.array([0.0, 0.0, 0.0, 0.0, damage_last])
    return x, scores


def test_a_partly_transformed_frame_sets_the_approach_step():
    """Progress 0.3 at 3 mJ/cm² with a transition width w = 0.1: x = 0.9 needs
    (1 + 0.1 logit 0.9)/(1 + 0.1 logit 0.3) = 1.333 × the fluence, at the same wavelength,
    beyond the heating expansion (which stops the climb over frames without a heating
    reading), with the damage bound still met."""
    x, scores = _partly_transformed(0.3)
    opt = SafeOptimizer(CFG)
    prop = opt.propose(x, scores, x[-1])
    ratio = (1 + 0.1 * np.log(9.0)) / (1 + 0.1 * np.log(0.3 / 0.7))
    assert opt.mode == "approach" and not opt.travel
    assert prop.mode == "approach", "the proposal says why"
    assert prop.settings["wavelength"] == pytest.approx(800.0)
    assert prop.settings["fluence"] == pytest.approx(3.0 * ratio, rel=1e-6)
    assert prop.damage_ucb <= CFG.damage_bound
    plain = SafeOptimizer(CFG.model_copy(update={"approach_width": None}))
    p = plain.propose(x, scores, x[-1])
    assert plain.mode != "approach" and p.settings["fluence"] < 3.0 * ratio - 0.2


def test_the_approach_step_keeps_the_ramp_limit_and_needs_a_clean_partial_frame():
    opt = SafeOptimizer(CFG)
    x, scores = _partly_transformed(0.16)
    point = opt.approach_point(x, scores, x[-1])
    ratio = (1 + 0.1 * np.log(9.0)) / (1 + 0.1 * np.log(0.16 / 0.84))
    assert ratio <= APPROACH_MAX_RATIO
    assert point[0] == pytest.approx(3.0 * ratio) and point[1] == 800.0
    x[-1, 0] = 8.0  # 1.46 × 8 = 11.7, but the ramp limit (1.5 mJ/cm²) allows only 9.5,
    # where the model predicts x = σ((9.5/8 (1 + 0.1 logit 0.16) − 1)/0.1) = 0.48 < target:
    # no step, the heating expansion governs the climb
    assert opt.approach_point(x, scores, x[-1]) is None
    scores["progress"][-1] = 0.5  # 1.22 × 8 = 9.76, cut to 9.5: x = σ(1.875) = 0.87 ≥ 0.8
    assert opt.approach_point(x, scores, x[-1])[0] == pytest.approx(9.5)
    x, scores = _partly_transformed(0.3)
    assert opt.approach_point(x, scores, x[-2]) is None, "only from the ramp origin"
    for low in (0.1, 0.85):  # untransformed (a guess) or at the target already
        assert opt.approach_point(*_partly_transformed(low), x[-1]) is None
    assert opt.approach_point(*_partly_transformed(0.3, damage_last=0.3), x[-1]) is None
    x, scores = _partly_transformed(0.3)
    scores["progress"][-2] = 0.2  # the last shot was itself an approach that fell short
    assert opt.approach_point(x, scores, x[-1]) is None
    scores["progress"][-2] = 0.04
    x[-2, 1] = 790.0  # a partial frame at another wavelength is no chain
    assert opt.approach_point(x, scores, x[-1]) is not None


def test_a_learned_damage_limit_bounds_the_approach_step():
    """A shot that caused damage at 1.5× the last frame's heating elsewhere: the approach step
    (~1.33× the fluence) would exceed heating_margin × that heating, so it is not proposed."""
    x, scores = _partly_transformed(0.3)
    x = np.vstack([[[3.0, 780.0]], x])
    hot = 1.5 * truth(x[-1:])["heating"][0]
    for key, value in (("progress", 0.03), ("damage_prob", 0.95), ("heating", hot)):
        scores[key] = np.concatenate([[value], scores[key]])
    scores["line_distance"] = np.full(len(x), 0.3)
    opt = SafeOptimizer(CFG)
    try:
        prop = opt.propose(x, scores, x[-1])
    except NoSafeCandidate:
        return
    assert opt.mode != "approach"
    new = np.array([[prop.settings["fluence"], prop.settings["wavelength"]]])
    assert truth(new)["heating"][0] < opt.heating_limit


def _start(fluences, heating):
    """Shots at the safe start's wavelength (800 nm) with these fluences and heating readings."""
    x = np.column_stack([fluences, np.full(len(fluences), 800.0)])
    scores = truth(x)
    scores["heating"] = np.asarray(heating, dtype=float)
    scores["progress"] = np.full(len(x), 0.02)
    return x, scores


def test_the_initial_climb_stays_at_the_start_wavelength_within_the_heating_expansion():
    """From a noise-level heating reading the climb goes to the highest safe fluence at the
    start's wavelength: more than the first shot, never beyond the ramp limit or the heating
    expansion's allowance (1.2 × 0.0012 + 0.002 Å² with heating ∝ fluence)."""
    x, scores = _start([0.5], [0.0012])
    opt = SafeOptimizer(CFG)
    prop = opt.propose(x, scores, x[-1])
    assert prop.mode == "climb" and not opt.travel
    assert prop.settings["wavelength"] == pytest.approx(800.0)
    assert 0.5 < prop.settings["fluence"] <= 0.5 + CFG.parameter("fluence").max_step
    assert prop.damage_ucb <= CFG.damage_bound
    allowed = CFG.heating_growth * 0.0012 + CFG.heating_floor
    assert 0.0012 * prop.settings["fluence"] / 0.5 <= allowed + 1e-9, "heating expansion"


def test_the_climb_ends_at_a_clear_heating_reading_a_move_damage_or_a_transformation():
    opt = SafeOptimizer(CFG)
    x, scores = _start([0.5, 1.0, 2.0], [0.0012, 0.0025, 0.0045])
    assert opt.climbing(x, scores, x[-1])
    x, scores = _start([0.5, 1.0, 2.0, 3.0], [0.0012, 0.0025, 0.0045, CFG.climb_heating])
    assert not opt.climbing(x, scores, x[-1]), "the heating stands clear of the noise"
    assert opt.propose(x, scores, x[-1]).mode != "climb"
    x, scores = _start([0.5, 1.0, 2.0], [0.0012, 0.0025, 0.0045])
    x[1, 1] = 830.0
    assert not opt.climbing(x, scores, x[-1]), "the campaign has moved from its start"
    x, scores = _start([0.5, 1.0, 2.0], [0.0012, 0.0025, 0.0045])
    scores["damage_prob"][-1] = 0.9
    assert not opt.climbing(x, scores, x[-1]), "a damaged frame"
    x, scores = _start([0.5, 1.0, 2.0], [0.0012, 0.0025, 0.0045])
    scores["progress"][-1] = 0.3
    assert not opt.climbing(x, scores, x[-1]), "something transforms"
    off = SafeOptimizer(CFG.model_copy(update={"climb_heating": None}))
    assert not off.climbing(*_start([0.5], [0.0012]), np.array([0.5, 800.0]))


def test_an_onset_frame_is_no_heating_reading_and_the_climb_goes_on():
    """Sample 159's climb: at 2.96 mJ/cm² the onset of the transformation (x = 0.03) read
    progress 0.09 and lifted the Debye–Waller figure to 0.0098 Å², past ``climb_heating``.
    That figure is no lattice heating, so the climb goes on at the start's wavelength, to
    more fluence, still within the heating expansion of the untransformed frames."""
    x, scores = _start([0.5, 0.79, 2.29, 2.96], [0.0019, 0.0019, 0.0041, 0.0098])
    scores["progress"][-1] = 0.09
    assert np.isnan(heating_readings(scores)[-1])
    assert heating_readings(scores)[:-1] == pytest.approx([0.0019, 0.0019, 0.0041])
    opt = SafeOptimizer(CFG)
    assert opt.climbing(x, scores, x[-1])
    prop = opt.propose(x, scores, x[-1])
    assert prop.mode == "climb" and not opt.travel
    assert prop.settings["wavelength"] == pytest.approx(800.0)
    assert 2.96 < prop.settings["fluence"] <= 2.96 + CFG.parameter("fluence").max_step
    assert prop.damage_ucb <= CFG.damage_bound
    # the same reading on an untransformed frame ends the climb
    scores["progress"][-1] = 0.02
    assert not opt.climbing(x, scores, x[-1])


def test_partly_transformed_frames_vouch_for_the_clean_reading_below_scaled_by_fluence():
    """Sample 159's climb past the onset: frames at 2.96 and 3.3 mJ/cm² are partly
    transformed (no heating reading). Each vouches for the clean reading at 2.29 mJ/cm²
    scaled by the fluence ratio (at one wavelength the absorbed energy is proportional to
    the fluence), never above the model's mean, so the climb goes on past what the model's
    lower bound alone would allow, and still within the heating expansion of that credit."""
    x, scores = _start([0.5, 0.79, 2.29, 2.96, 3.3], [0.0019, 0.0019, 0.0041, 0.0098, 0.011])
    scores["progress"][-2:] = [0.09, 0.12]
    opt = SafeOptimizer(CFG)
    prop = opt.propose(x, scores, x[-1])
    assert prop.mode == "climb" and prop.settings["wavelength"] == pytest.approx(800.0)
    mean, sd = opt.heating_posterior(x[-2:])
    lower, scaled = np.exp(mean - CFG.beta * sd), 0.0041 * x[-2:, 0] / 2.29
    credit = np.maximum(lower, np.minimum(np.exp(mean), scaled))
    assert credit.max() > lower.max()  # the scaled reading is what vouches here
    grown = [CFG.heating_growth * max(0.0041, c.max()) + CFG.heating_floor for c in (lower, credit)]
    m, s = opt.heating_posterior(np.array([[prop.settings["fluence"], 800.0]]))
    bound = float(np.exp(m + CFG.beta * s)[0])
    assert grown[0] < bound <= grown[1]
    assert prop.damage_ucb <= CFG.damage_bound
