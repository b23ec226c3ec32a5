"""The default campaign on samples far off the simulator's defaults (issue 33): one sample of
the wide family per assumption the safety model no longer makes, each run as a short
campaign. The controller before this change took each of them past its damage threshold
within the same number of shots (the figures in each case).

- Heating per absorbed energy (sample 1022: a third of the default Debye–Waller reading per
  absorbed mJ/cm², damage threshold × 0.67): the climb judged an absolute reading
  (0.007 Å²) that this sample reaches only past its damage threshold; it climbed to
  1.05 ε_D. The climb and the expansion now judge the reading's rise above the cold reading,
  in proportion to the absorbed energy.
- The transition's width and the heating model's extrapolation (sample 1007: transition
  × 1.58, heating reading × 0.3, damage threshold × 0.85): a power law fitted on readings
  near the cold reading understated the growth at the start wavelength, and the approach
  step, exempt from the heating expansion, went on from a frame at ε_D; 1.59 ε_D and a damage
  event by shot 7. The heating model now fits the rise per unit fluence and readings at a
  candidate's own settings scale exactly; approach steps pass the expansion.
- A broad transition with a low threshold (sample 1031: transition × 1.97, damage threshold
  × 0.81): an onset frame beyond ε_D at a far wavelength, then an approach step to
  1.68 ε_D, a damage event by shot 17. The approach step now passes the heating expansion,
  and a shot whose next frame shows the first vacancies sets the heating limit.
"""

import pytest

from uedsteer.controller.campaign import Campaign
from uedsteer.controller.config import CampaignConfig
from uedsteer.plans.simulate import simulate_campaign
from uedsteer.sim_devices.response import ResponseParams
from uedsteer.surrogates.scorer import FrameScorer

pytestmark = pytest.mark.filterwarnings("ignore")

DAMAGE_EVENT = 0.05
"""Site vacancy of a damage event (DESIGN.md)."""


@pytest.fixture(scope="module")
def scorer():
    return FrameScorer.pretrained()


def _shots(seed: int, budget: int, scorer) -> tuple[ResponseParams, list[dict]]:
    response = ResponseParams.random_wide(seed)
    camp = Campaign(CampaignConfig(budget=budget, on_damage="move"))
    rec = simulate_campaign(scorer=scorer, controller=camp, response=response, seed=seed)
    return response, [t.truth for t in rec.trials if t.truth is not None]


def test_a_weak_heating_reading_does_not_carry_the_climb_past_the_damage_threshold(scorer):
    response, shots = _shots(1022, 12, scorer)
    assert response.heating_k_per_mj < 0.6 * ResponseParams().heating_k_per_mj
    assert len(shots) == 12
    reach = max(s["absorbed_fluence"] for s in shots) / response.damage_threshold
    assert reach < 1.0, f"a shot at {reach:.2f} × the damage threshold"


@pytest.mark.parametrize(("seed", "budget"), [(1007, 8), (1031, 18)])
def test_a_broad_transition_does_not_lead_the_campaign_into_damage(seed, budget, scorer):
    response, shots = _shots(seed, budget, scorer)
    assert response.transform_steepness > 1.5 * ResponseParams().transform_steepness
    worst = max(s["vacancy"] for s in shots)
    assert worst < DAMAGE_EVENT and not any(s["molten"] for s in shots), worst
    assert max(s["x"] for s in shots) > 0.0, "the campaign reached the transition's onset"
