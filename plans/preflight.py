"""Pre-run checks: does a campaign configuration fit the beamline's devices?

A campaign moves every setting it steers anywhere inside its search box and holds the others
at their fixed values. A device refuses a setpoint beyond its hard limit only when the plan
moves it, which for a search box that reaches past a limit happens shots into the run, with the
run open and nothing summarised. :func:`check_config` asks the devices about every value the
configuration can send them before the run opens and before anything moves.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from uedsteer.controller.config import CampaignConfig
from uedsteer.sim_devices.contracts import SETTING_UNITS

__all__ = ["check_config"]


def check_config(config: CampaignConfig, signals: Mapping[str, Any]) -> None:
    """Refuse a configuration that would send a device a value beyond its limits.

    Checked for every steered parameter: both ends of the search box ``[low, high]``, the
    configured hard limits ``hard_low`` / ``hard_high`` (where given) and ``safe_start``; for
    every held setting (:meth:`CampaignConfig.fixed_values`: ``fixed`` plus the default charge
    and delay) its value. A value is refused when the signal's ``check_value`` raises
    (``LimitError`` or another ``ValueError``) or when it lies outside the signal's
    ``limits`` (or ``low_limit`` / ``high_limit``); limits with low ≥ high, such as a plain
    ophyd ``Signal``'s ``(0, 0)``, mean none. Nothing is moved.

    Parameters
    ----------
    config : CampaignConfig
        The campaign's configuration.
    signals : mapping of str to ophyd signal
        The settable signal behind each setting name, as
        :func:`uedsteer.plans.protocols.setting_signals` returns it.

    Raises
    ------
    ValueError
        One line naming every refused value: the setting, the value (or search box) in the
        setting's units, the device signal and the range it allows, e.g. ``wavelength search
        box [300, 480] nm reaches below pump_wavelength's hard limit 400 nm (allowed 400 … 1600
        nm)``; several problems are joined with ``"; "``.
    """
    problems: list[str] = []
    for p in config.parameters:
        signal = signals.get(p.name)
        if signal is None:
            problems.append(f"{p.name} is steered but the beamline has no signal to move it")
            continue
        problems += _box_problems(p.name, p.low, p.high, signal)
        for label, value in (("hard_low", p.hard_low), ("hard_high", p.hard_high)):
            if value is not None:
                problems += _value_problems(f"{p.name} {label}", p.name, value, signal)
        problems += _value_problems(f"{p.name} safe_start", p.name, p.safe_start, signal)
    for name, value in config.fixed_values().items():
        signal = signals.get(name)
        if signal is None:
            problems.append(f"fixed {name} has no signal on the beamline to hold it")
            continue
        problems += _value_problems(f"fixed {name}", name, value, signal)
    if problems:
        raise ValueError("campaign configuration does not fit the devices: " + "; ".join(problems))


def _limits(signal: Any) -> tuple[float, float] | None:
    """The signal's (low, high) limits, or None where it exposes none."""
    try:
        low, high = (float(v) for v in signal.limits)
    except Exception:  # noqa: BLE001 - no (readable) limits property: try the two halves
        try:
            low, high = float(signal.low_limit), float(signal.high_limit)
        except Exception:  # noqa: BLE001 - no limits at all: check_value alone decides
            return None
    if not low < high:  # ophyd's convention for "no limits": (0, 0)
        return None
    return low, high


def _refusal(signal: Any, value: float) -> str | None:
    """The device's own reason for refusing ``value`` (``check_value``), or None."""
    try:
        signal.check_value(value)
    except ValueError as err:  # ophyd's LimitError is a ValueError
        return " ".join(str(err).split()) or type(err).__name__
    return None


def _range_text(limits: tuple[float, float] | None, unit: str) -> str:
    """``(allowed 400 … 1600 nm)``, or the half that is finite; empty without limits."""
    if limits is None:
        return ""
    low, high = limits
    if math.isfinite(low) and math.isfinite(high):
        return f" (allowed {low:g} … {high:g}{unit})"
    if math.isfinite(low):
        return f" (allowed ≥ {low:g}{unit})"
    if math.isfinite(high):
        return f" (allowed ≤ {high:g}{unit})"
    return ""


def _past_limit(value: float, signal: Any, limits, unit: str) -> str | None:
    """``"below pump_wavelength's hard limit 400 nm"`` (or above) where ``value`` lies
    outside ``limits``, else None."""
    if limits is None or limits[0] <= value <= limits[1]:
        return None
    side, edge = ("below", limits[0]) if value < limits[0] else ("above", limits[1])
    return f"{side} {signal.name}'s hard limit {edge:g}{unit}"


def _value_problems(label: str, setting: str, value: float, signal: Any) -> list[str]:
    """The problem with one value sent to ``signal`` (a list of zero or one message)."""
    unit = _unit(setting)
    limits = _limits(signal)
    allowed = _range_text(limits, unit)
    past = _past_limit(value, signal, limits, unit)
    if past is not None:
        return [f"{label} {value:g}{unit} lies {past}{allowed}"]
    reason = _refusal(signal, value)
    if reason is not None:
        return [f"{label} {value:g}{unit} is refused by {signal.name}: {reason}{allowed}"]
    return []


def _box_problems(setting: str, low: float, high: float, signal: Any) -> list[str]:
    """The problem with a search box ``[low, high]`` (a list of zero or one message)."""
    unit = _unit(setting)
    limits = _limits(signal)
    box = f"{setting} search box [{low:g}, {high:g}]{unit}"
    past = [w for w in (_past_limit(v, signal, limits, unit) for v in (low, high)) if w]
    if past:
        return [f"{box} reaches {' and '.join(past)}{_range_text(limits, unit)}"]
    for value in (low, high):
        reason = _refusal(signal, value)
        if reason is not None:
            return [f"{box}: {signal.name} refuses {value:g}{unit} ({reason})"]
    return []


def _unit(setting: str) -> str:
    """`` nm`` etc.: the setting's unit with a leading space, or empty."""
    unit = SETTING_UNITS.get(setting, "")
    return f" {unit}" if unit else ""
