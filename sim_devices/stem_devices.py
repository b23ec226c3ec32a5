"""A simulated 4D-STEM microscope as ophyd devices, scanning a :class:`NanoparticleField`.

Devices
    :class:`StemScanStage` (``x``, ``y`` in nm, hard limits = the field), :class:`BraggDetector`
    (the Bragg list of the current position) and :class:`StemMicroscope` grouping them with the
    accelerating voltage (kV).

Fixed-shape readings. Event documents need a fixed shape per data key, and a Bragg list has a
varying length, so :class:`BraggDetector` publishes ``spots`` as a ``(max_spots, 3)`` float64
array padded with NaN rows, plus ``n_spots`` (the number of real rows, which come first) and
``n_truncated`` (the weakest spots dropped when a list is longer than ``max_spots``; 0 with the
default of 128). :func:`unpad_bragg_list` recovers the list.

The sample, its patterns and their detection are simulated in
:mod:`uedsteer.sim_devices.stem_sample`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from ophyd import Component as Cpt
from ophyd import Device, DeviceStatus, Signal

from .contracts import DetectorFault
from .devices import LimitedSignal
from .stem_sample import NanoparticleField

__all__ = [
    "BraggDetector",
    "BraggListSignal",
    "StemMicroscope",
    "StemScanStage",
    "unpad_bragg_list",
]


def unpad_bragg_list(spots: np.ndarray, n_spots: int | None = None) -> np.ndarray:
    """The real rows of a NaN-padded ``(max_spots, 3)`` Bragg-list reading.

    Parameters
    ----------
    spots : numpy.ndarray
        ``(max_spots, 3)`` reading of :class:`BraggDetector` (or any (n, 3) list).
    n_spots : int, optional
        Number of real rows (the detector's ``n_spots``); without it, rows holding any NaN are
        dropped.

    Returns
    -------
    numpy.ndarray
        ``(n, 3)`` float array ``(qx, qy, I)``.
    """
    arr = np.asarray(spots, dtype=float).reshape(-1, 3)
    if n_spots is not None:
        return arr[: int(n_spots)].copy()
    return arr[~np.isnan(arr).any(axis=1)].copy()


class BraggListSignal(Signal):
    """A soft signal holding a Bragg list as a fixed-shape ``(max_spots, 3)`` NaN-padded array."""

    def __init__(self, *args, max_spots: int = 128, **kwargs) -> None:
        kwargs.setdefault("value", np.full((max_spots, 3), np.nan))
        super().__init__(*args, **kwargs)
        self._max_spots = int(max_spots)

    @property
    def max_spots(self) -> int:
        """Rows of the padded array."""
        return self._max_spots

    def resize(self, max_spots: int) -> None:
        """Change the number of rows (clears the value)."""
        if int(max_spots) < 1:
            raise ValueError(f"max_spots={max_spots} must be >= 1")
        self._max_spots = int(max_spots)
        self.put(np.full((self._max_spots, 3), np.nan))

    def read(self) -> dict:
        """Reading with the value as nested lists (``get()`` returns the array).

        event_model's JSON-schema validation of an event formats the full ``repr`` of every
        numpy array of fewer than 1,000 elements, ~2 ms for a (128, 3) list; plain lists cost
        ~0.1 ms and are what the document stores anyway.
        """
        reading = super().read()
        entry = reading[self.name]
        entry["value"] = np.asarray(entry["value"], dtype=float).tolist()
        return reading

    def describe(self) -> dict:  # noqa: D102 - ophyd API
        return {
            self.name: {
                "source": f"SIM:{self.name}",
                "dtype": "array",
                "dtype_numpy": "<f8",
                "shape": [self._max_spots, 3],
                "units": "qx 1/A, qy 1/A, I counts; NaN rows pad",
            }
        }


class BraggDetector(Device):
    """Bragg-list detector: a 4D-STEM camera plus peak finder, one list per trigger.

    Components: ``spots`` ((max_spots, 3) NaN-padded, brightest first), ``n_spots`` (real rows)
    and ``n_truncated`` (weakest spots dropped beyond ``max_spots``).

    Parameters
    ----------
    source : callable
        ``source() -> (n, 3) array`` delivers the Bragg list of the current position
        (:class:`StemMicroscope` wires it to its field and stage).
    max_spots : int
        Rows of the padded reading.
    trigger_timeout : float
        Seconds before a trigger that never completes fails.
    """

    spots = Cpt(BraggListSignal, kind="normal")
    n_spots = Cpt(Signal, value=0, kind="hinted")
    n_truncated = Cpt(Signal, value=0, kind="normal")

    def __init__(
        self,
        *args,
        source: Callable[[], np.ndarray] | None = None,
        max_spots: int = 128,
        trigger_timeout: float = 10.0,
        labels=("detectors",),
        **kwargs,
    ) -> None:
        super().__init__(*args, labels=set(labels), **kwargs)
        self.source = source
        self.trigger_timeout = float(trigger_timeout)
        if int(max_spots) != self.spots.max_spots:
            self.spots.resize(max_spots)

    @property
    def max_spots(self) -> int:
        """Rows of the padded ``spots`` reading."""
        return self.spots.max_spots

    def bragg_list(self) -> np.ndarray:
        """The current reading without padding, ``(n_spots, 3)``."""
        return unpad_bragg_list(self.spots.get(), int(self.n_spots.get()))

    def trigger(self) -> DeviceStatus:  # noqa: D102 - ophyd API
        status = DeviceStatus(self, timeout=self.trigger_timeout)
        if self.source is None:
            status.set_exception(DetectorFault(f"{self.name}: no Bragg-list source connected"))
            return status
        try:
            spots = np.asarray(self.source(), dtype=float).reshape(-1, 3)
        except Exception as err:  # a source failure is a recorded detector fault
            status.set_exception(DetectorFault(f"{self.name}: Bragg-list source failed: {err}"))
            return status
        spots = spots[np.argsort(-spots[:, 2], kind="stable")]
        cap = self.max_spots
        padded = np.full((cap, 3), np.nan)
        n = min(len(spots), cap)
        padded[:n] = spots[:n]
        self.spots.put(padded)
        self.n_spots.put(n)
        self.n_truncated.put(len(spots) - n)
        status.set_finished()
        return status


class StemScanStage(Device):
    """Probe position of the scan coils, nm; hard limits are the scanned field."""

    x = Cpt(LimitedSignal, value=0.0, limits=(0.0, 132.3), units="nm", kind="hinted")
    y = Cpt(LimitedSignal, value=0.0, limits=(0.0, 132.3), units="nm", kind="hinted")

    def __init__(self, *args, labels=("motors", "stage"), **kwargs) -> None:
        super().__init__(*args, labels=set(labels), **kwargs)


class StemMicroscope(Device):
    """A simulated 4D-STEM microscope over a :class:`NanoparticleField`.

    Components: ``probe`` (:class:`StemScanStage`, x and y limited to the field's grid; the
    name ``stage`` is taken by ophyd's staging API),
    ``detector`` (:class:`BraggDetector`, the list at the stage position) and ``voltage``
    (accelerating voltage, kV, 60 … 300).

    Parameters
    ----------
    field : NanoparticleField, optional
        The sample (default: ``NanoparticleField()``, 64 × 64 positions).
    max_spots : int
        Rows of the detector's padded reading.
    name : str
        Device name (components are ``{name}_probe_x``, ``{name}_detector_spots`` …).
    """

    probe = Cpt(StemScanStage, "")
    detector = Cpt(BraggDetector, "")
    voltage = Cpt(LimitedSignal, value=300.0, limits=(60.0, 300.0), units="kV", kind="config")

    def __init__(
        self,
        *args,
        field: NanoparticleField | None = None,
        max_spots: int = 128,
        name: str = "stem",
        **kwargs,
    ) -> None:
        super().__init__(*args, name=name, **kwargs)
        self.field = field if field is not None else NanoparticleField()
        ex, ey = self.field.extent_nm
        self.probe.x.set_limits(0.0, ex)
        self.probe.y.set_limits(0.0, ey)
        if int(max_spots) != self.detector.max_spots:
            self.detector.spots.resize(max_spots)
        self.detector.source = self._pattern

    def _pattern(self) -> np.ndarray:
        return self.field.measure(
            float(self.probe.x.get()), float(self.probe.y.get()), float(self.voltage.get())
        )

    def truth(self) -> dict:
        """Hidden truth under the probe now (tests and benchmarks only)."""
        return self.field.truth_at(float(self.probe.x.get()), float(self.probe.y.get()))
