"""Bluesky plans for the UED beamline: acquisition and scans, shutter closed on every exit.

Every plan reads all devices in each event (frame, quality flags and every setting), records
the purpose, the sample and the settings in the run's metadata, checks every scan point against
the devices' hard limits before the run opens, and closes the pump shutter on every exit
path (normal end, exception, abort) through ``bluesky.preprocessors.finalize_wrapper``.
Each takes a beamline that satisfies :class:`uedsteer.plans.protocols.Beamline` (checked
before the run opens) and reaches its devices through that protocol's accessors.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp
from bluesky.utils import FailedStatus, Msg

from uedsteer.sim_devices.contracts import SETTINGS, DetectorFault

from .protocols import check_beamline, event_devices, setting_signals

MsgGenerator = Generator[Msg, Any, Any]

__all__ = [
    "MsgGenerator",
    "acquire_frames",
    "close_shutter",
    "delay_scan",
    "fluence_scan",
    "grid_scan",
    "settings_of",
]


def settings_of(beamline) -> dict[str, float | int | str]:
    """Current settings of a beamline as plain values (for metadata).

    In this order: the settings that act on the sample (the pump's), the pump shutter, the
    settings that act on the probe, the spot; ``frames_per_point`` only where the detector has
    that component (the contract needs ``image`` alone).
    """
    values = {name: float(signal.get()) for name, signal in setting_signals(beamline).items()}
    pump = {n: v for n, v in values.items() if SETTINGS[n].acts_on == "sample"}
    out: dict[str, float | int | str] = {**pump, "shutter": beamline.shutter.get()}
    out.update({n: v for n, v in values.items() if n not in pump})
    out["spot"] = int(beamline.spot.get())
    frames = getattr(beamline.detector, "frames_per_point", None)
    if frames is not None:
        out["frames_per_point"] = int(frames.get())
    return out


def close_shutter(beamline) -> MsgGenerator:
    """Close the pump shutter."""
    yield from bps.mv(beamline.shutter, "closed")


def _check_points(signal, values: Sequence[float], arg: str) -> list[float]:
    values = list(values)
    if not values:
        raise ValueError(f"{arg} is empty: give at least one point")
    for v in values:
        signal.check_value(v)  # LimitError names the value and the limit
    return [float(v) for v in values]


def _check_n(n: int, arg: str = "n") -> int:
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(f"{arg}={n!r} must be a positive integer")
    return int(n)


def _run_md(beamline, plan_name: str, purpose: str, plan_args: dict, md: dict | None) -> dict:
    base = {
        "plan_name": plan_name,
        "purpose": purpose,
        "sample": getattr(beamline, "sample_name", "MoTe2 monolayer"),
        "settings": settings_of(beamline),
        "plan_args": plan_args,
        "detectors": [beamline.detector.name],
        "motors": [d.name for d in beamline.motors],
    }
    base.update(md or {})
    return base


def _frames(beamline, n: int) -> MsgGenerator:
    for _ in range(n):
        try:
            yield from bps.trigger_and_read(event_devices(beamline))
        except FailedStatus as err:
            # Name the cause in the run's stop document instead of a bare status repr.
            status = err.args[0] if err.args else None
            cause = status.exception() if hasattr(status, "exception") else None
            raise DetectorFault(f"{beamline.detector.name}: {cause or err}") from err


def _shuttered_run(beamline, body: MsgGenerator, md: dict) -> MsgGenerator:
    def inner() -> MsgGenerator:
        yield from bps.mv(beamline.shutter, "open")
        yield from body
        yield from close_shutter(beamline)

    return (
        yield from bpp.finalize_wrapper(bpp.run_wrapper(inner(), md=md), close_shutter(beamline))
    )


def acquire_frames(beamline, n: int = 1, md: dict | None = None) -> MsgGenerator:
    """Acquire ``n`` frames at the current settings with the pump shutter open.

    Parameters
    ----------
    beamline : Beamline
        :class:`~uedsteer.sim_devices.beamline.SimulatedBeamline` or any object that satisfies
        :class:`uedsteer.plans.protocols.Beamline`.
    n : int
        Number of frames (one event each).
    md : dict, optional
        Extra run metadata (overrides the defaults: purpose, sample, settings …).
    """
    check_beamline(beamline)
    n = _check_n(n)
    run_md = _run_md(beamline, "acquire_frames", "acquire frames", {"n": n}, md)
    return (yield from _shuttered_run(beamline, _frames(beamline, n), run_md))


def _scan_1d(
    beamline,
    setting: str,
    points: Sequence[float],
    arg: str,
    name: str,
    purpose: str,
    n_per_point: int,
    md: dict | None,
) -> MsgGenerator:
    """Step one setting through ``points``, ``n_per_point`` frames at each."""
    check_beamline(beamline)
    signal = setting_signals(beamline)[setting]
    pts = _check_points(signal, points, arg)
    n = _check_n(n_per_point, "n_per_point")

    def body() -> MsgGenerator:
        for v in pts:
            yield from bps.mv(signal, v)
            yield from _frames(beamline, n)

    run_md = _run_md(beamline, name, purpose, {arg: pts, "n_per_point": n}, md)
    run_md["num_points"] = len(pts) * n
    return (yield from _shuttered_run(beamline, body(), run_md))


def delay_scan(
    beamline, delays: Sequence[float], n_per_point: int = 1, md: dict | None = None
) -> MsgGenerator:
    """Pump–probe delay scan (ps) at the current pump and beam settings."""
    return (
        yield from _scan_1d(
            beamline,
            "delay",
            delays,
            "delays",
            "delay_scan",
            "delay scan",
            n_per_point,
            md,
        )
    )


def fluence_scan(
    beamline, fluences: Sequence[float], n_per_point: int = 1, md: dict | None = None
) -> MsgGenerator:
    """Pump fluence scan (mJ/cm²) on the current spot, wavelength and delay."""
    return (
        yield from _scan_1d(
            beamline,
            "fluence",
            fluences,
            "fluences",
            "fluence_scan",
            "fluence scan",
            n_per_point,
            md,
        )
    )


def grid_scan(
    beamline,
    fluences: Sequence[float],
    wavelengths: Sequence[float],
    n_per_point: int = 1,
    fresh_spot_per_point: bool = False,
    md: dict | None = None,
) -> MsgGenerator:
    """Fluence × wavelength grid (wavelength outer, fluence inner).

    Parameters
    ----------
    fresh_spot_per_point : bool
        Move to the next spot for every grid point, so damage at one point does not colour
        the next (needs enough spots; checked before the run opens).
    """
    check_beamline(beamline)
    fluence, wavelength = (setting_signals(beamline)[k] for k in ("fluence", "wavelength"))
    f_pts = _check_points(fluence, fluences, "fluences")
    w_pts = _check_points(wavelength, wavelengths, "wavelengths")
    n = _check_n(n_per_point, "n_per_point")
    first = int(beamline.spot.get())
    if fresh_spot_per_point:
        beamline.spot.check_value(first + len(f_pts) * len(w_pts) - 1)

    def body() -> MsgGenerator:
        k = 0
        for w in w_pts:
            for f in f_pts:
                moves = [wavelength, w, fluence, f]
                if fresh_spot_per_point:
                    moves += [beamline.spot, first + k]
                yield from bps.mv(*moves)
                yield from _frames(beamline, n)
                k += 1

    args = {
        "fluences": f_pts,
        "wavelengths": w_pts,
        "n_per_point": n,
        "fresh_spot_per_point": fresh_spot_per_point,
    }
    run_md = _run_md(beamline, "grid_scan", "fluence x wavelength map", args, md)
    run_md["num_points"] = len(f_pts) * len(w_pts) * n
    return (yield from _shuttered_run(beamline, body(), run_md))
