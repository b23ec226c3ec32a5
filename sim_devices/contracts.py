"""The contract between the beamline's devices and everything above them: the settings a
campaign moves, and the fault a detector reports.

This module is the bottom of the dependency graph: it imports nothing from uedsteer, and
nothing from ophyd, numpy or the physics, so the controller, the plans and the simulated
devices all take the settings' names and units from here, and a plan that drives a real
beamline catches :class:`DetectorFault` without importing the simulator.

Adding a setting is one :class:`Setting` in :data:`SETTINGS`; a beamline then maps its name to
the device signal that moves it (:class:`uedsteer.plans.protocols.Beamline`). See
``docs/howto/add-a-device.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

__all__ = [
    "SETTINGS",
    "SETTING_NAMES",
    "SETTING_UNITS",
    "DetectorFault",
    "Setting",
    "setting",
]

ACTS_ON = ("sample", "probe")
"""What a setting changes: the pulse the sample takes from the pump, or only how the probe
sees the sample."""


@dataclass(frozen=True)
class Setting:
    """One beamline setting a campaign moves.

    Attributes
    ----------
    name : str
        The name used everywhere: configuration, events, the record, messages.
    unit : str
        Unit as people read it in messages and tables (``mJ/cm²``).
    device_units : str
        The same unit in ASCII, as a device reports it in its description (EPICS ``EGU``).
    acts_on : {"sample", "probe"}
        ``"sample"``: the setting changes the pulse the sample takes from the pump (its
        energy, its wavelength). ``"probe"``: the sample takes the same pulse whatever its
        value; it changes only how the electron probe sees the sample (bunch charge: counts,
        noise and blur; delay: when after the pump the probe looks).
    meaning : str
        What it is, for tables and error messages (``pump fluence``).
    """

    name: str
    unit: str
    device_units: str
    acts_on: Literal["sample", "probe"]
    meaning: str

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"setting name {self.name!r} must be a Python identifier")
        if self.acts_on not in ACTS_ON:
            raise ValueError(
                f"setting {self.name!r}: acts_on={self.acts_on!r} is not one of {ACTS_ON}"
            )
        if not self.device_units.isascii():
            raise ValueError(
                f"setting {self.name!r}: device_units={self.device_units!r} must be ASCII"
            )


SETTINGS: Mapping[str, Setting] = MappingProxyType(
    {
        s.name: s
        for s in (
            Setting("fluence", "mJ/cm²", "mJ/cm^2", "sample", "incident pump fluence"),
            Setting("wavelength", "nm", "nm", "sample", "pump wavelength"),
            Setting("charge", "fC", "fC", "probe", "electron bunch charge"),
            Setting("delay", "ps", "ps", "probe", "pump–probe delay"),
        )
    }
)
"""Every setting a campaign moves, by name, in the order they are recorded."""

SETTING_NAMES: tuple[str, ...] = tuple(SETTINGS)
"""The settings' names in order: ``("fluence", "wavelength", "charge", "delay")``."""

SETTING_UNITS: Mapping[str, str] = MappingProxyType({s.name: s.unit for s in SETTINGS.values()})
"""Each setting's unit as people read it (``{"fluence": "mJ/cm²", …}``)."""


def setting(name: str) -> Setting:
    """The :class:`Setting` called ``name``.

    Raises
    ------
    ValueError
        One line naming the unknown name and the known ones.
    """
    try:
        return SETTINGS[name]
    except KeyError:
        raise ValueError(f"{name!r} is not a setting; known: {', '.join(SETTING_NAMES)}") from None


class DetectorFault(RuntimeError):
    """The detector failed to deliver a frame.

    Raised by a detector (the simulated one sets it on its trigger status) and by the plans,
    which name the detector and the cause when a trigger fails.
    """
