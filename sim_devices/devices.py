"""Ophyd devices of a (simulated) MeV-UED beamline.

The simulated beamline's devices and components (a real beamline need not copy these names:
the plans reach devices only through :class:`uedsteer.plans.protocols.Beamline`, which
``SimulatedBeamline`` maps onto them):

=============  ==============================  ===========================  =================
device         component                       meaning                      default hard limit
=============  ==============================  ===========================  =================
``pump``       ``fluence``                     incident fluence, mJ/cm²     0 … 20
``pump``       ``wavelength``                  pump wavelength, nm          400 … 1600
``pump``       ``shutter``                     ``"open"`` / ``"closed"``
``gun``        ``charge``                      electron bunch charge, fC    1 … 200
``delay``      ``delay``                       pump–probe delay, ps         −10 … 1000
``stage``      ``spot``                        sample spot index            0 … n_spots − 1
``det``        ``image``                       frame, 261 × 261 float32
``det``        ``n_nan``, ``n_saturated``,     frame quality flags
               ``quality``
``det``        ``frames_per_point``            frames averaged per trigger
=============  ==============================  ===========================  =================

Every settable signal checks its hard limit *before* anything moves and raises
:class:`LimitError` naming the value and the limit. The settings' units come from
:mod:`uedsteer.sim_devices.contracts`, as does :class:`DetectorFault` (re-exported here).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
from ophyd import Component as Cpt
from ophyd import Device, DeviceStatus, Signal
from ophyd.utils.errors import LimitError as _OphydLimitError

from .contracts import SETTINGS, DetectorFault

__all__ = [
    "DetectorFault",
    "DelayStage",
    "ElectronGun",
    "LimitError",
    "LimitedSignal",
    "PumpLaser",
    "SampleStage",
    "ShutterSignal",
    "UEDDetector",
]

SHUTTER_STATES = ("open", "closed")
FAULT_KINDS = ("raise", "timeout", "nan", "saturate")
_EGU = {name: s.device_units for name, s in SETTINGS.items()}


class LimitError(_OphydLimitError):
    """A setpoint outside a device's hard limit (a ``ValueError``)."""


class LimitedSignal(Signal):
    """A soft signal with hard limits, checked synchronously before the value changes.

    Parameters
    ----------
    limits : (float, float)
        Inclusive hard limits.
    units : str
        Engineering units, reported by ``describe()``.
    integer : bool
        Only integer values are allowed (e.g. a spot index).
    """

    def __init__(
        self,
        *args,
        limits: tuple[float, float] = (-np.inf, np.inf),
        units: str = "",
        integer: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._limits = (float(limits[0]), float(limits[1]))
        self._units = units
        self._integer = integer

    @property
    def limits(self) -> tuple[float, float]:
        """Inclusive hard limits (low, high)."""
        return self._limits

    def set_limits(self, low: float, high: float) -> None:
        """Change the hard limits (``ValueError`` if low > high)."""
        if not low <= high:
            raise ValueError(f"{self.name}: limits ({low}, {high}) need low <= high")
        self._limits = (float(low), float(high))

    def check_value(self, value) -> None:
        """Raise :class:`LimitError` if ``value`` is not a finite number within the limits."""
        lo, hi = self._limits
        unit = f" {self._units}" if self._units else ""
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise LimitError(f"{self.name}={value!r} is not a number") from None
        if not np.isfinite(v):
            raise LimitError(f"{self.name}={value}{unit} is not finite")
        if self._integer and v != int(v):
            raise LimitError(f"{self.name}={value} must be an integer")
        if v < lo:
            raise LimitError(f"{self.name} {v:g}{unit} is below the hard limit {lo:g}{unit}")
        if v > hi:
            raise LimitError(f"{self.name} {v:g}{unit} is above the hard limit {hi:g}{unit}")

    def set(self, value, **kwargs):  # noqa: D102 - ophyd API
        self.check_value(value)  # raise here, before a thread is started or anything moves
        if self._integer:
            value = int(value)
        return super().set(value, **kwargs)

    def describe(self) -> dict:  # noqa: D102 - ophyd API
        desc = super().describe()
        desc[self.name].update(
            units=self._units, lower_ctrl_limit=self._limits[0], upper_ctrl_limit=self._limits[1]
        )
        return desc


class ShutterSignal(Signal):
    """Pump shutter: ``"open"`` or ``"closed"``."""

    def check_value(self, value) -> None:  # noqa: D102 - ophyd API
        if value not in SHUTTER_STATES:
            raise ValueError(f"{self.name}={value!r} is not allowed; use 'open' or 'closed'")

    def set(self, value, **kwargs):  # noqa: D102 - ophyd API
        self.check_value(value)
        return super().set(value, **kwargs)


class PumpLaser(Device):
    """Optical pump: fluence (mJ/cm²), wavelength (nm), shutter."""

    fluence = Cpt(
        LimitedSignal, value=0.0, limits=(0.0, 20.0), units=_EGU["fluence"], kind="hinted"
    )
    wavelength = Cpt(
        LimitedSignal, value=800.0, limits=(400.0, 1600.0), units=_EGU["wavelength"], kind="hinted"
    )
    shutter = Cpt(ShutterSignal, value="closed", kind="normal")

    def __init__(self, *args, labels=("motors", "pump"), **kwargs) -> None:
        super().__init__(*args, labels=set(labels), **kwargs)


class ElectronGun(Device):
    """Electron source: bunch charge (fC)."""

    charge = Cpt(
        LimitedSignal, value=10.0, limits=(1.0, 200.0), units=_EGU["charge"], kind="hinted"
    )

    def __init__(self, *args, labels=("motors", "gun"), **kwargs) -> None:
        super().__init__(*args, labels=set(labels), **kwargs)


class DelayStage(Device):
    """Pump–probe delay (ps)."""

    delay = Cpt(
        LimitedSignal, value=10.0, limits=(-10.0, 1000.0), units=_EGU["delay"], kind="hinted"
    )

    def __init__(self, *args, labels=("motors", "delay"), **kwargs) -> None:
        super().__init__(*args, labels=set(labels), **kwargs)


class SampleStage(Device):
    """Sample stage over a finite grid of spots (index 0 … n_spots − 1)."""

    spot = Cpt(LimitedSignal, value=0, limits=(0, 99), integer=True, kind="hinted")

    def __init__(self, *args, n_spots: int = 100, labels=("motors", "stage"), **kwargs) -> None:
        super().__init__(*args, labels=set(labels), **kwargs)
        if n_spots < 1:
            raise ValueError(f"n_spots={n_spots} must be >= 1")
        self.spot.set_limits(0, n_spots - 1)


class ArraySignal(Signal):
    """A soft signal carrying a 2-D float32 frame, described with shape and numpy dtype."""

    def __init__(self, *args, shape: tuple[int, int] = (261, 261), **kwargs) -> None:
        kwargs.setdefault("value", np.zeros(shape, dtype=np.float32))
        super().__init__(*args, **kwargs)
        self._shape = shape

    def describe(self) -> dict:  # noqa: D102 - ophyd API
        return {
            self.name: {
                "source": f"SIM:{self.name}",
                "dtype": "array",
                "dtype_numpy": "<f4",
                "shape": list(self._shape),
                "units": "counts",
            }
        }


class UEDDetector(Device):
    """Area detector. On trigger it asks its frame source for ``frames_per_point`` frames,
    averages them and publishes the result with quality flags.

    Parameters
    ----------
    source : callable
        ``source() -> np.ndarray`` delivers one raw frame (the simulated beamline wires this to
        the sample and the physics backend; a real detector reads its IOC).
    shape : (int, int)
        Frame shape.
    saturation : float
        Pixel value at which the detector saturates (counts).
    trigger_timeout : float
        Seconds before a trigger that never completes fails.
    """

    image = Cpt(ArraySignal, kind="normal")
    n_nan = Cpt(Signal, value=0, kind="normal")
    n_saturated = Cpt(Signal, value=0, kind="normal")
    quality = Cpt(Signal, value="ok", kind="normal")
    frames_per_point = Cpt(LimitedSignal, value=1, limits=(1, 1000), integer=True, kind="config")

    def __init__(
        self,
        *args,
        source: Callable[[], np.ndarray] | None = None,
        saturation: float = 65535.0,
        trigger_timeout: float = 10.0,
        labels=("detectors",),
        **kwargs,
    ) -> None:
        super().__init__(*args, labels=set(labels), **kwargs)
        self._source = source
        self.saturation = float(saturation)
        self.trigger_timeout = float(trigger_timeout)
        self._fault: dict | None = None
        self._triggers = 0
        self._lock = threading.Lock()

    def inject_fault(self, kind: str, after: int = 0, persistent: bool = False) -> None:
        """Make a later trigger fail (for tests and drills).

        Parameters
        ----------
        kind : {"raise", "timeout", "nan", "saturate"}
            Raise :class:`DetectorFault`; never complete (the status times out); deliver a frame
            with NaN pixels; deliver a saturated frame.
        after : int
            Number of good triggers before the fault.
        persistent : bool
            Keep failing after the first fault.
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"kind={kind!r} is not a fault; allowed: {FAULT_KINDS}")
        self._fault = {"kind": kind, "at": self._triggers + int(after), "persistent": persistent}

    def clear_fault(self) -> None:
        """Remove an injected fault."""
        self._fault = None

    def _pending_fault(self) -> str | None:
        f = self._fault
        if f is None or self._triggers < f["at"]:
            return None
        if not f["persistent"]:
            self._fault = None
        return f["kind"]

    def trigger(self) -> DeviceStatus:  # noqa: D102 - ophyd API
        with self._lock:
            fault = self._pending_fault()
            self._triggers += 1
        status = DeviceStatus(self, timeout=self.trigger_timeout)
        if fault == "timeout":
            return status  # never finished: bluesky sees a StatusTimeoutError
        if fault == "raise":
            status.set_exception(DetectorFault(f"{self.name}: detector fault on trigger"))
            return status
        if self._source is None:
            status.set_exception(DetectorFault(f"{self.name}: no frame source connected"))
            return status
        try:
            n = int(self.frames_per_point.get())
            frame = np.mean([self._source() for _ in range(n)], axis=0).astype(np.float32)
        except Exception as err:  # a source failure is a recorded detector fault
            status.set_exception(DetectorFault(f"{self.name}: frame source failed: {err}"))
            return status
        if fault == "nan":
            frame[::7, ::5] = np.nan
        elif fault == "saturate":
            frame = np.full_like(frame, self.saturation)
        n_nan = int(np.isnan(frame).sum())
        n_sat = int((frame >= self.saturation).sum())
        quality = "nan" if n_nan else ("saturated" if n_sat > 0.01 * frame.size else "ok")
        self.image.put(frame)
        self.n_nan.put(n_nan)
        self.n_saturated.put(n_sat)
        self.quality.put(quality)
        status.set_finished()
        return status
