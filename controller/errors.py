"""The controller's exceptions and warnings, in one hierarchy.

Catch :class:`ControllerError` for anything the controller refuses; catch a subclass for one
cause. Each subclass also derives from the built-in exception it replaced, so code written
against the built-in keeps working.
"""

from __future__ import annotations

from collections.abc import Mapping


class ControllerError(Exception):
    """Base class of every error the controller raises on purpose."""


class NoSafeCandidate(ControllerError, RuntimeError):
    """No candidate inside the safe set (or none expected to improve): stop, do not gamble.

    Parameters
    ----------
    message : str
        Why; where the safe set came out empty, it names the rules that excluded the
        candidates within reach.
    rules : mapping of str to int, optional
        Per rule verdict of the safe set (:class:`~uedsteer.controller.safe.rules.Verdict`
        ``name``), how many candidates within reach it excluded; empty where the refusal has
        another cause.
    """

    def __init__(self, message: str, rules: Mapping[str, int] | None = None) -> None:
        super().__init__(message)
        self.rules: dict[str, int] = dict(rules or {})


class ModelFittingError(ControllerError):
    """A GP's hyperparameter fit failed.

    Not raised by the campaign: a failed fit keeps the warm-started (or prior)
    hyperparameters, the model still conditions on every observation, and the failure is
    recorded (:attr:`~uedsteer.controller.safe.optimizer.SafeSet.fit_failures`) and announced
    with a :class:`ModelFitWarning`. Raise it yourself where a failed fit must stop a run.

    Parameters
    ----------
    model : str
        The model's key (``"damage"``, ``"heating"``, ``"c:<score>"`` …).
    cause : BaseException
        What the fit raised.
    """

    def __init__(self, model: str, cause: BaseException) -> None:
        super().__init__(f"fitting the {model!r} GP failed ({type(cause).__name__}: {cause})")
        self.model = model
        self.cause = cause


class GPStateError(ControllerError, ValueError):
    """A recorded GP state (warm start) that is no ``export_state()`` mapping."""


class NoModelError(ControllerError, RuntimeError):
    """A model was asked for that the evidence did not build (e.g. no heating readings yet)."""


class ModelFitWarning(UserWarning):
    """A GP's fit failed and the model went on with its warm-started or prior hyperparameters."""
