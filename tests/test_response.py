import numpy as np
import pytest

from uedsteer.sim_devices.response import HC_EV_NM, ResponseParams, SampleResponse


def nm(ev):
    return HC_EV_NM / ev


def test_absorbance_peaks_at_the_excitons():
    p = ResponseParams()
    for ev in p.exciton_energies_ev:
        here = p.absorbance(nm(ev))
        assert here > p.absorbance(nm(ev - 0.12)) and here > p.absorbance(nm(ev + 0.12))
    assert p.absorbance(1600) < 0.02  # below the band edge (0.77 eV) almost nothing absorbs


def test_window_exists_only_inside_the_resonance_band():
    p = ResponseParams()
    on = nm(p.resonance_ev)
    assert p.transform_threshold_at(on) < p.damage_threshold
    for ev in (1.0, 1.2, 2.3, 2.8):
        assert p.transform_threshold_at(nm(ev)) > p.damage_threshold


def test_transformation_rises_with_fluence_and_delay():
    p = ResponseParams()
    s = SampleResponse(p, n_spots=1)
    lam = nm(p.resonance_ev)
    xs = [s.shot_state(0, f, lam, 20.0, True).x for f in np.linspace(0, 8, 30)]
    assert np.all(np.diff(xs) >= -1e-12) and xs[0] < 0.01 and xs[-1] > 0.9
    assert s.shot_state(0, 6.0, lam, -2.0, True).x == 0.0  # before time zero
    early = s.shot_state(0, 6.0, lam, 0.5, True).x
    late = s.shot_state(0, 6.0, lam, 20.0, True).x
    assert 0 < early < late
    assert s.shot_state(0, 6.0, lam, 20.0, pumped=False).x == 0.0


def test_damage_is_irreversible_and_needs_the_pump():
    p = ResponseParams()
    s = SampleResponse(p, n_spots=2)
    lam = 800.0
    f_hot = 1.5 * p.damage_threshold / p.absorbance(lam)
    for _ in range(5):
        s.shoot(0, f_hot, lam, 10.0, pumped=False)
    assert s.spots[0].vacancy == 0.0 and s.spots[0].shots == 5
    for _ in range(3):
        s.shoot(0, f_hot, lam, 10.0, pumped=True)
    v = s.spots[0].vacancy
    assert v > 0.02
    for _ in range(5):
        s.shoot(0, 0.1, lam, 10.0, pumped=True)
    assert s.spots[0].vacancy >= v, "damage never heals"
    assert s.spots[1].vacancy == 0.0, "damage is per spot"
    s.shoot(1, p.melt_factor * p.damage_threshold / p.absorbance(lam) * 1.01, lam, 10, True)
    assert s.spots[1].molten


def test_random_family_is_seeded_and_within_30_percent():
    a, b, c = ResponseParams.random(3), ResponseParams.random(3), ResponseParams.random(4)
    assert a == b and a != c
    base = ResponseParams()
    for seed in range(20):
        r = ResponseParams.random(seed)
        for name in ("transform_threshold", "damage_threshold", "resonance_width_ev"):
            assert 0.7 <= getattr(r, name) / getattr(base, name) <= 1.3
        assert r.transform_threshold / (1 + r.resonance_gain) < r.damage_threshold


def test_no_safe_window_is_rejected():
    with pytest.raises(ValueError, match="damage_threshold"):
        ResponseParams(transform_threshold=4.0, resonance_gain=1.0, damage_threshold=0.5)
    with pytest.raises(ValueError, match="spot=5"):
        SampleResponse(n_spots=3).spot(5)
