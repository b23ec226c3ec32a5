"""Campaign configuration (pydantic v2, loadable from YAML).

A campaign steers a few beamline settings (parameters) to maximize an objective computed from
frame scores, subject to constraints, without ever proposing a point whose predicted damage
exceeds a bound. Every field carries a description; unknown fields are rejected.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from uedsteer.sim_devices.contracts import SETTING_NAMES

SCORE_NAMES = (
    "progress",
    "line_distance",
    "damage_prob",
    "recon_error",
    "frame_quality",
    "heating",
)
"""Score fields usable by name as objective or constraint."""

SETTINGS = SETTING_NAMES
"""Every setting a campaign moves (the registry's names); each is either steered
(``parameters``) or held."""

DEFAULT_FIXED: Mapping[str, float] = {"charge": 20.0, "delay": 10.0}
"""Values the campaign holds the probe-side settings at when a configuration neither steers nor
fixes them (bunch charge in fC, pump–probe delay in ps). The pump's fluence and wavelength have
no such default: a configuration must steer or fix them."""


def _only_numbers(value: object) -> object:
    """Refuse booleans and strings where a number is expected.

    Pydantic's lax mode would read ``true`` as 1 and ``"3"`` as 3; a YAML ``budget: true`` is a
    typo, not a budget of one shot. Integers (YAML, the CLI) and numpy numbers pass on to the
    field's own validation.
    """
    if isinstance(value, bool | np.bool_):
        raise ValueError(f"expected a number, got the boolean {value}")
    if isinstance(value, str | bytes):
        raise ValueError(f"expected a number, got the string {value!r}")
    return value


Number = Annotated[float, BeforeValidator(_only_numbers), Field(allow_inf_nan=False)]
"""A finite real number: integers count as floats; booleans, strings, inf and NaN are refused."""

Count = Annotated[int, BeforeValidator(_only_numbers)]
"""A whole number: booleans, strings and floats with a fractional part are refused."""


class ParameterSpec(BaseModel):
    """One steered setting."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Literal[SETTING_NAMES] = Field(
        description="Which setting: pump fluence (mJ/cm²), wavelength (nm), bunch charge (fC) "
        "or pump–probe delay (ps)."
    )
    low: Number = Field(description="Lower bound of the search space.")
    high: Number = Field(description="Upper bound of the search space.")
    hard_low: Number | None = Field(
        None, description="Hard lower limit never to be crossed (default: low)."
    )
    hard_high: Number | None = Field(
        None, description="Hard upper limit never to be crossed (default: high)."
    )
    log_scale: bool = Field(False, description="Model this parameter on a log scale.")
    max_step: Number = Field(
        gt=0, description="Ramp limit: largest change per iteration, in the parameter's units."
    )
    safe_start: Number = Field(description="Known-safe starting value.")

    @model_validator(mode="after")
    def _check(self) -> ParameterSpec:
        n = self.name
        if not self.low < self.high:
            raise ValueError(f"{n}: low={self.low} must be below high={self.high}")
        hl = self.hard_low if self.hard_low is not None else self.low
        hh = self.hard_high if self.hard_high is not None else self.high
        if hl > self.low or hh < self.high:
            raise ValueError(
                f"{n}: search space [{self.low}, {self.high}] must lie inside the hard limits "
                f"[{hl}, {hh}]"
            )
        if not self.low <= self.safe_start <= self.high:
            raise ValueError(
                f"{n}: safe_start={self.safe_start} is outside [{self.low}, {self.high}]"
            )
        if self.log_scale and self.low <= 0:
            raise ValueError(f"{n}: log_scale needs low > 0, got low={self.low}")
        return self


class ConstraintSpec(BaseModel):
    """A constraint on a score field: ``score <= bound`` (or ``>=`` with ``sense="min"``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    score: Literal[SCORE_NAMES] = Field(description="Score field name.")
    bound: Number = Field(description="Threshold.")
    sense: Literal["max", "min"] = Field(
        "max", description="'max': score must stay at or below bound; 'min': at or above."
    )


def _unset_message(name: str) -> str:
    """Why a configuration that neither steers nor fixes ``name`` is refused, and the two ways
    to fix it (with the default campaign's figures as an example)."""
    spec = next(p for p in _default_parameters() if p.name == name)
    return (
        f"{name} is neither steered nor fixed: add it to parameters, e.g. "
        f"{{name: {name}, low: {spec.low:g}, high: {spec.high:g}, max_step: "
        f"{spec.max_step:g}, safe_start: {spec.safe_start:g}}}, or hold it under fixed, e.g. "
        f"fixed: {{{name}: {spec.safe_start:g}}}"
    )


def _default_parameters() -> tuple[ParameterSpec, ...]:
    return (
        ParameterSpec(
            name="fluence", low=0.2, high=12.0, hard_high=20.0, max_step=1.5, safe_start=0.5
        ),
        ParameterSpec(
            name="wavelength",
            low=500.0,
            high=1100.0,
            hard_low=400.0,
            hard_high=1600.0,
            max_step=150.0,
            safe_start=800.0,
        ),
    )


class CampaignConfig(BaseModel):
    """Everything a campaign needs; ``CampaignConfig()`` has working defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    parameters: tuple[ParameterSpec, ...] = Field(
        default_factory=_default_parameters, description="Steered settings."
    )
    fixed: dict[str, Number] = Field(
        default_factory=lambda: dict(DEFAULT_FIXED),
        description="Settings held constant (context), e.g. charge and delay. Every setting is "
        "either steered or fixed; charge and delay not named anywhere are held at 20 fC and "
        "10 ps, fluence and wavelength have no default.",
    )
    objective: Literal[SCORE_NAMES] = Field(
        "progress", description="Score field to maximize (default: VAE progress 2H → 1T')."
    )
    constraints: tuple[ConstraintSpec, ...] = Field(
        default_factory=lambda: (ConstraintSpec(score="line_distance", bound=3.0),),
        description="Score constraints (default: stay near the 2H–1T' line); each is a "
        "uedsteer.controller.safe.rules.ScoreConstraint.",
    )
    damage_bound: Number = Field(
        0.2,
        gt=0,
        lt=1,
        description="δ: largest allowed predicted damage probability (rule DamageBound).",
    )
    beta: Number = Field(
        2.0,
        gt=0,
        description="β: confidence multiplier of every safety rule's bound (mean ± β·σ).",
    )
    monotone_fluence: bool = Field(
        True,
        description="The objective grows with the excitation: propose only the highest safe "
        "fluence at each setting of the other parameters (needs fluence among the parameters).",
    )
    objective_scale: Number = Field(
        0.1,
        gt=0,
        description="Objective data spreading less than this count as flat: the GP then "
        "keeps a prior standard deviation of 1 in the objective's units (progress runs 0 … 1) "
        "instead of collapsing to the noise (BoTorch Standardize's min_stdv).",
    )
    target: Number = Field(
        0.8, description="Stop when the objective of a safe, on-line frame reaches this."
    )
    patience: Count = Field(
        25,
        ge=1,
        description="Stop (no safe candidate expected to improve) after this many shots "
        "without a better objective while the optimizer only explores.",
    )
    budget: Count = Field(40, ge=1, le=10000, description="Shot budget (frames).")
    n_initial: Count = Field(
        1, ge=1, le=20, description="Shots at the safe start before the GP proposes."
    )
    heating_growth: Number | None = Field(
        1.2,
        gt=1,
        description="Factor by which a candidate's heating (upper bound, Å² of apparent "
        "Debye–Waller Δ⟨u²⟩) may exceed the hottest damage-free frame, plus heating_floor "
        "(rule HeatingExpansion). None disables the heating rules.",
    )
    heating_floor: Number = Field(
        0.002,
        ge=0,
        description="Absolute heating allowance (Å²) of the expansion (rule HeatingExpansion), "
        "so that the search can leave a cold start.",
    )
    check_frames: bool = Field(
        False,
        description="After each shot, a probe-only frame on the same spot with the pump "
        "shutter closed (no dose): damage the shot caused shows before the next shot is "
        "chosen instead of on the next shot's frame. Costs one frame and two shutter moves a "
        "shot.",
    )
    heating_margin: Number = Field(
        0.8,
        gt=0,
        le=1,
        description="Fraction of the lowest heating that caused damage that candidates must "
        "stay below, at every wavelength (rule HeatingLimit).",
    )
    heating_max: Number | None = Field(
        None,
        gt=0,
        description="Hard cap (Å²) on any candidate's heating upper bound, known before the "
        "campaign, e.g. from a static heating calibration (rule HeatingLimit). None: only the "
        "limit learned from damaging shots.",
    )
    explore_excitation: Number | None = Field(
        0.5,
        gt=0,
        le=1,
        description="While the objective is flat, propose only among the safe candidates "
        "whose predicted heating is at least this fraction of the hottest one's "
        "(uedsteer.controller.safe.strategies.hottest). None: every safe candidate.",
    )
    climb_heating: Number | None = Field(
        0.007,
        gt=0,
        description="Initial climb: until a heating reading (Å²) reaches this, or something "
        "transforms, shots stay at the safe start's other settings at the highest safe "
        "fluence (uedsteer.controller.safe.strategies.climbing). None: no climb.",
    )
    approach_width: Number | None = Field(
        0.1,
        gt=0,
        le=0.5,
        description="Approach step: assumed relative width w in absorbed energy of the "
        "transformation x = σ((ε − ε_T)/(w·ε_T)); after a damage-free, partly transformed "
        "frame the next shot scales the fluence to reach x = (1 + target)/2 "
        "(uedsteer.controller.safe.strategies.approach_point). Needs the objective 'progress' "
        "and the fluence steered (a Python objective turns it off). None disables it.",
    )
    refit_every: Count = Field(
        5,
        ge=1,
        description="Beyond 20 observations, refit GP hyperparameters every this "
        "many shots (in between: warm hyperparameters, data updated).",
    )
    max_failures: Count = Field(
        3,
        ge=1,
        description="Consecutive failed shots (device fault, invalid frame) that stop "
        "the campaign.",
    )
    reconnect_timeout: Number = Field(
        60.0,
        ge=0,
        le=3600,
        description="Seconds the campaign waits, after a failed shot, for every device to "
        "answer again (it proposes nothing meanwhile and closes the pump shutter first once "
        "they do) before it stops; also how long it tries to close the shutter at the end.",
    )
    halt_damage_prob: Number = Field(
        0.8, gt=0, le=1, description="Damage probability that counts as a damaged frame."
    )
    halt_consecutive: Count = Field(
        2, ge=1, description="Damaged frames in a row that halt (or move) the campaign."
    )
    hurt_spot_frames: Count | None = Field(
        3,
        ge=2,
        description="Frames in a row on one spot whose damage probability reaches 0.5 that "
        "count as damage like halt_consecutive frames at halt_damage_prob: on a lightly hurt "
        "spot the damage classes hover between 0.5 and 0.9, and such frames teach the "
        "models nothing (a hurt spot hides what a setting does). None: only the halt rule.",
    )
    on_damage: Literal["halt", "move"] = Field(
        "halt",
        description="'halt': close the shutter and stop; 'move': go to a fresh spot and mark "
        "the region unsafe.",
    )
    frames_per_point: Count = Field(
        1,
        ge=1,
        le=100,
        description="Detector frames averaged per shot (and per reference frame); each frame "
        "is its own pump pulse, so the spot takes that many pulses per shot. Above 1 the "
        "detector needs a frames_per_point component; the campaign restores it at the end.",
    )
    n_candidates: Count = Field(
        512, ge=16, le=100000, description="Candidate points scored per proposal."
    )
    seed: Count = Field(0, ge=0, description="Seed of the optimizer's random numbers.")
    threads: Count | None = Field(
        None,
        ge=1,
        le=1024,
        description="Threads the campaign process may compute with at once, its thread "
        "budget (uedsteer.surrogates.threads): the scorer's and Dask's workers, and the most "
        "threads one operation is split across (only across the cores other processes leave "
        "free). None: the cores the process may run on. OMP_NUM_THREADS (or MKL_NUM_THREADS, "
        "OPENBLAS_NUM_THREADS), when set, fixes the threads per operation whatever this says.",
    )

    @model_validator(mode="after")
    def _check(self) -> CampaignConfig:
        names = [p.name for p in self.parameters]
        if not names:
            raise ValueError("parameters: steer at least one setting")
        if len(set(names)) != len(names):
            raise ValueError(f"parameters: duplicate names {names}")
        both = set(names) & set(self.fixed)
        if both:
            raise ValueError(f"fixed: {sorted(both)} are also steered parameters")
        unknown = set(self.fixed) - set(SETTINGS)
        if unknown:
            raise ValueError(f"fixed: unknown settings {sorted(unknown)}")
        # The devices move every setting, so each needs a value: a steered range or a fixed
        # value (charge and delay fall back to DEFAULT_FIXED, the pump's settings do not).
        held = set(names) | set(self.fixed) | set(DEFAULT_FIXED)
        missing = [n for n in SETTINGS if n not in held]
        if missing:
            raise ValueError("; ".join(_unset_message(n) for n in missing))
        return self

    @classmethod
    def from_yaml(cls, path: str | Path) -> CampaignConfig:
        """Load from a YAML file (fields as above; errors name the field).

        Raises
        ------
        pydantic.ValidationError
            If a field is missing, unknown or invalid; :func:`format_validation_error` turns
            it into one line.
        """
        data = yaml.safe_load(Path(path).read_text()) or {}
        return cls.model_validate(data)

    def fixed_values(self) -> dict[str, float]:
        """The settings held constant: ``fixed``, completed with :data:`DEFAULT_FIXED` for the
        probe-side settings that are neither steered nor fixed."""
        steered = {p.name for p in self.parameters}
        out = {k: v for k, v in DEFAULT_FIXED.items() if k not in steered}
        out.update(self.fixed)
        return out

    def parameter(self, name: str) -> ParameterSpec:
        """The spec of a steered parameter by name."""
        for p in self.parameters:
            if p.name == name:
                return p
        raise KeyError(name)


def format_validation_error(err: ValidationError) -> str:
    """One readable line for a configuration's validation errors.

    Parameters
    ----------
    err : pydantic.ValidationError
        E.g. from :meth:`CampaignConfig.from_yaml` or ``CampaignConfig(**fields)``.

    Returns
    -------
    str
        ``"field.path: message; field.path: message"``: the location of each error in the
        configuration (list entries by index, e.g. ``parameters.1.high``), pydantic's message
        without its ``Value error,`` prefix and, for type errors, the value given. Line breaks
        inside messages are folded into spaces.

    Examples
    --------
    >>> try:
    ...     CampaignConfig(budget=True)
    ... except ValidationError as err:
    ...     print(format_validation_error(err))
    budget: expected a number, got the boolean True
    """
    parts = []
    for e in err.errors(include_url=False):
        loc = ".".join(str(x) for x in e["loc"])
        msg = str(e["msg"])
        if e["type"] == "value_error":
            msg = msg.removeprefix("Value error, ")
        elif not isinstance(e.get("input"), dict | list | tuple) and "input" in e:
            given = repr(e["input"])
            msg += f" (got {given if len(given) <= 40 else given[:37] + '...'})"
        text = f"{loc}: {msg}" if loc else msg
        parts.append(" ".join(text.split()))
    return "; ".join(parts)
