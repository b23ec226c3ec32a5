"""The safety rules: which candidates may be shot. Each rule is stated once, here.

A candidate is safe when every rule in :data:`RULES` admits it. Each rule is an object with
``judge(candidates, data) -> Verdict | None`` (None: the rule has nothing to apply, e.g. a
constraint with no finite score yet) and ``admit(candidates, data) -> mask``; ``data`` is the
:class:`~.evidence.Evidence` (fitted models and measurements), ``candidates`` the
:class:`~.evidence.Candidates` with the models' predictions there. Rules never fit a model.
The verdicts say, when nothing within reach is safe, which rule bound
(:func:`refusal_message`).

Two limits act before the rules: candidates lie inside the search box and within the ramp
limit of the devices' settings (:mod:`.candidates`). See ``docs/safety-model.md``; to add a
rule, ``docs/howto/add-a-safety-rule.md``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from ..config import CampaignConfig
from .coordinates import SearchSpace
from .evidence import Candidates, Evidence, ScoreBound, marginal
from .models import logit


@dataclass(frozen=True, eq=False)
class Verdict:
    """What one rule made of each candidate.

    ``excluded`` marks the candidates the rule refused; ``predicted`` (the model's mean) and
    ``bound`` (the confidence bound compared with the rule's limit), where given, are in the
    rule's units (``unit``) per candidate; ``best`` says which end of them is closest to
    passing. ``name`` states the rule with its figures.
    """

    name: str
    excluded: np.ndarray
    predicted: np.ndarray | None = None
    bound: np.ndarray | None = None
    best: str = "lowest"
    unit: str = ""

    @property
    def admitted(self) -> np.ndarray:
        """Mask of the candidates the rule admits."""
        return ~self.excluded

    def describe(self, rows: np.ndarray | slice) -> str:
        """``"<name> excludes every candidate (lowest predicted …, lowest upper bound …)"``
        (or ``<k> of <n> candidates``) over the candidates ``rows``."""
        excluded = self.excluded[rows]
        n, k = len(excluded), int(excluded.sum())
        text = f"{self.name} excludes {'every candidate' if k == n else f'{k} of {n}'}"
        if self.predicted is None or n == 0:
            return text
        pick = np.nanmin if self.best == "lowest" else np.nanmax
        unit = f" {self.unit}" if self.unit else ""
        figures = [f"{self.best} predicted {pick(self.predicted[rows]):.3g}{unit}"]
        if self.bound is not None:
            kind = "upper" if self.best == "lowest" else "lower"
            figures.append(f"{self.best} {kind} bound {pick(self.bound[rows]):.3g}{unit}")
        return f"{text} ({', '.join(figures)})"


class Rule(ABC):
    """One rule of the safe set."""

    @classmethod
    def from_config(cls, config: CampaignConfig, bounds: tuple[ScoreBound, ...]) -> list[Rule]:
        """The rule's instances for a configuration (none where it is switched off)."""
        return [cls(config)]  # type: ignore[call-arg]

    @abstractmethod
    def judge(self, candidates: Candidates, data: Evidence) -> Verdict | None:
        """The verdict on every candidate; None where the rule has nothing to apply."""

    def admit(self, candidates: Candidates, data: Evidence) -> np.ndarray:
        """Mask of the candidates this rule admits (every one where it does not apply)."""
        verdict = self.judge(candidates, data)
        return np.ones(len(candidates), dtype=bool) if verdict is None else verdict.admitted


class DamageBound(Rule):
    """The damage model's upper bound must stay at or below the damage bound.

    Damage is modelled by its own GP on logit(damage probability) with a fixed zero prior
    mean (:class:`~.models.DamageGP`): where nothing was measured the model says "50 %
    damage", which is unsafe. A candidate is admitted only if μ + β·σ of the damage logit is
    ≤ logit(δ) (``beta``, ``damage_bound``), so the safe set grows outward from measured
    low-damage points (SafeOpt-style expansion) and shrinks around damaging ones. Once the
    heating model exists, the damage model works over the *predicted heating* instead of the
    fluence (:func:`~.evidence.damage_features`): damage follows the absorbed energy, so
    damage-free shots vouch for the same absorbed energy at another wavelength, while a
    fluence far above the measured ones at a wavelength whose absorbance is unknown stays
    fenced by the heating rules' upper bound. The bunch charge (a probe setting) is no input:
    evidence at one charge holds at every charge.
    """

    def __init__(self, config: CampaignConfig) -> None:
        self.damage_bound = config.damage_bound
        self.beta = config.beta

    def judge(self, candidates: Candidates, data: Evidence) -> Verdict:
        mean, ucb = candidates.damage(self.beta)
        passes = ucb <= float(logit(self.damage_bound))
        return Verdict(
            f"damage bound δ = {self.damage_bound:g} (damage probability, β = {self.beta:g})",
            ~passes.numpy(),
            1.0 / (1.0 + np.exp(-mean.numpy())),
            1.0 / (1.0 + np.exp(-ucb.numpy())),
        )


class ScoreConstraint(Rule):
    """A score constraint (``score ≤ bound``, or ``≥`` with ``sense="min"``) must hold at the
    upper (lower) confidence bound μ ± β·σ of its GP (:class:`~.models.ConstraintGP`).

    The model works in units of a third of the bound, so that flat data keep a prior spread
    of bound/3 whatever the score's size. A constraint with no finite score yet does not
    apply. Configured constraints and those computed by Python callables
    (``Campaign(constraints=...)``) are modelled and enforced alike.
    """

    def __init__(self, bound: ScoreBound, beta: float, index: int = 0) -> None:
        self.bound = bound
        self.beta = beta
        self.index = index
        """Position of the constraint among the score bounds (its model in the evidence)."""

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ScoreConstraint):
            return NotImplemented
        return (self.bound, self.beta, self.index) == (other.bound, other.beta, other.index)

    __hash__ = None  # type: ignore[assignment]

    @classmethod
    def from_config(cls, config: CampaignConfig, bounds: tuple[ScoreBound, ...]) -> list[Rule]:
        return [cls(b, config.beta, i) for i, b in enumerate(bounds)]

    def judge(self, candidates: Candidates, data: Evidence) -> Verdict | None:
        b = self.bound
        model = data.constraint_model(self.index)
        if model is None:
            return None
        unit = b.unit
        mu, sd = marginal(model, candidates.model_inputs)
        if b.sense == "max":
            passes = mu + self.beta * sd <= b.bound / unit
        else:
            passes = mu - self.beta * sd >= b.bound / unit
        sign = 1.0 if b.sense == "max" else -1.0
        return Verdict(
            f"constraint {b.score} {'≤' if b.sense == 'max' else '≥'} {b.bound:g}",
            ~passes.numpy(),
            mu.numpy() * unit,
            (mu + sign * self.beta * sd).numpy() * unit,
            "lowest" if b.sense == "max" else "highest",
        )


class HeatingExpansion(Rule):
    """The heating model's upper bound must stay below ``heating_growth`` × the hottest
    damage-free shot + ``heating_floor``, or the candidate's fluence at most ``heating_growth``
    × that of a shot the sample took unharmed at its wavelength: the safe set grows in small
    steps of absorbed energy, whatever the absorbance at a wavelength (SafeOpt expansion on a
    damage precursor).

    The second way needs no heating model: at one wavelength the absorbed energy is
    proportional to the fluence (:attr:`~.evidence.Candidates.unharmed_fluence`: shots whose
    check frame saw their spot undamaged), so the step's growth is known whatever the
    sample's absorbance or heating per absorbed energy, and it holds where every frame
    transforms and none is a heating reading. The first is what a step to another wavelength
    needs, where the absorbance is the heating model's estimate.

    Heating (the scorer's apparent Debye–Waller Δ⟨u²⟩) rises with the absorbed fluence long
    before damage shows. Its GP (:class:`~.models.HeatingGP`) is trained on damage-free frames
    of an untransformed lattice (progress below ``HEATING_VALID_PROGRESS``) taken at or after
    the safe start's delay; the bunch charge is no input. A partly transformed shot is
    credited with the lower bound of its predicted heating, or with the clean reading below
    it at the same other settings scaled by the fluence ratio (never above the predicted
    mean): :func:`~.evidence.gather`. Approach steps (``Candidates.exempt``) are exempt: their
    growth in absorbed energy is known. Without a damage-free heating reading every candidate
    is refused. Applies when ``heating_growth`` is set and the scores have ``heating``.
    """

    def __init__(self, config: CampaignConfig) -> None:
        self.growth = config.heating_growth
        self.floor = config.heating_floor
        self.beta = config.beta

    def judge(self, candidates: Candidates, data: Evidence) -> Verdict | None:
        if not data.heating_used:
            return None
        if data.heating is None:
            return Verdict(
                "heating expansion (no damage-free heating reading yet)",
                np.ones(len(candidates), dtype=bool),
            )
        mean, _ = candidates.heating
        bound = candidates.upper_heating(self.beta)
        frontier = self.growth * data.hottest + self.floor
        j = data.space.fluence
        known = np.zeros(len(candidates), dtype=bool)
        if j is not None:  # NaN (no unharmed shot there) compares False
            known = candidates.points[:, j] <= self.growth * candidates.unharmed_fluence
        grows = (bound <= frontier) | known | candidates.exempt
        return Verdict(
            f"heating expansion (upper bound ≤ {self.growth:g} × "
            f"{data.hottest:.3g} + {self.floor:g} = {frontier:.3g} Å², or fluence ≤ "
            f"{self.growth:g} × an unharmed shot's at the wavelength)",
            ~grows,
            np.exp(mean),
            bound,
            unit="Å²",
        )


class HeatingLimit(Rule):
    """The heating model's upper bound must stay at or below the learned damage limit:
    ``heating_margin`` × the lowest heating of a shot that caused damage, and at most
    ``heating_max`` (:func:`~.evidence.learned_heating_limit`).

    Damage depends on the absorbed energy, so the threshold learned at one wavelength holds
    at all of them. A damaging shot without a heating reading counts with its predicted mean
    heating. Applies with a heating model and a finite limit; approach steps are not exempt.
    """

    def __init__(self, config: CampaignConfig) -> None:
        self.heating_max = config.heating_max
        self.beta = config.beta

    def judge(self, candidates: Candidates, data: Evidence) -> Verdict | None:
        limit = data.heating_limit
        if data.heating is None or not np.isfinite(limit):
            return None
        mean, _ = candidates.heating
        bound = candidates.upper_heating(self.beta)
        capped = self.heating_max is not None and limit >= self.heating_max
        source = "heating_max" if capped else "heating_margin × lowest damaging heating"
        return Verdict(
            f"heating limit {limit:.3g} Å² ({source})",
            ~(bound <= limit),
            np.exp(mean),
            bound,
            unit="Å²",
        )


RULES: tuple[type[Rule], ...] = (DamageBound, ScoreConstraint, HeatingExpansion, HeatingLimit)
"""Every rule of the safe set, in the order their verdicts are reported."""


def rules_for(config: CampaignConfig, bounds: tuple[ScoreBound, ...]) -> tuple[Rule, ...]:
    """The instances of :data:`RULES` for a configuration and its score constraints."""
    return tuple(rule for cls in RULES for rule in cls.from_config(config, bounds))


def refusal_message(
    verdicts: list[Verdict], safe: np.ndarray, n_local: int, space: SearchSpace, last: np.ndarray
) -> str:
    """Why none of the first ``n_local`` candidates (those within the ramp limit of
    ``last``) is safe: the rules that exclude every one of them, or, where none does alone,
    what each excludes; and whether safe candidates lie beyond the ramp limit."""
    reach = slice(0, n_local)
    active = [v for v in verdicts if v.excluded[reach].any()]
    binding = [v for v in active if v.excluded[reach].all()]
    text = f"none of {n_local} candidates within the ramp limit is safe: "
    if binding:
        text += "; ".join(v.describe(reach) for v in binding)
        others = [v for v in active if v not in binding]
        if others:
            text += "; besides, " + "; ".join(v.describe(reach) for v in others)
    elif active:
        text += "no rule alone excludes them all: " + "; ".join(v.describe(reach) for v in active)
    else:
        text += "no rule was recorded"
    beyond = int(safe[n_local:].sum())
    if beyond:
        steps = ", ".join(f"{n} {s:g}" for n, s in zip(space.names, space.steps, strict=True))
        origin = ", ".join(f"{n} {v:.4g}" for n, v in zip(space.names, last, strict=True))
        text += (
            f"; {beyond} candidates elsewhere in the search box are safe but lie beyond "
            f"the ramp limit (max_step {steps}) of {origin}"
        )
    return text
