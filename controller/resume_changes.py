"""What a resumed campaign may change in its recorded configuration, and nothing else.

A resumed campaign continues the *same* campaign: the recorded :class:`CampaignConfig`. A user
may change only what never loosens its safety:

* the stop conditions ``budget`` and ``target`` (either way: they decide when the campaign
  ends, never where it shoots beyond the safety checks);
* the process's ``threads`` (either way: a resumed campaign may run on another computer);
* stricter halting and safety: a lower ``damage_bound``, ``halt_damage_prob``,
  ``halt_consecutive``, ``hurt_spot_frames``, ``max_failures``, ``patience``,
  ``heating_margin``, ``heating_growth``, ``heating_floor`` or ``heating_max``, a higher
  ``beta``, and ``on_damage`` from ``"move"`` to ``"halt"``.

Everything else (search box, hard and ramp limits, safe start, fixed settings, objective,
constraints, optimizer settings, frames per point) is refused with a one-line
:class:`ValueError` naming the field, the recorded value, the asked value and why.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import ValidationError

from .config import CampaignConfig

Rule = Literal["any", "lower", "higher"]

CHANGEABLE: dict[str, Rule] = {
    "budget": "any",
    "target": "any",
    "damage_bound": "lower",
    "beta": "higher",
    "halt_damage_prob": "lower",
    "halt_consecutive": "lower",
    "hurt_spot_frames": "lower",
    "max_failures": "lower",
    "patience": "lower",
    "heating_margin": "lower",
    "heating_growth": "lower",
    "heating_floor": "lower",
    "heating_max": "lower",
    "on_damage": "lower",
    "threads": "any",
}
"""Fields a resumed campaign may change, and in which direction (``lower``: only to a
stricter value; for the optional limits None means "no limit", the loosest value)."""

_STRICTER_ON_DAMAGE = ("halt", "move")  # from strictest to loosest

_WHY_LOOSER = {
    "damage_bound": "a higher damage bound lets the optimizer propose riskier settings",
    "beta": "a smaller β narrows the safety margin of every proposal",
    "halt_damage_prob": "a higher threshold halts later on a damaged spot",
    "halt_consecutive": "more frames in a row halt later on a damaged spot",
    "hurt_spot_frames": "more frames (or none) halt later on a hurt spot",
    "max_failures": "more failed shots in a row keep firing at a faulty beamline",
    "patience": "a longer patience keeps exploring after the campaign stopped improving",
    "heating_margin": "a larger margin allows heating closer to what caused damage",
    "heating_growth": "a larger growth (or none) lets the search expand faster",
    "heating_floor": "a larger floor lets the search expand faster",
    "heating_max": "a higher cap (or none) allows hotter shots",
    "on_damage": "'move' keeps firing on fresh spots where 'halt' stops",
}

_WHY_FIXED = {
    "parameters": "the search box, hard limits, ramp limits and safe start bound every shot; "
    "the record was taken inside them",
    "fixed": "the recorded shots were taken at these settings; the models would mix two "
    "experiments",
    "objective": "the recorded objective values and the models belong to this objective",
    "constraints": "the constraints define the safe set the record was taken in",
    "frames_per_point": "the recorded frames and the reference average this many pulses",
}
_WHY_OPTIMIZER = "it changes how the optimizer proposes in the middle of a campaign"


def _why_refused(name: str) -> str:
    return _WHY_FIXED.get(name, _WHY_OPTIMIZER) + (
        "; a resumed campaign may change only " + ", ".join(CHANGEABLE)
    )


def _rank(name: str, value: Any) -> float:
    """A number that grows as ``value`` loosens the campaign (None: no limit)."""
    if name == "on_damage":
        return float(_STRICTER_ON_DAMAGE.index(value))
    if value is None:
        return float("inf")
    return float(value)


def _check_direction(name: str, recorded: Any, asked: Any) -> None:
    rule = CHANGEABLE[name]
    if rule == "any" or recorded == asked:
        return
    if rule == "higher":
        looser = _rank(name, asked) < _rank(name, recorded)
    else:
        looser = _rank(name, asked) > _rank(name, recorded)
    if looser:
        raise ValueError(
            f"resume cannot change {name}: recorded {recorded!r}, asked {asked!r}: a resumed "
            f"campaign may only make it stricter ({_WHY_LOOSER[name]})"
        )


def apply_changes(
    recorded: CampaignConfig, changes: Mapping[str, Any] | None
) -> tuple[CampaignConfig, dict[str, dict[str, Any]]]:
    """The configuration a resumed campaign continues with.

    Parameters
    ----------
    recorded : CampaignConfig
        The configuration recorded with the run being continued.
    changes : mapping, optional
        ``{field: value}``, e.g. ``{"budget": 60}``; only the fields of :data:`CHANGEABLE`,
        each in its allowed direction.

    Returns
    -------
    config : CampaignConfig
        ``recorded`` with the changes applied.
    applied : dict
        ``{field: {"recorded": old, "resumed": new}}`` for every field that changed (JSON
        values, for the new run's start document).

    Raises
    ------
    ValueError
        One line naming the field, the recorded value, the asked value and why, for an unknown
        field, a field a resumed campaign may not change, a change that loosens safety, or an
        invalid value.
    """
    changes = dict(changes or {})
    old = recorded.model_dump(mode="json")
    for name, asked in changes.items():
        if name not in CampaignConfig.model_fields:
            raise ValueError(
                f"resume cannot change {name}: CampaignConfig has no such field (asked "
                f"{asked!r}); a resumed campaign may change only {', '.join(CHANGEABLE)}"
            )
        if name not in CHANGEABLE:
            raise ValueError(
                f"resume cannot change {name}: recorded {old[name]!r}, asked {asked!r}: "
                f"{_why_refused(name)}"
            )
    try:
        config = CampaignConfig.model_validate({**old, **changes})
    except ValidationError as err:
        first = err.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else "config"
        raise ValueError(
            f"resume cannot change {name}: recorded {old.get(name)!r}, asked "
            f"{changes.get(name)!r}: {first['msg']}"
        ) from None
    new = config.model_dump(mode="json")
    applied: dict[str, dict[str, Any]] = {}
    for name in changes:
        _check_direction(name, old[name], new[name])
        if old[name] != new[name]:
            applied[name] = {"recorded": old[name], "resumed": new[name]}
    return config, applied


def _first_difference(recorded: Any, asked: Any, where: str) -> tuple[str, Any, Any]:
    """The path and values of the first difference between two JSON values."""
    if isinstance(recorded, dict) and isinstance(asked, dict):
        for key in [*recorded, *(k for k in asked if k not in recorded)]:
            if recorded.get(key) != asked.get(key):
                return _first_difference(recorded.get(key), asked.get(key), f"{where}.{key}")
    if isinstance(recorded, list) and isinstance(asked, list) and len(recorded) == len(asked):
        for i, (r, a) in enumerate(zip(recorded, asked, strict=True)):
            if r != a:
                label = r.get("name", i) if isinstance(r, dict) else i
                if isinstance(r, dict) and "score" in r:
                    label = r["score"]
                return _first_difference(r, a, f"{where}[{label}]")
    return where, recorded, asked


def config_changes(recorded: CampaignConfig, asked: CampaignConfig) -> dict[str, Any]:
    """The changes that turn ``recorded`` into ``asked`` (e.g. a YAML file given on resume).

    Parameters
    ----------
    recorded : CampaignConfig
        The configuration recorded with the run being continued.
    asked : CampaignConfig
        A full configuration the user gives on resume.

    Returns
    -------
    dict
        ``{field: value}`` of the differing fields, for :func:`apply_changes` (which checks
        the directions).

    Raises
    ------
    ValueError
        One line naming the first differing field a resumed campaign may not change (for a
        steered parameter or a constraint, the sub-field, e.g. ``parameters[wavelength].low``),
        with the recorded value, the asked value and why.
    """
    old, new = recorded.model_dump(mode="json"), asked.model_dump(mode="json")
    out: dict[str, Any] = {}
    for name in CampaignConfig.model_fields:
        if old[name] == new[name]:
            continue
        if name not in CHANGEABLE:
            where, r, a = _first_difference(old[name], new[name], name)
            raise ValueError(
                f"resume cannot change {where}: recorded {r!r}, asked {a!r}: {_why_refused(name)}"
            )
        out[name] = getattr(asked, name)
    return out
