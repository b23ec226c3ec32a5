"""The beamline a plan drives, as a runtime-checkable Protocol.

Every plan in :mod:`uedsteer.plans` takes one ``beamline`` object and reaches its devices
through five named accessors, never through attribute paths of one facility's devices or
positions in a list:

``settings``
    A mapping from every setting name of the registry
    (:data:`uedsteer.sim_devices.contracts.SETTINGS`: ``fluence``, ``wavelength``, ``charge``,
    ``delay``) to the bluesky ``Movable`` that moves it (an ophyd ``Signal``, ``EpicsSignal`` or
    ``EpicsMotor``). Its ``check_value`` (where it has one) and its ``limits`` (or
    ``low_limit`` / ``high_limit``) are asked before a run opens.
``shutter``
    The pump shutter, a ``Movable`` taking ``"open"`` and ``"closed"``.
``spot``
    The sample spot, a ``Movable`` taking an integer index.
``detector``
    A ``Readable`` and ``Triggerable`` device with an ``image`` signal whose ``get()`` is the
    frame; a ``frames_per_point`` component, where it has one, averages frames per trigger.
``motors``
    The devices read with every frame besides the detector (their readings go into each event
    and their names into the start document's ``motors``).

Any object with these attributes satisfies :class:`Beamline` structurally (no base class to
inherit): :class:`~uedsteer.sim_devices.beamline.SimulatedBeamline`, a namespace of plain ophyd
devices, or a facility's EPICS devices. :func:`check_beamline` says in one line what a given
object lacks; the plans call it before a run opens.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from bluesky.protocols import Movable, Readable, Triggerable

from uedsteer.sim_devices.contracts import SETTING_NAMES, SETTINGS

__all__ = [
    "Beamline",
    "BeamlineMismatch",
    "FrameDetector",
    "check_beamline",
    "event_devices",
    "setting_signals",
]


@runtime_checkable
class FrameDetector(Readable, Triggerable, Protocol):
    """An area detector: triggered, read, and its frame in ``image.get()``."""

    @property
    def image(self) -> Any:
        """The signal holding the latest frame (``get()`` returns a 2-D array)."""


@runtime_checkable
class Beamline(Protocol):
    """The devices a plan drives (module docstring: what each accessor must hold)."""

    @property
    def settings(self) -> Mapping[str, Movable]:
        """The ``Movable`` behind each setting name of the registry."""

    @property
    def shutter(self) -> Movable:
        """The pump shutter (``"open"`` / ``"closed"``)."""

    @property
    def spot(self) -> Movable:
        """The sample spot index."""

    @property
    def detector(self) -> FrameDetector:
        """The area detector."""

    @property
    def motors(self) -> Sequence[Readable]:
        """The devices read with every frame besides the detector."""


ACCESSORS = ("settings", "shutter", "spot", "detector", "motors")
"""The attributes of :class:`Beamline`, in the order its docstring lists them."""


class BeamlineMismatch(ValueError):
    """A beamline object does not satisfy :class:`Beamline`; the message names what it lacks."""


def _kind(obj: Any) -> str:
    return type(obj).__name__


def _problems(beamline: Any) -> list[str]:
    """What ``beamline`` lacks to satisfy :class:`Beamline` (empty: nothing)."""
    missing = [a for a in ACCESSORS if not hasattr(beamline, a)]
    if missing:
        return [f"no {', '.join(missing)}"]
    problems = []
    settings = beamline.settings
    if not isinstance(settings, Mapping):
        return [f"settings is a {_kind(settings)}, not a mapping of setting name to Movable"]
    absent = [n for n in SETTING_NAMES if n not in settings]
    if absent:
        named = ", ".join(f"{n} ({SETTINGS[n].meaning}, {SETTINGS[n].unit})" for n in absent)
        problems.append(f"no signal for setting {named} in settings")
    movables = {f"settings[{n!r}]": settings[n] for n in SETTING_NAMES if n in settings}
    movables.update(shutter=beamline.shutter, spot=beamline.spot)
    problems += [
        f"{k} is a {_kind(v)}, not a Movable (nothing to set)"
        for k, v in movables.items()
        if not isinstance(v, Movable)
    ]
    det = beamline.detector
    if not isinstance(det, FrameDetector):
        problems.append(
            f"detector is a {_kind(det)}, not a triggerable, readable device with an image"
        )
    if isinstance(beamline.motors, str | bytes) or not isinstance(beamline.motors, Sequence):
        problems.append(f"motors is a {_kind(beamline.motors)}, not a sequence of devices")
    else:
        problems += [
            f"motors[{i}] is a {_kind(m)}, not a readable device"
            for i, m in enumerate(beamline.motors)
            if not isinstance(m, Readable)
        ]
    return problems


def check_beamline(beamline: Any) -> None:
    """Refuse an object that does not satisfy :class:`Beamline`, before anything moves.

    Parameters
    ----------
    beamline : object
        The beamline a plan was given.

    Raises
    ------
    BeamlineMismatch
        A ``ValueError`` in one line naming everything the object lacks, e.g. ``beamline
        SimpleNamespace does not satisfy uedsteer.plans.protocols.Beamline: no signal for
        setting charge (electron bunch charge, fC) in settings``.
    """
    problems = _problems(beamline)
    if problems:
        raise BeamlineMismatch(
            f"beamline {_kind(beamline)} does not satisfy uedsteer.plans.protocols.Beamline: "
            + "; ".join(problems)
        )


def setting_signals(beamline: Beamline) -> dict[str, Movable]:
    """The ``Movable`` behind each setting, in the registry's order (``SETTING_NAMES``)."""
    return {name: beamline.settings[name] for name in SETTING_NAMES}


def event_devices(beamline: Beamline) -> list[Readable]:
    """What a plan reads with every frame: the detector, then the motors."""
    return [beamline.detector, *beamline.motors]
