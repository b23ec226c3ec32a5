"""ResponseParams.random_wide: the wide family of issue 33 (and random left as it was)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from uedsteer.sim_devices.materials import get_material
from uedsteer.sim_devices.response import WIDE_RANGES, ResponseParams

SEEDS = range(1000, 1200)


@pytest.fixture(scope="module")
def draws() -> list[ResponseParams]:
    return [ResponseParams.random_wide(s) for s in SEEDS]


def _values(p: ResponseParams, name: str, base: ResponseParams) -> list[tuple[float, float]]:
    v, d = getattr(p, name), getattr(base, name)
    return list(zip(v, d, strict=True)) if isinstance(v, tuple) else [(v, d)]


def test_every_draw_valid_and_within_its_range(draws):
    base = ResponseParams()
    for p in draws:
        # a valid ResponseParams (the validator's safe window included)
        assert ResponseParams(**p.model_dump()) == p
        assert p.transform_threshold / (1 + p.resonance_gain) < p.damage_threshold
        assert p.melt_factor > 1 and 0 <= p.continuum <= 1
        for name, r in WIDE_RANGES.items():
            for v, d in _values(p, name, base):
                assert r.within(v, d), (name, v, d)
        # the band edge moves with the A exciton
        shift = p.exciton_energies_ev[0] - base.exciton_energies_ev[0]
        assert p.edge_ev == pytest.approx(base.edge_ev + shift)
        # the excitons keep their order
        assert p.exciton_energies_ev[0] < p.exciton_energies_ev[1] < p.exciton_energies_ev[2]


def test_every_listed_property_is_drawn():
    listed = {
        "exciton_energies_ev",
        "exciton_heights",
        "continuum",
        "heating_k_per_mj",
        "thermal_rms_k",
        "transform_steepness",
        "damage_slow_power",
        "damage_slow_rate",
        "damage_fast_rate",
        "melt_factor",
        "tau_thermal_ps",
        "resonance_ev",
        "resonance_width_ev",
        "resonance_gain",
        "transform_threshold",
        "damage_threshold",
    }
    assert listed <= set(WIDE_RANGES)
    assert set(WIDE_RANGES) <= set(ResponseParams.model_fields)
    # thresholds wider than the family's ±30 %
    for name in ("transform_threshold", "damage_threshold"):
        assert WIDE_RANGES[name].low < 0.7 and WIDE_RANGES[name].high > 1.3


def test_deterministic_per_seed_and_seeds_differ():
    assert ResponseParams.random_wide(1003) == ResponseParams.random_wide(1003)
    assert ResponseParams.random_wide(1003) != ResponseParams.random_wide(1004)
    # its own stream: the wide draw is not the family's draw of the same seed
    assert ResponseParams.random_wide(7).resonance_ev != ResponseParams.random(7).resonance_ev


def test_draws_spread_over_the_ranges(draws):
    """Over 200 seeds each property's draws cover most of its documented range."""
    base = ResponseParams()
    for name, r in WIDE_RANGES.items():
        n = len(_values(base, name, base))
        for i in range(n):
            rel = np.array([r.relative(*_values(p, name, base)[i]) for p in draws])
            if r.kind in ("factor", "excess"):
                lo, hi, rel = np.log(r.low), np.log(r.high), np.log(rel)
            else:
                lo, hi = r.low, r.high
            # rejection (safe window) may thin one end of the thresholds a little
            assert rel.min() <= lo + 0.15 * (hi - lo), (name, i, rel.min())
            assert rel.max() >= hi - 0.15 * (hi - lo), (name, i, rel.max())


def test_material_defaults_are_varied():
    """Another material's defaults are what the draw varies."""
    mote2 = get_material("MoTe2")
    response = {**mote2.response, "damage_threshold": 0.9, "exciton_heights": (0.2, 0.1, 0.3)}
    other = dataclasses.replace(mote2, name="Other", response=response)
    base = ResponseParams.for_material(other)
    p = ResponseParams.random_wide(1000, material=other)
    assert p.damage_threshold == pytest.approx(
        2 * ResponseParams.random_wide(1000).damage_threshold
    )
    for name, r in WIDE_RANGES.items():
        for v, d in _values(p, name, base):
            assert r.within(v, d), (name, v, d)


# ResponseParams.random(seed) before random_wide was added (resonance_ev, resonance_width_ev,
# transform_threshold, damage_threshold, resonance_gain): the in-family draws are unchanged.
FAMILY_BEFORE = {
    0: (1.7307830575293592, 0.06727386427612526, 0.7407069739258835, 0.4058738395696873,
        3.2784074454405676),
    7: (1.307309056091598, 0.09034419603907912, 0.5785846422185286, 0.3476527152389659,
        3.284153886050851),
    200: (1.5472246840274066, 0.10197388381258876, 0.7792785552996134, 0.37834662467273245,
          2.1438388014130325),
    1234: (1.336260912860865, 0.05983450983076773, 0.7636347569397147, 0.42446683315115913,
           2.2750488158724957),
}  # fmt: skip


@pytest.mark.parametrize("seed", sorted(FAMILY_BEFORE))
def test_in_family_random_unchanged(seed):
    p = ResponseParams.random(seed)
    got = (
        p.resonance_ev,
        p.resonance_width_ev,
        p.transform_threshold,
        p.damage_threshold,
        p.resonance_gain,
    )
    assert got == FAMILY_BEFORE[seed]
    # and everything else at the defaults
    drawn = {"resonance_ev", "resonance_width_ev", "transform_threshold", "damage_threshold",
             "resonance_gain"}  # fmt: skip
    base = ResponseParams()
    for name in ResponseParams.model_fields:
        if name not in drawn:
            assert getattr(p, name) == getattr(base, name), name
