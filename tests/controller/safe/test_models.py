"""GP recipes: the heating model does not extrapolate an absorbance trend; the damage model
works over the predicted heating and says 50 % where nothing was measured."""

import numpy as np
import torch
from safe_sample import CFG, evidence, truth

from uedsteer.controller.safe.models import LOGIT_SCALE, DamageGP, HeatingGP, logit
from uedsteer.controller.safe.optimizer import SafeOptimizer


def test_the_damage_prior_is_fifty_percent_far_from_every_measurement():
    x = torch.tensor([[0.1, 0.5], [0.15, 0.5]], dtype=torch.float64)
    y = torch.tensor(logit(np.array([[0.01], [0.01]])) / LOGIT_SCALE)
    model = DamageGP(wavelength=1, over_heating=False).build(x, y)
    model.eval()
    with torch.no_grad():
        mean = model.posterior(torch.tensor([[0.95, 0.05]], dtype=torch.float64)).mean
    assert abs(float(mean)) < 1e-3, "logit 0 = 50 % damage"
    assert float(model.covar_module.lengthscale.max()) <= 0.25 / 2 + 1e-9


def test_the_heating_prior_mean_has_a_trend_in_fluence_only():
    x = torch.rand(6, 2, dtype=torch.float64)
    model = HeatingGP(fluence=(0,), wavelength=1).build(x, torch.rand(6, 1, dtype=torch.float64))
    assert model.mean_module.dims == [0]


def test_heating_model_does_not_extrapolate_an_absorbance_trend_to_unmeasured_wavelengths():
    """Readings at 750–850 nm where the absorbance rises steeply with the wavelength say
    nothing about 550 nm (the C exciton absorbs strongly there): far from readings the model
    falls back to the average absorbance, and its upper bound covers the strongest one seen."""
    f = np.array([0.5, 1.0, 2.0, 3.0] * 3)
    lam = np.repeat([750.0, 800.0, 850.0], 4)
    x = np.column_stack([f, lam])
    scores = truth(x)
    scores["heating"] = 0.002 * f * (lam / 800.0) ** 10
    data = evidence(x, scores)
    mean, sd = (float(v[0]) for v in data.heating_posterior(np.array([[3.0, 550.0]])))
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
    found = SafeOptimizer(CFG).safe_set(x, scores, at)
    ucb = found.damage_ucb
    assert np.all(ucb[:2] <= CFG.damage_bound) and ucb[2] > CFG.damage_bound
    assert np.all(found.damage_features(at)[:2, 0] < found.damage_features(x)[:, 0].max())
    plain = SafeOptimizer(CFG.model_copy(update={"heating_growth": None}))
    ucb = plain.safe_set(x, scores, at).damage_ucb
    assert np.all(ucb[:2] > 0.5), "over fluence × wavelength both are unexplored"
