"""Fitting the GPs warm: the state carried from one proposal to the next, and its schedule.

A :class:`GPState` holds, per model key, the hyperparameters of the last fit, the number of
observations it was fitted on, and a summary. :func:`fit` builds a model from its recipe
(:mod:`.models`), starts it from that state, refits the hyperparameters when the schedule says
so, and returns the model with the *new* state; the caller decides whether to keep it. So a
resumed campaign that loads a recorded state (:meth:`GPState.from_json`) proposes as it would
have without the interruption.

Schedule: hyperparameters are refitted at every shot up to :data:`ALWAYS_REFIT_UP_TO`
observations and then every ``refit_every`` shots; in between the warm hyperparameters are
kept and only the data change. A refit uses the latest :data:`FIT_MAX_POINTS` observations (the
region the search is in); the model conditions on all of them.

A failed fit keeps the warm-started (or prior) hyperparameters, counts as the scheduled refit,
and is returned as a :class:`~uedsteer.controller.errors.ModelFittingError`; the caller records
and announces it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from botorch.fit import fit_gpytorch_mll
from botorch.models import SingleTaskGP
from gpytorch.mlls import ExactMarginalLogLikelihood

from ..errors import GPStateError, ModelFittingError
from .models import GPRecipe

ALWAYS_REFIT_UP_TO = 20
"""Up to this many observations the hyperparameters are refitted at every shot."""
FIT_MAX_POINTS = 60
"""Hyperparameters are fitted on at most the latest this many observations."""
FIT_MAX_ITER = 75
"""Iterations of the optimizer of one hyperparameter fit."""


@dataclass(frozen=True)
class GPState:
    """Warm-start state of every GP, by model key (immutable: updates return a new state).

    Attributes
    ----------
    hyperparameters : dict of str to dict of str to Tensor
        Each model's state dict without its data and outcome scaling.
    fitted_at : dict of str to int
        Observations each model's hyperparameters were last fitted on.
    summaries : dict of str to dict of str to float
        Each model's hyperparameters as plain numbers (for the campaign's documents).
    """

    hyperparameters: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    fitted_at: dict[str, int] = field(default_factory=dict)
    summaries: dict[str, dict[str, float]] = field(default_factory=dict)

    def needs_fit(self, key: str, n: int, refit_every: int) -> bool:
        """True if model ``key`` on ``n`` observations is due a hyperparameter refit."""
        last = self.fitted_at.get(key)
        if last is None or n <= ALWAYS_REFIT_UP_TO:
            return True
        return n - last >= refit_every

    def to_json(self) -> dict[str, dict[str, Any]]:
        """The hyperparameters as plain numbers (JSON-ready), per model:
        ``{key: {"fitted_at": n or None, "state": {name: list}}}``."""
        return {
            key: {
                "fitted_at": self.fitted_at.get(key),
                "state": {name: v.tolist() for name, v in state.items()},
            }
            for key, state in self.hyperparameters.items()
        }

    def updated_from_json(self, state: dict[str, dict]) -> GPState:
        """This state with the models in ``state`` (:meth:`to_json`'s output) replaced.

        Raises
        ------
        GPStateError
            If ``state`` is not a mapping of model name to ``{"fitted_at", "state"}``.
        """
        try:
            loaded = {
                key: {n: torch.tensor(v, dtype=torch.float64) for n, v in m["state"].items()}
                for key, m in state.items()
            }
            fitted = {key: m["fitted_at"] for key, m in state.items() if m["fitted_at"] is not None}
        except (AttributeError, KeyError, TypeError, ValueError) as err:
            raise GPStateError(
                f"state={str(state)[:80]!r} is not a SafeOptimizer.export_state() mapping "
                f"of model name to {{'fitted_at', 'state'}} ({err})"
            ) from None
        return GPState(
            {**self.hyperparameters, **loaded},
            {**self.fitted_at, **{key: int(n) for key, n in fitted.items()}},
            dict(self.summaries),
        )


@dataclass(frozen=True, eq=False)
class Fitted:
    """A fitted GP, the warm-start state after its fit, and the fit's failure if any."""

    model: SingleTaskGP
    state: GPState
    failure: ModelFittingError | None = None


def _warm(recipe: GPRecipe, x: torch.Tensor, y: torch.Tensor, state: GPState) -> SingleTaskGP:
    """The recipe's model on (x, y), started from the last fit of its key.

    A recorded state that does not fit the model (another number of inputs) is left aside:
    the model starts from its prior.
    """
    model = recipe.build(x, y)
    old = state.hyperparameters.get(recipe.key)
    if old is not None:
        try:
            model.load_state_dict(old, strict=False)
        except RuntimeError:
            pass
    return model


def fit(
    recipe: GPRecipe, x: torch.Tensor, y: torch.Tensor, state: GPState, refit_every: int
) -> Fitted:
    """Build ``recipe``'s GP on (x, y), warm from ``state``, refit when due (module doc).

    Parameters
    ----------
    recipe : GPRecipe
        Which outcome (its ``key`` names the model in ``state``).
    x, y : Tensor
        Inputs (n, d) in [0, 1] and outcomes (n, 1).
    state : GPState
        Warm-start state; not changed.
    refit_every : int
        The configuration's ``refit_every``.

    Returns
    -------
    Fitted
        The model in eval mode, ``state`` with this model's entry replaced, and the fit's
        failure (None when it succeeded or no fit was due).
    """
    key = recipe.key
    model = _warm(recipe, x, y, state)
    n = int(x.shape[0])
    fitted_at = dict(state.fitted_at)
    failure = None
    if state.needs_fit(key, n, refit_every):
        fit_model = model
        if n > FIT_MAX_POINTS:
            fit_model = _warm(recipe, x[-FIT_MAX_POINTS:], y[-FIT_MAX_POINTS:], state)
        mll = ExactMarginalLogLikelihood(fit_model.likelihood, fit_model)
        try:
            fit_gpytorch_mll(mll, optimizer_kwargs={"options": {"maxiter": FIT_MAX_ITER}})
        except Exception as err:  # noqa: BLE001 - kept warm/prior hyperparameters, reported
            failure = ModelFittingError(key, err)
        if fit_model is not model:
            model.load_state_dict(hyperparameters(fit_model), strict=False)
        fitted_at[key] = n
    warm = hyperparameters(model)
    model.eval()
    new = GPState(
        {**state.hyperparameters, key: warm},
        fitted_at,
        {**state.summaries, key: summary(model, n)},
    )
    return Fitted(model, new, failure)


def hyperparameters(model: SingleTaskGP) -> dict[str, torch.Tensor]:
    """A GP's state without its data or outcome scaling (what carries over to a refit)."""
    return {k: v for k, v in model.state_dict().items() if "train" not in k and "outcome" not in k}


def summary(model: SingleTaskGP, n: int) -> dict[str, float]:
    """Hyperparameters of a fitted GP as plain numbers (for the campaign's documents)."""
    out: dict[str, float] = {"n": float(n)}
    try:
        ls = model.covar_module.lengthscale.detach().flatten().tolist()
        out.update({f"lengthscale_{i}": float(v) for i, v in enumerate(ls)})
        noise = model.likelihood.noise.detach().flatten()
        out["noise"] = float(noise.mean())
    except AttributeError:  # pragma: no cover - other kernels
        pass
    return out
