"""One GP recipe per outcome: objective, score constraint, heating, damage.

Each recipe builds an unfitted BoTorch ``SingleTaskGP`` on inputs in [0, 1] (see
:mod:`.coordinates`) with the prior, noise and length-scale limits its outcome needs;
:mod:`.fitting` fits it warm. Outcome units are chosen so that 1 is a meaningful change: the
``flat_spread`` of a recipe is BoTorch's ``Standardize(min_stdv=…)``, so outcomes spreading less
keep a prior standard deviation of 1 in their units instead of collapsing to the noise.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import ClassVar, Protocol

import numpy as np
import torch
from botorch.exceptions import InputDataWarning
from botorch.models import SingleTaskGP
from botorch.models.transforms import Standardize
from gpytorch.constraints import Interval
from gpytorch.means import LinearMean, Mean

LOGIT_CLIP = 1e-3
"""Damage probabilities are clipped to [LOGIT_CLIP, 1 − LOGIT_CLIP] before the logit."""
LOGIT_SCALE = float(np.log((1 - LOGIT_CLIP) / LOGIT_CLIP))
"""The damage GP models logit(damage probability) / LOGIT_SCALE (so its outcome lies in ±1)."""
WAVELENGTH_MAX_LENGTHSCALE = 0.25
"""Longest wavelength correlation of the objective and constraint GPs, of the search range:
photon-energy-selective features (exciton lines, the resonance band) are narrow."""
ABSORBANCE_LENGTHSCALE = 0.12
"""Longest wavelength correlation of the heating GP, of the search range: exciton lines are
~50–80 nm wide, and with no wavelength trend in the prior mean, readings 50–70 nm away must
still inform the absorbance at a band where every frame transforms."""
HEATING_LOG_SCALE = 0.5
"""log(heating) spreading less than this is flat: prior spread 1 (a factor e)."""
CONSTRAINT_FLAT_SPREAD = 0.3
"""Constraint data (in units of a third of the bound) spreading less than this are flat."""
DAMAGE_MAX_LENGTHSCALE = 0.25
"""Longest correlation of the damage GP, of the search range: evidence of safety must not
reach far, so the safe set grows in small steps from measured points."""
DAMAGE_WAVELENGTH_LENGTHSCALE = 1.0
"""Longest wavelength correlation of the damage GP over predicted heating: what the wavelength
changes is already in the heating input."""
DAMAGE_NOISE_VAR = 0.01
"""Fixed noise of the damage GP ((0.1 in scaled logit)²): the scorer's damage probability is
precise; a fitted noise would explain the jump from "no damage" to "damage" as noise and the
bound would never tighten."""


def logit(p: np.ndarray) -> np.ndarray:
    """Logit with probabilities clipped to [:data:`LOGIT_CLIP`, 1 − :data:`LOGIT_CLIP`]."""
    p = np.clip(np.asarray(p, dtype=np.float64), LOGIT_CLIP, 1 - LOGIT_CLIP)
    return np.log(p / (1 - p))


class GPRecipe(Protocol):
    """How one outcome's GP is built (before its hyperparameters are fitted)."""

    key: str
    """Name of the model (warm-start state, summaries)."""

    def build(self, x: torch.Tensor, y: torch.Tensor) -> SingleTaskGP:
        """An unfitted GP on inputs ``x`` (n, d) in [0, 1] and outcomes ``y`` (n, 1)."""
        ...


class TrendMean(Mean):
    """Prior mean ``b + Σ_k w_k x_k`` over the input columns ``dims`` only."""

    def __init__(self, dims: tuple[int, ...]) -> None:
        super().__init__()
        self.dims = list(dims)
        self.register_parameter("weights", torch.nn.Parameter(torch.zeros(len(dims), 1)))
        self.register_parameter("bias", torch.nn.Parameter(torch.zeros(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x[..., self.dims] @ self.weights).squeeze(-1) + self.bias


def _gp(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    flat_spread: float | None,
    mean: Mean | None,
    noise_var: float | None = None,
) -> SingleTaskGP:
    """A SingleTaskGP on inputs already in [0, 1] (no input transform: an identity
    ``Normalize`` would still run at every fit step and posterior); outcomes standardized
    unless ``flat_spread`` is None; a fixed noise variance where ``noise_var`` is given."""
    with warnings.catch_warnings():
        # an unstandardized outcome (the damage model) is deliberate: its prior mean is fixed
        warnings.simplefilter("ignore", InputDataWarning)
        return SingleTaskGP(
            x,
            y,
            train_Yvar=None if noise_var is None else torch.full_like(y, noise_var),
            outcome_transform=None if flat_spread is None else Standardize(1, min_stdv=flat_spread),
            mean_module=mean,
        )


def _limit_wavelength(
    model: SingleTaskGP, x: torch.Tensor, wavelength: int | None, longest: float
) -> None:
    """Cap the wavelength length scale at ``longest`` (the others at 100), starting at most
    at half of each cap."""
    if wavelength is None:
        return
    upper = torch.full((x.shape[-1],), 100.0, dtype=x.dtype)
    upper[wavelength] = longest
    model.covar_module.register_constraint(
        "raw_lengthscale", Interval(torch.full_like(upper, 0.01), upper)
    )
    model.covar_module.lengthscale = torch.minimum(
        model.covar_module.lengthscale.detach(), 0.5 * upper
    )


@dataclass(frozen=True)
class ObjectiveGP:
    """The objective: prior mean linear in every input, so that where nothing was measured
    it extrapolates the trend with the excitation instead of reverting to the average.

    ``flat_spread``: the configuration's ``objective_scale``; ``wavelength``: input column of
    the wavelength (None when not steered).
    """

    flat_spread: float
    wavelength: int | None
    key: ClassVar[str] = "objective"

    def build(self, x: torch.Tensor, y: torch.Tensor) -> SingleTaskGP:
        model = _gp(x, y, flat_spread=self.flat_spread, mean=LinearMean(x.shape[-1]))
        _limit_wavelength(model, x, self.wavelength, WAVELENGTH_MAX_LENGTHSCALE)
        return model


@dataclass(frozen=True)
class ConstraintGP:
    """A score constraint, in units of a third of its bound (so that flat data keep a prior
    spread of bound/3 whatever the score's size); constant prior mean."""

    key: str
    wavelength: int | None

    def build(self, x: torch.Tensor, y: torch.Tensor) -> SingleTaskGP:
        model = _gp(x, y, flat_spread=CONSTRAINT_FLAT_SPREAD, mean=None)
        _limit_wavelength(model, x, self.wavelength, WAVELENGTH_MAX_LENGTHSCALE)
        return model


@dataclass(frozen=True)
class HeatingGP:
    """log(heating) over (log fluence, other sample-side parameters).

    The prior mean is linear in log fluence only (``fluence``: its input columns): heating is
    close to a power law of the fluence scaled by the absorbance, and an absorbance spectrum is
    no straight line in the wavelength (the C exciton quadruples it below 600 nm), so away from
    readings the model falls back to the average absorbance and its full uncertainty rather
    than a trend extrapolated from elsewhere. Short wavelength correlations
    (:data:`ABSORBANCE_LENGTHSCALE`).
    """

    fluence: tuple[int, ...]
    wavelength: int | None
    key: ClassVar[str] = "heating"

    def build(self, x: torch.Tensor, y: torch.Tensor) -> SingleTaskGP:
        model = _gp(x, y, flat_spread=HEATING_LOG_SCALE, mean=TrendMean(self.fluence))
        _limit_wavelength(model, x, self.wavelength, ABSORBANCE_LENGTHSCALE)
        return model


@dataclass(frozen=True)
class DamageGP:
    """logit(damage probability) / :data:`LOGIT_SCALE`, unstandardized, with a fixed zero
    prior mean: where nothing was measured the model says "50 % damage", which is unsafe.

    Fixed small noise (:data:`DAMAGE_NOISE_VAR`); short length scales
    (:data:`DAMAGE_MAX_LENGTHSCALE`), except the wavelength's when the inputs carry the
    predicted heating (``over_heating``), where it may span the range
    (:data:`DAMAGE_WAVELENGTH_LENGTHSCALE`).
    """

    wavelength: int | None
    over_heating: bool
    key: ClassVar[str] = "damage"

    def build(self, x: torch.Tensor, y: torch.Tensor) -> SingleTaskGP:
        model = _gp(x, y, flat_spread=None, mean=None, noise_var=DAMAGE_NOISE_VAR)
        model.mean_module.constant.data.fill_(0.0)
        model.mean_module.raw_constant.requires_grad_(False)
        upper = torch.full((x.shape[-1],), DAMAGE_MAX_LENGTHSCALE, dtype=x.dtype)
        if self.over_heating and self.wavelength is not None:
            upper[self.wavelength] = DAMAGE_WAVELENGTH_LENGTHSCALE
        model.covar_module.register_constraint(
            "raw_lengthscale", Interval(torch.full_like(upper, 0.02), upper)
        )
        model.covar_module.lengthscale = 0.5 * upper
        return model
