"""The heating reading's scale is learned, not assumed (issue 33): the cold reading, the rise
in proportion to the absorbed energy, the expansion judged on that rise, and the first
vacancies as a damage precursor."""

import numpy as np
import pytest
from safe_sample import CFG, at, evidence, start

from uedsteer.controller.safe.evidence import (
    CAUSED_DAMAGE,
    DAMAGE_PRECURSOR,
    HEATING_NOISE,
    heating_baseline,
    learned_heating_limit,
    proportional_heating,
)
from uedsteer.controller.safe.optimizer import SafeOptimizer
from uedsteer.controller.safe.rules import HeatingExpansion
from uedsteer.controller.safe.strategies import climbing

SPACE = SafeOptimizer(CFG).space


def test_the_cold_reading_is_the_lowest_reading_at_most_the_frame_noise():
    assert heating_baseline(np.array([0.0016, 0.0013, np.nan, 0.004])) == HEATING_NOISE
    assert heating_baseline(np.array([0.0016, 0.0007])) == pytest.approx(0.0007)
    assert heating_baseline(np.array([-0.002, 0.003])) == 0.0, "noise below zero"
    assert heating_baseline(np.array([np.nan])) == HEATING_NOISE


def test_a_reading_scales_with_the_fluence_above_the_cold_reading_at_its_own_absorbance():
    x = np.array([[1.0, 800.0], [2.0, 800.0], [2.0, 1000.0]])
    readings = np.array([0.002, 0.005, np.nan])  # no reading at 1000 nm
    points = np.array([[4.0, 800.0], [4.0, 805.0], [4.0, 900.0], [4.0, 1000.0]])
    estimate, upper = proportional_heating(SPACE, x, readings, 0.001, points, CFG.beta)
    # the warmest reading at 800 nm (0.004 above the cold reading at 2 mJ/cm²), doubled
    assert estimate[:2] == pytest.approx([0.009, 0.009])
    assert np.isnan(estimate[2:]).all(), "another absorbance: no scaling"
    assert np.all(upper[:2] > estimate[:2])
    # the widening is the reading's noise relative to its rise: a warmer reading, less
    _, warm = proportional_heating(SPACE, x, readings * 2, 0.001, points[:1], CFG.beta)
    assert (warm[0] - 0.001) / (2 * (2 * 0.005 - 0.001)) < (upper[0] - 0.001) / 0.008


@pytest.mark.parametrize("scale", [1.0, 0.3])
def test_the_expansion_steps_the_same_absorbed_energy_whatever_the_reading_scale(scale):
    """Readings at 800 nm rising 0.002 × scale Å² per mJ/cm² above the cold reading: the
    highest fluence the expansion admits there is heating_growth × the hottest shot's (less the
    reading's noise), for a sample reading a third of the heating too. The rule before
    (1.2 × the reading + 0.002 Å²) let the weak reader step 2 × in absorbed energy."""
    f = np.array([0.5, 1.0, 2.0, 3.0])
    x, scores = start(f, 0.001 + 0.002 * scale * f)
    data = evidence(x, scores)
    ladder = np.column_stack([np.linspace(3.0, 8.0, 101), np.full(101, 800.0)])
    admitted = HeatingExpansion(CFG).admit(at(ladder, data), data)
    top = ladder[admitted, 0].max()
    assert 3.0 * 1.25 <= top <= 3.0 * CFG.heating_growth + 1e-9
    old_frontier = 1.2 * (0.001 + 0.006 * scale) + 0.002
    assert (old_frontier - 0.001) / (0.002 * scale) / 3.0 > (1.9 if scale < 1 else 1.3)


def test_the_first_vacancies_set_the_learned_heating_limit():
    heating = np.array([0.003, 0.006, 0.009])
    quiet = np.array([0.0, 0.01, 0.02])
    assert learned_heating_limit(heating, quiet, CFG) == np.inf
    first = np.array([0.0, DAMAGE_PRECURSOR + 0.03, 0.0])
    assert DAMAGE_PRECURSOR < CAUSED_DAMAGE
    assert learned_heating_limit(heating, first, CFG) == pytest.approx(CFG.heating_margin * 0.006)


def test_a_shot_whose_next_frame_shows_the_first_vacancies_vouches_for_nothing():
    f = np.array([0.5, 1.0, 2.0, 3.0])
    x, scores = start(f, 0.001 + 0.002 * f)
    scores["damage_prob"] = np.array([0.0, 0.0, 0.0, 0.08])
    data = evidence(x, scores)
    assert data.hottest == pytest.approx(0.005), "the 3 mJ/cm² shot does not vouch"
    assert data.heating_limit == pytest.approx(CFG.heating_margin * 0.007)


def test_the_climb_ends_on_the_rise_above_the_cold_reading():
    level = CFG.climb_heating
    x, scores = start([0.5, 1.0, 2.0], [0.0012, 0.0025, 0.0009 + level])
    assert climbing(SPACE, CFG, x, scores, x[-1]), "a rise just short of the level"
    x, scores = start([0.5, 1.0, 2.0], [0.0003, 0.0025, 0.0009 + level])
    assert not climbing(SPACE, CFG, x, scores, x[-1]), "the same reading over a colder start"
