"""Candidates: within reach, over the box, fluence ladders and the highest-fluence frontier."""

import numpy as np
from safe_sample import CFG, lows_highs

from uedsteer.controller.safe.candidates import (
    CandidateGenerator,
    fluence_ladder,
    frontier,
)
from uedsteer.controller.safe.coordinates import SearchSpace

SPACE = SearchSpace(CFG)


def test_local_candidates_lie_within_the_ramp_limit_and_the_box():
    last = np.array([11.5, 520.0])
    local = CandidateGenerator(SPACE, 64, 0).local(last)
    lo, hi = lows_highs()
    assert len(local) == 64 + 3 and np.allclose(local[-1], last)
    assert np.all(np.abs(local - last) <= SPACE.steps + 1e-9)
    assert np.all(local >= lo) and np.all(local <= hi)


def test_whole_box_candidates_carry_a_fluence_ladder_at_the_latest_settings():
    gen = CandidateGenerator(SPACE, 32, 0)
    pts = gen.whole_box(np.array([[1.0, 700.0], [2.0, 900.0]]))
    assert len(pts) == 32 + 2 * 48
    ladder = pts[32:]
    assert set(ladder[:, 1]) == {700.0, 900.0}
    assert ladder[:, 0].min() == 0.2 and ladder[:, 0].max() == 12.0


def test_draws_are_reproducible_and_advance():
    a, b = CandidateGenerator(SPACE, 16, 3), CandidateGenerator(SPACE, 16, 3)
    first = a.local(np.array([1.0, 800.0]))
    assert np.array_equal(first, b.local(np.array([1.0, 800.0])))
    assert not np.array_equal(first, a.local(np.array([1.0, 800.0])))


def test_the_frontier_keeps_the_highest_fluence_per_cell():
    cand = np.array([[1.0, 800.0], [3.0, 800.0], [2.0, 1000.0], [0.5, 1000.0]])
    assert frontier(SPACE, cand, bins=2).tolist() == [1, 2]
    ladder = fluence_ladder(SPACE, np.array([1.0, 700.0]), 0.5, 2.0, rungs=4)
    assert ladder[:, 0].tolist() == [0.5, 1.0, 1.5, 2.0] and set(ladder[:, 1]) == {700.0}
