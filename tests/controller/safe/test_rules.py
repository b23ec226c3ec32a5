"""The safety rules: each rule's ``admit`` does what its docstring says, and the safe set is
what every rule admits."""

import numpy as np
import pytest
from safe_sample import CFG, at, evidence, truth, with_constraint

from uedsteer.controller.config import CampaignConfig, ParameterSpec
from uedsteer.controller.safe.evidence import (
    DAMAGE_CHECKED,
    ScoreBound,
    learned_heating_limit,
)
from uedsteer.controller.safe.optimizer import SafeOptimizer
from uedsteer.controller.safe.rules import (
    RULES,
    DamageBound,
    HeatingExpansion,
    HeatingLimit,
    ScoreConstraint,
    Verdict,
)

CLIMB = np.array([[0.5, 800], [1.0, 800], [1.5, 800], [2.0, 800], [3.5, 800], [7.0, 800]])


# ------------------------------------------------------------------ one rule at a time
def test_damage_bound_refuses_measured_damage_and_the_unexplored():
    """Above the damage bound: refused; near measured damage-free points: admitted; far from
    any measurement the prior says 50 % damage, above δ = 0.2: refused."""
    data = evidence(CLIMB, truth(CLIMB))
    probe = np.array([[7.0, 800], [2.3, 800], [11.5, 1250]])
    rule = DamageBound(CFG)
    assert rule.admit(at(probe, data), data).tolist() == [False, True, False]
    verdict = rule.judge(at(probe, data), data)
    assert verdict.bound[0] > CFG.damage_bound >= verdict.bound[1]
    assert verdict.name == "damage bound δ = 0.2 (damage probability, β = 2)"


def test_damage_bound_tightens_with_beta():
    """A larger β is more cautious: it never admits a candidate a smaller β refuses."""
    data = evidence(CLIMB, truth(CLIMB))
    probe = np.column_stack([np.linspace(0.5, 6.0, 23), np.full(23, 800.0)])
    loose = DamageBound(CFG.model_copy(update={"beta": 1.0})).admit(at(probe, data), data)
    tight = DamageBound(CFG.model_copy(update={"beta": 3.0})).admit(at(probe, data), data)
    assert not np.any(tight & ~loose) and np.any(loose & ~tight)


def test_a_max_constraint_refuses_a_score_rising_past_its_bound():
    x = np.array([[0.5, 800], [1.0, 800], [1.5, 800], [2.0, 800], [2.5, 800]])
    scores = {**truth(x), "recon_error": 0.01 * x[:, 0]}  # crosses 0.03 at 3 mJ/cm²
    cfg = with_constraint(0.03)
    data = evidence(x, scores, cfg)
    rule = ScoreConstraint(ScoreBound("recon_error", "c:recon_error", 0.03, "max"), cfg.beta, 1)
    probe = np.array([[2.6, 800], [6.0, 800], [9.0, 800]])
    assert rule.admit(at(probe, data), data).tolist() == [True, False, False]


def test_a_min_constraint_refuses_a_score_falling_below_its_bound():
    x = np.array([[0.5, 800], [1.0, 800], [1.5, 800], [2.0, 800], [2.5, 800]])
    scores = {**truth(x), "frame_quality": 1.0 - 0.2 * x[:, 0]}  # falls below 0.4 at 3
    cfg = CampaignConfig(
        n_candidates=64, constraints=[{"score": "frame_quality", "bound": 0.4, "sense": "min"}]
    )
    data = evidence(x, scores, cfg)
    rule = next(r for r in SafeOptimizer(cfg).rules if isinstance(r, ScoreConstraint))
    assert rule == ScoreConstraint(ScoreBound("frame_quality", "c:frame_quality", 0.4, "min"), 2.0)
    probe = np.array([[1.0, 800], [6.0, 800]])
    assert rule.admit(at(probe, data), data).tolist() == [True, False]
    assert rule.judge(at(probe, data), data).name == "constraint frame_quality ≥ 0.4"


def test_a_constraint_without_a_finite_score_does_not_apply():
    x = CLIMB[:3]
    scores = {**truth(x), "recon_error": np.full(3, np.nan)}
    cfg = with_constraint(0.03)
    data = evidence(x, scores, cfg)
    rule = ScoreConstraint(ScoreBound("recon_error", "c:recon_error", 0.03, "max"), 2.0, 1)
    probe = np.array([[12.0, 1100.0]])
    assert rule.judge(at(probe, data), data) is None
    assert rule.admit(at(probe, data), data).all()


def test_heating_expansion_admits_one_step_of_heating_beyond_the_hottest_clean_frame():
    """The upper bound of the heating may exceed growth × the hottest damage-free frame +
    floor, no more; an exempt candidate (approach step) passes it anyway."""
    x = CLIMB[:4]
    scores = {**truth(x), "progress": np.full(4, 0.02)}  # untransformed: heating readings
    data = evidence(x, scores)
    hottest = scores["heating"].max()
    assert data.hottest == pytest.approx(hottest)
    probe = np.array([[2.3, 800.0], [9.0, 800.0], [9.0, 800.0]])
    cands = at(probe, data, exempt=np.array([False, False, True]))
    rule = HeatingExpansion(CFG)
    assert rule.admit(cands, data).tolist() == [True, False, True]
    allowed = CFG.heating_growth * hottest + CFG.heating_floor
    bound = rule.judge(cands, data).bound
    assert bound[0] <= allowed < bound[1]


def test_a_fluence_step_at_a_wavelength_shot_unharmed_needs_no_heating_reading():
    """At one wavelength the absorbed energy is proportional to the fluence: a candidate at
    most heating_growth × the fluence of a shot the sample took unharmed there (within 2 nm)
    passes the expansion where every frame transforms and the heating model's bound refuses
    it; beyond that fluence, at a wavelength not shot, or above a shot that caused damage or
    that no check frame saw, the model decides as before."""
    band = np.array([[3.0, 560.0], [3.5, 560.0]])  # the C exciton: both frames transform
    x = np.vstack([CLIMB[:4], band])
    scores = {**truth(x), "progress": np.r_[np.full(4, 0.02), 0.5, 0.6]}
    data = evidence(x, scores)
    probe = np.array([[4.1, 560.0], [4.1, 561.5], [4.5, 560.0], [4.1, 570.0]])
    cands = at(probe, data)
    assert np.allclose(cands.unharmed_fluence[:3], 3.5) and np.isnan(cands.unharmed_fluence[3])
    rule = HeatingExpansion(CFG)
    verdict = rule.judge(cands, data)
    frontier = CFG.heating_growth * data.hottest + CFG.heating_floor
    assert (verdict.bound > frontier).all(), "the heating model alone refuses all four"
    assert rule.admit(cands, data).tolist() == [True, True, False, False]

    checked = np.r_[np.ones(5), 0.0]  # no check frame saw the 3.5 mJ/cm² shot's spot
    unseen = evidence(x, {**scores, DAMAGE_CHECKED: checked})
    assert np.allclose(at(probe, unseen).unharmed_fluence[:3], 3.0)

    scores["damage_prob"][-1] = 0.9  # the 3.5 mJ/cm² shot caused damage: it vouches for nothing
    hurt = evidence(x, scores)
    assert np.allclose(at(probe, hurt).unharmed_fluence[:3], 3.0)
    assert not rule.admit(at(probe, hurt), hurt)[:3].any()


def test_heating_expansion_refuses_everything_without_a_clean_heating_reading():
    x = CLIMB[:3]
    scores = truth(x)
    scores["progress"][:] = 0.5  # every frame transforms: no heating reading
    data = evidence(x, scores)
    assert data.heating is None
    verdict = HeatingExpansion(CFG).judge(at(x, data), data)
    assert verdict.excluded.all() and "no damage-free heating reading" in verdict.name
    off = CFG.model_copy(update={"heating_growth": None})
    data = evidence(x, truth(x), off)
    assert HeatingExpansion(off).judge(at(x, data), data) is None, "switched off"


def test_the_learned_heating_limit_holds_at_every_wavelength():
    """Damage seen at one wavelength caps the heating everywhere (absorbed energy)."""
    x = np.array([[0.5, 800], [2.0, 800], [4.0, 800], [6.0, 800], [7.0, 800]])
    sc = truth(x)
    limit = learned_heating_limit(sc["heating"], sc["damage_prob"], CFG)
    hurt = sc["heating"][sc["damage_prob"] >= 0.5]
    assert limit == pytest.approx(CFG.heating_margin * hurt.min())
    probe = np.array([[3.0, 550.0], [2.0, 800.0]])  # 550 nm heats 3× more per fluence
    found = SafeOptimizer(CFG).safe_set(x, sc, probe)
    assert not found.safe[0], "a wavelength that absorbs more is not safe at the same fluence"
    data = evidence(x, {**sc, "progress": np.full(len(x), 0.02)})  # every frame a reading
    rule = HeatingLimit(CFG)
    assert rule.admit(at(probe, data), data).tolist() == [False, True]
    assert "heating_margin × lowest damaging heating" in rule.judge(at(probe, data), data).name


def test_the_heating_limit_does_not_apply_before_damage_or_a_cap():
    x = CLIMB[:4]
    data = evidence(x, truth(x))
    assert data.heating_limit == float("inf")
    assert HeatingLimit(CFG).judge(at(x, data), data) is None


def test_configured_heating_cap_bounds_the_safe_set_before_any_damage():
    """heating_max is a hard limit on the heating upper bound, with no damage seen yet."""
    x = np.array([[0.5, 800], [1.0, 800], [2.0, 800], [3.0, 800], [4.0, 800], [2.0, 900]])
    sc = truth(x)
    probe = np.column_stack([np.linspace(0.5, 5.0, 10), np.full(10, 800.0)])
    free = SafeOptimizer(CFG).safe_set(x, sc, probe)
    assert free.heating_limit == float("inf")
    cap = float(truth(np.array([[2.5, 800.0]]))["heating"][0])
    capped = SafeOptimizer(CFG.model_copy(update={"heating_max": cap})).safe_set(x, sc, probe)
    assert capped.heating_limit == pytest.approx(cap)
    assert free.safe[probe[:, 0] > 2.5].any(), "without the cap the set reaches past 2.5 mJ/cm²"
    assert not capped.safe[probe[:, 0] > 2.5].any(), "nothing predicted hotter than the cap"
    assert capped.safe[probe[:, 0] < 2.0].all(), "below the cap the set is unchanged"
    assert any("(heating_max)" in v.name for v in capped.verdicts)
    with pytest.raises(ValueError, match="heating_max"):
        CampaignConfig(heating_max=-0.01)


# ------------------------------------------------------------------ the rules together
def test_the_safe_set_is_what_every_rule_admits():
    cfg = with_constraint(0.03)
    x = CLIMB
    scores = {**truth(x), "recon_error": 0.005 * x[:, 0]}
    opt = SafeOptimizer(cfg)
    assert [type(r) for r in opt.rules] == [
        DamageBound, ScoreConstraint, ScoreConstraint, HeatingExpansion, HeatingLimit
    ]  # fmt: skip
    assert set(RULES) == {type(r) for r in opt.rules}
    probe = np.column_stack([np.linspace(0.3, 12.0, 40), np.linspace(500, 1100, 40)])
    found = opt.safe_set(x, scores, probe)
    data = found.evidence
    both = np.all([r.admit(at(probe, data), data) for r in opt.rules], axis=0)
    np.testing.assert_array_equal(found.safe, both)
    assert [v.name.split()[0] for v in found.verdicts] == [
        "damage", "constraint", "constraint", "heating", "heating"
    ]  # fmt: skip


def test_safe_set_excludes_known_damage_and_unexplored_space():
    x = np.array(
        [[0.5, 800], [1.0, 800], [1.5, 800], [2.0, 800], [3.5, 800], [7.0, 800], [7.0, 900]]
    )
    probe = np.array([[7.0, 800], [7.0, 850], [2.3, 800], [11.5, 1250]])
    found = SafeOptimizer(CFG).safe_set(x, truth(x), probe)
    safe, ucb = found.safe, found.damage_ucb
    assert not safe[0] and not safe[1], "a measured damaging point is never safe"
    assert safe[2], "near measured safe points the set grows"
    assert not safe[3], "unexplored far-away settings are unsafe (prior: 50 % damage)"
    assert ucb[0] > 0.5


def test_the_bunch_charge_does_not_move_the_damage_or_heating_fences():
    """The charge acts on the probe: shots at 20 fC vouch for the same pump settings at any
    charge, and a damaging shot forbids its pump settings at every charge."""
    charge = ParameterSpec(name="charge", low=5.0, high=100.0, max_step=20.0, safe_start=20.0)
    cfg = CampaignConfig(
        n_candidates=64, parameters=(*CFG.parameters, charge), fixed={"delay": 10.0}
    )
    pump = np.array([[0.5, 800], [1.0, 800], [1.5, 800], [2.0, 800], [3.5, 800], [7.0, 800]])
    x = np.column_stack([pump, np.full(len(pump), 20.0)])
    probe = np.array([[2.3, 800, q] for q in (20.0, 60.0, 100.0)] + [[7.0, 800, 100.0]])
    found = SafeOptimizer(cfg).safe_set(x, truth(pump), probe)
    assert found.safe[:3].all() and not found.safe[3]
    assert found.damage_ucb[:3] == pytest.approx(found.damage_ucb[0])
    assert found.damage_ucb[3] > 0.5
    heat = found.heating_posterior(probe[:3])[0]
    assert heat == pytest.approx(heat[0])


def test_cold_frames_before_time_zero_do_not_open_the_safe_set():
    """Before time zero (and early after it) the probe sees a lattice that has not heated
    yet, whatever the pump deposited: such frames must not vouch for high fluences."""
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
    # 10 nm off: the cold shots at 800 nm vouch for 1.2 × their fluence there as shots the
    # sample took unharmed (the expansion's second way), not as heating readings
    probe = np.array([[9.5, 810, -2.0], [12.0, 810, -2.0], [9.5, 810, 10.0], [4.0, 800, 10.0]])
    found = SafeOptimizer(cfg).safe_set(x, scores, probe)
    assert not found.safe[:3].any(), "9.5 mJ/cm² and more lie far beyond the heating at 10 ps"
    assert found.safe[3], "one step beyond the hottest reading stays open"
    # the cold frames are no heating readings: the model was fitted on the 10 ps frames only
    assert found.gp_state.summaries["heating"]["n"] == 4


def test_constraints_are_judged_relative_to_their_bound():
    """The same constraint in other units (values and bound × 100) gives the same safe set,
    and a score rising past its bound with the fluence stops the climb."""
    x = np.array([[0.5, 800], [1.0, 800], [1.5, 800], [2.0, 800], [2.5, 800]])
    rising = 0.01 * x[:, 0]  # crosses 0.03 at 3 mJ/cm²
    probe = np.array([[2.6, 800], [6.0, 800], [9.0, 800]])
    sets = []
    for factor in (1.0, 100.0):
        scores = {**truth(x), "recon_error": factor * rising}
        sets.append(SafeOptimizer(with_constraint(0.03 * factor)).safe_set(x, scores, probe).safe)
    assert np.array_equal(sets[0], sets[1])
    assert sets[0][0] and not sets[0][1] and not sets[0][2]


def test_callable_constraints_bound_the_safe_set_too():
    """Constraints computed by Python callables (Campaign(constraints=...)) are modelled and
    enforced like configured ones, not only checked when the target is reached."""
    from uedsteer.controller.campaign import Campaign

    x = np.array([[0.5, 800], [1.0, 800], [1.5, 800], [2.0, 800], [2.5, 800]])
    scores = {**truth(x), "hot": 0.01 * x[:, 0]}  # crosses 0.03 at 3 mJ/cm²
    probe = np.column_stack([np.linspace(2.5, 4.0, 31), np.full(31, 800.0)])
    free = SafeOptimizer(CFG).safe_set(x, scores, probe).safe
    bounded = SafeOptimizer(CFG, {"hot": 0.03}).safe_set(x, scores, probe).safe
    assert bounded[0] and not np.any(bounded & ~free), "a constraint only removes points"
    assert np.any(free & ~bounded), "and here it does"
    assert np.all(0.01 * probe[bounded, 0] <= 0.03 + 1e-9)
    camp = Campaign(CFG, constraints={"hot": (lambda s: 0.01 * s["heating"], 0.03)})
    assert ScoreBound("hot", "x:hot", 0.03, "max") in camp.optimizer.bounds
    assert ScoreConstraint(ScoreBound("hot", "x:hot", 0.03, "max"), 2.0, 1) in camp.optimizer.rules


def test_a_verdict_describes_what_it_excluded():
    v = Verdict("rule R", np.array([True, True, False]), np.array([1.0, 2.0, 3.0]))
    assert v.describe(slice(0, 2)) == "rule R excludes every candidate (lowest predicted 1)"
    assert v.describe(slice(0, 3)).startswith("rule R excludes 2 of 3")
    assert v.admitted.tolist() == [False, False, True]
