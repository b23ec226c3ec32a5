"""``EpicsBeamline``: the beamline a plan drives, made of EPICS process variables.

The same devices as :class:`~uedsteer.sim_devices.beamline.SimulatedBeamline` (``pump``,
``gun``, ``delay``, ``stage``, ``det``, so a run's documents have the same keys:
``pump_fluence``, ``det_image``, …), but each signal is an ophyd ``EpicsSignal`` on a PV. It
satisfies :class:`uedsteer.plans.protocols.Beamline`. Against the simulated beamline's IOC
(``uedsteer ioc --prefix UED:``) it is ``EpicsBeamline("UED:")``; at a facility a small YAML
file maps each key of :mod:`uedsteer.sim_devices.epics_pvs` to the facility's PV
(:meth:`EpicsBeamline.from_yaml`)::

    prefix: "UED:"              # PVs not named below: the defaults under this prefix
    pvs:
      fluence: "LAS:PUMP:FLUENCE"
      shutter: "LAS:PUMP:SHUTTER"
    connection_timeout: 5       # s, for every PV to answer when the beamline is made
    trigger_timeout: 30         # s, for a frame
    write_timeout: 60           # s, for a setting, the shutter or the spot to report done

What the devices do:

* the settings and the spot are :class:`HardLimitSignal` (``EpicsSignal`` with
  ``limits=True`` and put completion): their drive limits are the PV's control limits, and a
  value outside them is refused with :class:`~uedsteer.sim_devices.devices.LimitError` before
  anything is sent ("pump_fluence 35 mJ/cm^2 is above the hard limit 20 mJ/cm^2");
* the shutter takes the PV's enum strings (``"open"``, ``"closed"``), other values refused;
* a move (a setting, the shutter, the spot) that the IOC does not report done within
  ``write_timeout`` fails its status: an IOC that dies while it holds a put never answers it,
  and without the limit the plan would wait for ever instead of recording a failed shot;
* the detector's ``trigger()`` puts 1 to the acquire PV and its status completes when the PV
  returns to 0 (busy-style), or fails with
  :class:`~uedsteer.sim_devices.contracts.DetectorFault` when it returns with an alarm or
  not within ``trigger_timeout``; ``image.get()`` is the frame as a 2-D array, shaped by the
  image-shape PV.

Channel Access is kept on this machine: the constructor calls
:func:`~uedsteer.sim_devices.epics_env.loopback_environment` and
:func:`~uedsteer.sim_devices.epics_env.bind_client_to_loopback` before the first PV is made. ophyd
uses pyepics where it is installed and caproto's threading client otherwise (``ophyd.cl.name``
says which); both read the variables when they search.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from ophyd import Device, DeviceStatus, EpicsSignal, EpicsSignalRO
from ophyd import FormattedComponent as FCpt
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .contracts import SETTINGS, DetectorFault
from .devices import LimitError
from .epics_env import bind_client_to_loopback, loopback_environment
from .epics_pvs import PV_KEYS, default_pv_names
from .roles import BeamlineRoles

__all__ = [
    "EpicsBeamline",
    "EpicsDetector",
    "EpicsPVMap",
    "FrameSignal",
    "HardLimitSignal",
    "ShutterSignal",
    "resolve_pv_names",
]


def resolve_pv_names(prefix: str = "", pv_map: Mapping[str, str] | None = None) -> dict[str, str]:
    """The PV of every key: ``pv_map``'s, else the default under ``prefix``.

    Parameters
    ----------
    prefix : str
        Builds the PVs ``pv_map`` does not name (:func:`~.epics_pvs.default_pv_names`).
    pv_map : mapping of str to str, optional
        Key of :data:`~.epics_pvs.PV_KEYS` → PV name.

    Returns
    -------
    dict
        Key → PV name for every key, in the order of ``PV_KEYS``.

    Raises
    ------
    ValueError
        One line: a key that is not a PV key (naming the allowed ones), a PV name that is not
        a non-empty string, or keys left without a PV and no prefix to build them from.
    """
    pv_map = dict(pv_map or {})
    unknown = [k for k in pv_map if k not in PV_KEYS]
    if unknown:
        raise ValueError(
            f"pv_map key {unknown[0]!r} is not a PV of the beamline; allowed: " + ", ".join(PV_KEYS)
        )
    for key, pv in pv_map.items():
        if not isinstance(pv, str) or not pv.strip() or any(c.isspace() for c in pv):
            raise ValueError(f"pv_map {key}: {pv!r} is not a PV name; give a string without spaces")
    missing = [k for k in PV_KEYS if k not in pv_map]
    if missing and not prefix:
        raise ValueError(
            f"prefix '' and no PV for {', '.join(missing)}: give a prefix to build them "
            "from, or name them in the PV map"
        )
    return {**default_pv_names(prefix), **pv_map}


WRITE_TIMEOUT = 60.0
"""Seconds a move may take to report done (put completion) by default: a wavelength change of
an optical parametric amplifier takes tens of seconds; the PV map's ``write_timeout`` sets
another."""


class _MoveTimeout:
    """Put completion with a time limit (``EpicsSignal``'s own default waits for ever)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("write_timeout", WRITE_TIMEOUT)
        super().__init__(*args, **kwargs)

    def set_write_timeout(self, seconds: float) -> None:
        """Seconds a move of this signal may take before its status fails."""
        self._write_timeout = float(seconds)


class HardLimitSignal(_MoveTimeout, EpicsSignal):
    """A setting on a PV whose control limits are the device's hard limits.

    ``EpicsSignal`` with ``limits=True`` and put completion (a move completes when the IOC
    has taken the value). :meth:`check_value` refuses, before anything is sent, a value that
    is not a finite number (not an integer, with ``integer=True``) or lies outside the limits,
    with a :class:`~uedsteer.sim_devices.devices.LimitError` naming the value, the unit and the
    limit.

    Parameters
    ----------
    read_pv : str
        The PV (read and written).
    integer : bool
        Only integers are allowed (a spot index).
    **kwargs
        Passed to ``ophyd.EpicsSignal`` (``limits`` and ``put_complete`` default to True).
    """

    def __init__(self, read_pv: str, *, integer: bool = False, **kwargs: Any) -> None:
        kwargs.setdefault("limits", True)
        kwargs.setdefault("put_complete", True)
        super().__init__(read_pv, **kwargs)
        self._integer = integer

    def check_value(self, value: Any) -> None:
        """Raise :class:`LimitError` unless ``value`` is a finite number within the limits."""
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise LimitError(f"{self.name}={value!r} is not a number") from None
        units = self.metadata.get("units") or ""
        unit = f" {units}" if units else ""
        if not math.isfinite(v):
            raise LimitError(f"{self.name}={value}{unit} is not finite")
        if self._integer and v != int(v):
            raise LimitError(f"{self.name}={value} must be an integer")
        low, high = self.limits
        if self.use_limits and low < high:
            if v < low:
                raise LimitError(
                    f"{self.name} {v:g}{unit} is below the hard limit {low:g}{unit} "
                    f"({self.pvname} allows {low:g} … {high:g}{unit})"
                )
            if v > high:
                raise LimitError(
                    f"{self.name} {v:g}{unit} is above the hard limit {high:g}{unit} "
                    f"({self.pvname} allows {low:g} … {high:g}{unit})"
                )

    def put(self, value: Any, *args: Any, **kwargs: Any) -> None:  # noqa: D102 - ophyd API
        if self._integer and not kwargs.get("force"):
            self.check_value(value)
            value = int(value)
        super().put(value, *args, **kwargs)


class ShutterSignal(_MoveTimeout, EpicsSignal):
    """The pump shutter on an enum PV, read and written as its strings (``"open"``,
    ``"closed"``); any other value is refused before anything is sent."""

    def __init__(self, read_pv: str, **kwargs: Any) -> None:
        kwargs.setdefault("string", True)
        kwargs.setdefault("put_complete", True)
        super().__init__(read_pv, **kwargs)

    def check_value(self, value: Any) -> None:
        """Raise ``ValueError`` unless ``value`` is one of the PV's enum strings."""
        allowed = tuple(self.enum_strs or ())
        if value not in allowed:
            names = " or ".join(repr(s) for s in allowed)
            raise ValueError(f"{self.name}={value!r} is not allowed; use {names}")


class FrameSignal(EpicsSignalRO):
    """The frame: a flattened waveform PV read as a 2-D float32 array.

    Its shape comes from the sibling ``image_shape`` signal of its device ((rows, columns)).
    """

    def _shape(self) -> tuple[int, int]:
        rows, cols = (int(n) for n in np.asarray(self.parent.image_shape.get()).ravel()[:2])
        return rows, cols

    def get(self, **kwargs: Any) -> np.ndarray:
        """The latest frame, shape (rows, columns), float32."""
        flat = np.asarray(super().get(**kwargs), dtype=np.float32)
        shape = self._shape()
        if flat.size != shape[0] * shape[1]:
            raise DetectorFault(
                f"{self.name}: {self.pvname} holds {flat.size} values, not {shape[0]} × "
                f"{shape[1]} ({self.parent.image_shape.pvname})"
            )
        return flat.reshape(shape)

    def describe(self) -> dict:  # noqa: D102 - ophyd API
        desc = super().describe()
        desc[self.name].update(shape=list(self._shape()), dtype="array", dtype_numpy="<f4")
        return desc


class _PVDevice(Device):
    """A device whose components' PVs come from a key → PV mapping (``self._pv``)."""

    def __init__(self, pv: Mapping[str, str], *, name: str, **kwargs: Any) -> None:
        self._pv = dict(pv)
        super().__init__("", name=name, **kwargs)


class EpicsPump(_PVDevice):
    """Optical pump: fluence (mJ/cm²), wavelength (nm), shutter."""

    fluence = FCpt(HardLimitSignal, "{self._pv[fluence]}", kind="hinted")
    wavelength = FCpt(HardLimitSignal, "{self._pv[wavelength]}", kind="hinted")
    shutter = FCpt(ShutterSignal, "{self._pv[shutter]}", kind="normal")


class EpicsGun(_PVDevice):
    """Electron source: bunch charge (fC)."""

    charge = FCpt(HardLimitSignal, "{self._pv[charge]}", kind="hinted")


class EpicsDelay(_PVDevice):
    """Pump–probe delay (ps)."""

    delay = FCpt(HardLimitSignal, "{self._pv[delay]}", kind="hinted")


class EpicsStage(_PVDevice):
    """Sample stage: spot index."""

    spot = FCpt(HardLimitSignal, "{self._pv[spot]}", integer=True, kind="hinted")


class EpicsDetector(_PVDevice):
    """Area detector on a busy-style acquire PV and an image waveform.

    ``trigger()`` puts 1 to ``acquire``; the status completes when ``acquire`` returns from 1
    to 0 (watched by a monitor subscribed when the device is made), and fails with
    :class:`~uedsteer.sim_devices.contracts.DetectorFault` when it returns with an alarm (the
    IOC made no frame), when the PV disconnects while the frame is taken (the IOC is gone:
    no need to wait out the timeout), or not within ``trigger_timeout`` seconds.

    Parameters
    ----------
    pv : mapping
        Key → PV name; uses ``acquire``, ``image`` and ``image_shape``.
    name : str
        Device name (the frame is recorded as ``<name>_image``).
    trigger_timeout : float
        Seconds a frame may take.
    """

    acquire = FCpt(EpicsSignal, "{self._pv[acquire]}", kind="omitted")
    image = FCpt(FrameSignal, "{self._pv[image]}", kind="normal")
    image_shape = FCpt(EpicsSignalRO, "{self._pv[image_shape]}", kind="config")

    def __init__(
        self,
        pv: Mapping[str, str],
        *,
        name: str,
        trigger_timeout: float = 30.0,
        labels=("detectors",),
        **kwargs: Any,
    ) -> None:
        super().__init__(pv, name=name, labels=set(labels), **kwargs)
        self.trigger_timeout = float(trigger_timeout)
        self._pending: DeviceStatus | None = None
        self._lock = threading.Lock()
        self._monitoring = threading.Event()
        self.acquire.subscribe(self._acquire_changed, run=False)
        self.acquire.subscribe(self._connection_changed, event_type="meta", run=False)

    def _connection_changed(self, connected: bool = True, **kwargs: Any) -> None:
        if connected:
            return
        with self._lock:
            status, self._pending = self._pending, None
        if status is not None and not status.done:
            status.set_exception(
                DetectorFault(f"{self.name}: {self.acquire.pvname} disconnected: no frame")
            )

    def _acquire_changed(self, value=None, old_value=None, severity=0, **kwargs) -> None:
        self._monitoring.set()
        if not (old_value == 1 and value == 0):
            return
        with self._lock:
            status, self._pending = self._pending, None
        if status is None or status.done:
            return
        if severity:
            status.set_exception(
                DetectorFault(f"{self.name}: {self.acquire.pvname} ended in alarm: no frame")
            )
        else:
            status.set_finished()

    def wait_for_monitor(self, timeout: float) -> None:
        """Wait until the acquire PV's monitor has delivered its first value (so that no
        1 → 0 edge is missed).

        Raises
        ------
        TimeoutError
            One line naming the PV.
        """
        if not self._monitoring.wait(timeout):
            raise TimeoutError(
                f"{self.name}: no monitor update from {self.acquire.pvname} within {timeout:g} s"
            )

    def trigger(self) -> DeviceStatus:  # noqa: D102 - ophyd API
        status = DeviceStatus(self, timeout=self.trigger_timeout)
        with self._lock:
            if self._pending is not None and not self._pending.done:
                status.set_exception(
                    DetectorFault(f"{self.name}: triggered while a frame is being taken")
                )
                return status
            self._pending = status
        try:
            self.acquire.put(1)
        except Exception as err:  # the IOC is gone, the PV refuses: a detector fault
            with self._lock:
                self._pending = None
            status.set_exception(DetectorFault(f"{self.name}: {self.acquire.pvname}: {err}"))
        return status


class EpicsPVMap(BaseModel):
    """The YAML file that points :class:`EpicsBeamline` at a beamline's PVs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prefix: str = Field(
        "",
        description="Prefix of the default PV names (e.g. 'UED:'); used for every key "
        "that pvs does not name.",
    )
    pvs: dict[str, str] = Field(
        default_factory=dict,
        description="PV name by key (fluence, wavelength, charge, delay, shutter, spot, "
        "acquire, image, image_shape).",
    )
    connection_timeout: float = Field(
        5.0, gt=0, description="Seconds for every PV to answer when the beamline is made."
    )
    trigger_timeout: float = Field(30.0, gt=0, description="Seconds a frame may take.")
    write_timeout: float = Field(
        WRITE_TIMEOUT,
        gt=0,
        description="Seconds a setting, the shutter or the spot may take to report its move "
        "done; after it the move fails (a failed shot, not a wait without end).",
    )

    @field_validator("pvs")
    @classmethod
    def _known_keys(cls, pvs: dict[str, str]) -> dict[str, str]:
        unknown = [k for k in pvs if k not in PV_KEYS]
        if unknown:
            raise ValueError(f"{unknown[0]!r} is not a PV key; allowed: {', '.join(PV_KEYS)}")
        return pvs


def _one_line(err: ValidationError) -> str:
    """A pydantic error as one line per problem, joined: ``key: what is wrong (allowed)``."""
    allowed = ", ".join(EpicsPVMap.model_fields)
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "file"
        if e["type"] == "extra_forbidden":
            parts.append(f"{loc} is not a key of the PV map; allowed: {allowed}")
        elif e["type"] == "model_type":
            parts.append(f"the file holds {type(e['input']).__name__}, not a mapping of {allowed}")
        else:
            msg = e["msg"].removeprefix("Value error, ")
            parts.append(f"{loc}: {msg} (got {e['input']!r})")
    return "; ".join(parts)


class EpicsBeamline(BeamlineRoles):
    """A beamline of EPICS PVs that the plans drive (module docstring: the devices).

    Parameters
    ----------
    prefix : str
        Prefix of the default PV names (``"UED:"`` for ``UED:Pump:Fluence``).
    pv_map : mapping of str to str, optional
        PV names by key (:data:`~uedsteer.sim_devices.epics_pvs.PV_KEYS`) that replace the
        defaults.
    connection_timeout : float
        Seconds for every PV to answer; the constructor waits for them.
    trigger_timeout : float
        Seconds a frame may take.
    write_timeout : float
        Seconds a setting, the shutter or the spot may take to report its move done; the
        move's status fails after it (a failed shot, not a wait without end).

    Attributes
    ----------
    pump, gun, delay, stage, detector
        The ophyd devices (names ``pump``, ``gun``, ``delay``, ``stage``, ``det``).
    settings, shutter, spot, motors, devices
        The beamline contract over them (:class:`~uedsteer.sim_devices.roles.BeamlineRoles`).
    pv_names : dict
        Key → PV name in use.

    Raises
    ------
    ValueError
        One line: a bad PV map (:func:`resolve_pv_names`).
    TimeoutError
        One line naming the PVs that did not answer within ``connection_timeout``.
    """

    def __init__(
        self,
        prefix: str = "",
        pv_map: Mapping[str, str] | None = None,
        *,
        connection_timeout: float = 5.0,
        trigger_timeout: float = 30.0,
        write_timeout: float = WRITE_TIMEOUT,
    ) -> None:
        loopback_environment()  # before the first PV: no search leaves this machine
        bind_client_to_loopback()  # and nothing from another machine reaches the client
        self.pv_names = resolve_pv_names(prefix, pv_map)
        pv = self.pv_names
        self.pump = EpicsPump(pv, name="pump", labels={"motors", "pump"})
        self.gun = EpicsGun(pv, name="gun", labels={"motors", "gun"})
        self.delay = EpicsDelay(pv, name="delay", labels={"motors", "delay"})
        self.stage = EpicsStage(pv, name="stage", labels={"motors", "stage"})
        self.detector = EpicsDetector(pv, name="det", trigger_timeout=trigger_timeout)
        for signal in (*self.settings.values(), self.shutter, self.spot):
            signal.set_write_timeout(write_timeout)
        self._connect(float(connection_timeout))

    @classmethod
    def from_yaml(cls, path: str | Path) -> EpicsBeamline:
        """The beamline a YAML PV map describes (module docstring: the file's keys).

        Parameters
        ----------
        path : str or Path
            The YAML file.

        Raises
        ------
        ValueError
            One line naming the file, the key and what is allowed; or the YAML syntax error.
        FileNotFoundError
            No such file.
        TimeoutError
            The PVs did not answer (see :class:`EpicsBeamline`).
        """
        import yaml

        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            why = " ".join(str(err).split())
            raise ValueError(f"PV map {str(path)!r}: not YAML: {why}") from None
        try:
            cfg = EpicsPVMap.model_validate({} if data is None else data)
            names = resolve_pv_names(cfg.prefix, cfg.pvs)
        except ValidationError as err:
            raise ValueError(f"PV map {str(path)!r}: {_one_line(err)}") from None
        except ValueError as err:
            raise ValueError(f"PV map {str(path)!r}: {err}") from None
        return cls(
            cfg.prefix,
            {k: v for k, v in names.items() if k in cfg.pvs},
            connection_timeout=cfg.connection_timeout,
            trigger_timeout=cfg.trigger_timeout,
            write_timeout=cfg.write_timeout,
        )

    def _connect(self, timeout: float) -> None:
        signals = {s.item.pvname: s.item for d in self.devices for s in d.walk_signals()}
        deadline = time.monotonic() + timeout
        try:
            for sig in signals.values():
                sig.wait_for_connection(timeout=max(0.01, deadline - time.monotonic()))
            self.detector.wait_for_monitor(max(0.01, deadline - time.monotonic()))
        except TimeoutError:
            silent = [pv for pv in self.pv_names.values() if not signals[pv].connected]
            raise TimeoutError(
                f"EpicsBeamline: no answer within {timeout:g} s from "
                f"{', '.join(silent) or self.detector.acquire.pvname}; is the IOC running "
                "(uedsteer ioc --prefix P) on this machine's Channel Access port?"
            ) from None

    def units(self) -> dict[str, str]:
        """Each setting's units as its PV reports them (``EGU``), by setting name."""
        return {name: sig.metadata.get("units") or "" for name, sig in self.settings.items()}

    def check_units(self) -> None:
        """Refuse PVs whose units differ from the settings registry's.

        Raises
        ------
        ValueError
            One line naming each setting, its PV, the PV's units and the expected ones.
        """
        wrong = [
            f"{name} ({self.settings[name].pvname}) is in {got or 'no units'!r}, expected "
            f"{SETTINGS[name].device_units!r}"
            for name, got in self.units().items()
            if got != SETTINGS[name].device_units
        ]
        if wrong:
            raise ValueError("EpicsBeamline units: " + "; ".join(wrong))
