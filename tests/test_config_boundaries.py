"""Boundaries that hold: a configuration is refused before anything moves when it cannot run
(search boxes beyond a device's limits, settings without a value, numbers that are no finite
numbers), and a campaign that finds nothing safe says which rule excluded the candidates."""

import math
import types
import typing

import numpy as np
import pytest
from bluesky import RunEngine
from ophyd import Signal
from pydantic import ValidationError

from uedsteer.controller.campaign import Campaign
from uedsteer.controller.config import (
    CampaignConfig,
    ConstraintSpec,
    ParameterSpec,
    format_validation_error,
)
from uedsteer.controller.errors import NoSafeCandidate
from uedsteer.controller.safe.optimizer import SafeOptimizer
from uedsteer.plans.campaign import campaign, setting_signals
from uedsteer.plans.preflight import check_config
from uedsteer.sim_devices.beamline import SimulatedBeamline
from uedsteer.sim_devices.response import ResponseParams

FLUENCE = CampaignConfig().parameter("fluence")


def _wavelength(**kwargs) -> ParameterSpec:
    base = {"name": "wavelength", "low": 500.0, "high": 1100.0, "max_step": 150.0}
    return ParameterSpec(**{**base, "safe_start": 800.0, **kwargs})


def _beamline() -> SimulatedBeamline:
    return SimulatedBeamline(ResponseParams(), seed=0)


# ------------------------------------------------------------------ devices (finding 12)
def test_a_search_box_past_a_device_limit_is_refused_before_the_run_opens():
    """300–480 nm on a pump that stops at 400 nm: before, the start (450 nm) passed the check,
    the run opened and a LimitError ended it shots later."""
    bl = _beamline()
    cfg = CampaignConfig(parameters=(FLUENCE, _wavelength(low=300.0, high=480.0, safe_start=450)))
    docs = []
    RE = RunEngine({})
    RE.subscribe(lambda name, doc: docs.append(name))
    with pytest.raises(ValueError) as err:
        RE(campaign(bl, None, Campaign(cfg)))
    msg = str(err.value)
    assert "\n" not in msg
    assert (
        "wavelength search box [300, 480] nm reaches below pump_wavelength's hard limit 400 nm "
        "(allowed 400 … 1600 nm)"
    ) in msg
    assert docs == [], "no run was opened"
    assert bl.pump.wavelength.get() == 800.0 and bl.pump.fluence.get() == 0.0, "nothing moved"


def test_every_problem_is_named_in_one_message():
    """A fixed charge past the gun's limit and a safe start past the pump's: one line each,
    with the value and the range the device allows."""
    cfg = CampaignConfig(
        parameters=(FLUENCE, _wavelength(low=300.0, safe_start=350.0)),
        fixed={"charge": 500.0, "delay": 10.0},
    )
    with pytest.raises(ValueError) as err:
        check_config(cfg, setting_signals(_beamline()))
    msg = str(err.value)
    assert "wavelength search box [300, 1100] nm reaches below pump_wavelength's" in msg
    assert "wavelength safe_start 350 nm lies below pump_wavelength's hard limit 400 nm" in msg
    assert "fixed charge 500 fC lies above gun_charge's hard limit 200 fC (allowed 1 … 200 fC)" in (
        msg
    )
    assert msg.count("; ") == 2 and "\n" not in msg


def test_configured_hard_limits_and_default_fixed_values_are_checked_too():
    bl = _beamline()
    signals = setting_signals(bl)
    check_config(CampaignConfig(), signals)  # the defaults fit the simulated beamline
    cfg = CampaignConfig(parameters=(FLUENCE, _wavelength(hard_high=1700.0)))
    with pytest.raises(ValueError, match="wavelength hard_high 1700 nm lies above"):
        check_config(cfg, signals)
    bl.gun.charge.set_limits(1.0, 10.0)  # the campaign's default charge is 20 fC
    with pytest.raises(ValueError, match=r"fixed charge 20 fC lies above gun_charge's hard"):
        check_config(CampaignConfig(), signals)


def test_signals_without_limits_decide_through_check_value():
    """Plain ophyd signals report limits (0, 0), i.e. none; a signal that refuses in
    check_value only is heard too."""

    class Refusing(Signal):
        def check_value(self, value, **kwargs):
            if value > 900:
                raise ValueError(f"{self.name}: {value} is out of the laser's tuning range")

    plain = {k: Signal(name=f"plain_{k}", value=1.0) for k in ("fluence", "charge", "delay")}
    plain["wavelength"] = Refusing(name="opa_wavelength", value=800.0)
    with pytest.raises(ValueError) as err:
        check_config(CampaignConfig(), plain)
    msg = str(err.value)
    assert "wavelength search box [500, 1100] nm: opa_wavelength refuses 1100 nm" in msg
    assert "out of the laser's tuning range" in msg and "plain_" not in msg
    narrow = CampaignConfig(parameters=(FLUENCE, _wavelength(high=900.0)))
    check_config(narrow, plain)


# ------------------------------------------------------------------ settings (finding 13)
def test_the_pump_settings_must_be_steered_or_fixed():
    """Only the fluence steered and the wavelength nowhere: before, a KeyError after the run
    had opened."""
    with pytest.raises(ValidationError) as err:
        CampaignConfig(parameters=(FLUENCE,))
    line = format_validation_error(err.value)
    assert "wavelength is neither steered nor fixed" in line
    assert "add it to parameters" in line and "fixed: {wavelength: 800}" in line
    with pytest.raises(ValidationError, match="fluence is neither steered nor fixed"):
        CampaignConfig(parameters=(_wavelength(),), fixed={"charge": 20.0})
    # fixed, it works; charge and delay not named anywhere keep their defaults
    cfg = CampaignConfig(parameters=(FLUENCE,), fixed={"wavelength": 800.0})
    assert cfg.fixed_values() == {"charge": 20.0, "delay": 10.0, "wavelength": 800.0}
    assert Campaign(cfg).start_settings() == {
        "charge": 20.0,
        "delay": 10.0,
        "wavelength": 800.0,
        "fluence": FLUENCE.safe_start,
    }
    check_config(cfg, setting_signals(_beamline()))


def _numeric_fields(model) -> list[str]:
    """The fields whose value is a number (or None)."""

    def base(tp):
        return typing.get_args(tp)[0] if typing.get_origin(tp) is typing.Annotated else tp

    def numeric(tp) -> bool:
        if typing.get_origin(tp) in (typing.Union, types.UnionType):
            members = [base(a) for a in typing.get_args(tp) if a is not type(None)]
            return bool(members) and all(m in (float, int) for m in members)
        return base(tp) in (float, int)

    return [name for name, f in model.model_fields.items() if numeric(f.annotation)]


PARAM = {"name": "fluence", "low": 0.2, "high": 12.0, "max_step": 1.0, "safe_start": 0.5}
CONSTRAINT = {"score": "line_distance", "bound": 3.0}
CASES = (
    [(ParameterSpec, PARAM, name) for name in _numeric_fields(ParameterSpec)]
    + [(ConstraintSpec, CONSTRAINT, name) for name in _numeric_fields(ConstraintSpec)]
    + [(CampaignConfig, {}, name) for name in _numeric_fields(CampaignConfig)]
)


def test_every_numeric_field_is_covered():
    names = {name for _, _, name in CASES}
    assert {"low", "high", "hard_low", "hard_high", "max_step", "safe_start", "bound"} <= names
    assert {"budget", "target", "damage_bound", "heating_max", "seed", "n_candidates"} <= names


@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan, True, False, "3"])
@pytest.mark.parametrize("model,base,name", CASES, ids=[c[2] for c in CASES])
def test_numbers_are_finite_numbers_not_booleans(model, base, name, bad):
    """``high: .inf``, ``target: .nan``, ``budget: true``: refused, naming the field."""
    with pytest.raises(ValidationError) as err:
        model(**{**base, name: bad})
    assert format_validation_error(err.value).startswith(f"{name}:")


@pytest.mark.parametrize("bad", [math.inf, math.nan, True])
def test_fixed_values_are_finite_numbers(bad):
    with pytest.raises(ValidationError, match="fixed.charge"):
        CampaignConfig(fixed={"charge": bad, "delay": 10.0})


def test_yaml_integers_and_numpy_numbers_still_work(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "budget: 12\nseed: 3\ntarget: 1\nconstraints: [{score: frame_quality, bound: 1, "
        "sense: min}]\nparameters:\n  - {name: fluence, low: 1, high: 12, max_step: 2, "
        "safe_start: 1}\nfixed: {wavelength: 800, charge: 20}\n"
    )
    cfg = CampaignConfig.from_yaml(path)
    assert cfg.budget == 12 and cfg.target == 1.0 and cfg.constraints[0].bound == 1.0
    assert isinstance(cfg.parameter("fluence").low, float)
    assert CampaignConfig(budget=np.int64(7), beta=np.float32(1.5)).budget == 7
    assert CampaignConfig(budget=7.0).budget == 7  # a whole float, e.g. from JSON metadata
    with pytest.raises(ValidationError, match="budget"):
        CampaignConfig(budget=7.5)
    # the CLI path: a config's dump validates again unchanged
    assert CampaignConfig.model_validate(cfg.model_dump()) == cfg


def test_a_bad_yaml_reads_as_one_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "budget: true\nparameters:\n  - {name: fluence, low: 0.2, high: .inf, max_step: 1, "
        "safe_start: 0.5}\n  - {name: wavelength, low: 900, high: 600, max_step: 100, "
        "safe_start: 800}\nbudgett: 3\n"
    )
    with pytest.raises(ValidationError) as err:
        CampaignConfig.from_yaml(path)
    line = format_validation_error(err.value)
    assert "\n" not in line
    assert "budget: expected a number, got the boolean True" in line
    assert "parameters.0.high: Input should be a finite number (got inf)" in line
    assert "parameters.1: wavelength: low=900.0 must be below high=600.0" in line
    assert "budgett: Extra inputs are not permitted (got 3)" in line
    assert "Value error" not in line and line.count("; ") == 3


# ------------------------------------------------------------------ no safe candidate (14)
def _scores(x: np.ndarray, recon_error: float) -> dict[str, np.ndarray]:
    n = len(x)
    return {
        "progress": np.full(n, 0.02),
        "damage_prob": 1 / (1 + np.exp(-(x[:, 0] - 6.0) / 0.3)),
        "line_distance": np.full(n, 0.3),
        "recon_error": np.full(n, recon_error),
        "heating": 0.002 * x[:, 0] ** 1.3,
    }


def test_no_safe_candidate_names_the_constraint_that_binds():
    """The README's old example ``{score: recon_error, bound: 0.03}``: recon_error reads ~8
    on normal frames, so the constraint excludes every candidate after the first shot."""
    cfg = CampaignConfig(
        n_candidates=64,
        constraints=[
            {"score": "line_distance", "bound": 3.0},
            {"score": "recon_error", "bound": 0.03},
        ],
    )
    x = np.array([[0.5, 800.0]])
    with pytest.raises(NoSafeCandidate) as err:
        SafeOptimizer(cfg).propose(x, _scores(x, 7.9), x[-1])
    msg = str(err.value)
    assert "constraint recon_error ≤ 0.03 excludes every candidate (lowest predicted 7.9" in msg
    assert "line_distance" not in msg, "a constraint that excludes nothing is not named"
    rules = err.value.rules  # candidates within reach each rule excluded
    assert rules["constraint line_distance ≤ 3"] == 0
    assert rules["constraint recon_error ≤ 0.03"] == int(msg.split()[2]) > 0


def test_no_safe_candidate_names_the_damage_bound_and_the_ramp_limit():
    """Stuck at a damaging setting: the damage bound excludes everything within reach, while
    safe settings exist beyond the ramp limit."""
    x = np.array([[0.5, 800], [1.0, 800], [1.5, 800], [2.0, 800], [9.0, 1100], [10.0, 1100]])
    scores = _scores(x, 1.0)
    with pytest.raises(NoSafeCandidate) as err:
        SafeOptimizer(CampaignConfig(n_candidates=64)).propose(x, scores, x[-1])
    msg = str(err.value)
    assert "damage bound δ = 0.2 (damage probability, β = 2) excludes every candidate" in msg
    assert "heating limit" in msg and "(heating_margin × lowest damaging heating)" in msg
    assert "beyond the ramp limit (max_step fluence 1.5, wavelength 150) of fluence 10" in msg
