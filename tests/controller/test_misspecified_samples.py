"""Short campaigns on samples far off the simulator's defaults in one property each (issue 33):
none damages the sample.

Damage as the benchmarks count it (``bench_campaign.outcome``): a shot after which its spot
holds vacancies of 0.05 or more, or has melted. Each campaign takes a probe-only frame after
every shot (``check_frames``), the mode whose safety figures ``bench_misspecified.py`` prints.
"""

import numpy as np
import pytest

from uedsteer.controller.campaign import Campaign
from uedsteer.controller.config import CampaignConfig
from uedsteer.plans.simulate import simulate_campaign
from uedsteer.sim_devices.response import ResponseParams

DEFAULT = ResponseParams.for_material(None)
FAR_OFF = {
    # the heating rules' absolute numbers were set on the default's Debye–Waller reading
    "half the heating per absorbed energy": {"heating_k_per_mj": 0.5 * DEFAULT.heating_k_per_mj},
    "twice the heating per absorbed energy": {"heating_k_per_mj": 2 * DEFAULT.heating_k_per_mj},
    # the approach step assumes an onset width
    "a transition twice as broad": {"transform_steepness": 2 * DEFAULT.transform_steepness},
    # the wide family's lowest damage threshold
    "a damage threshold at the family's edge": {"damage_threshold": DEFAULT.damage_threshold / 1.6},
    # a C exciton twice as strong: a step to short wavelengths absorbs far more than at 800 nm
    "a C exciton twice as strong": {
        "exciton_heights": (*DEFAULT.exciton_heights[:2], 2 * DEFAULT.exciton_heights[2])
    },
}


@pytest.fixture(scope="module")
def scorer():
    from uedsteer.surrogates.scorer import FrameScorer

    return FrameScorer.pretrained()


@pytest.mark.parametrize("name", sorted(FAR_OFF))
def test_a_short_campaign_on_a_sample_far_off_the_defaults_does_not_damage_it(scorer, name):
    sample = ResponseParams.for_material(None, **FAR_OFF[name])
    camp = Campaign(CampaignConfig(budget=15, on_damage="move", check_frames=True))
    rec = simulate_campaign(scorer=scorer, controller=camp, response=sample, seed=0)
    df = rec.to_dataframe()
    damaged = (df["truth_vacancy"] >= 0.05) | df["truth_molten"].astype(bool)
    assert not damaged.any(), (
        f"{name}: shots {np.flatnonzero(damaged).tolist()} damaged the sample "
        f"(absorbed {df['truth_absorbed_fluence'].round(3).tolist()}, "
        f"damage threshold {sample.damage_threshold:.3f})"
    )
    assert len(df) >= 3, f"{name}: stopped after {len(df)} shots: {rec.stop_reason}"
