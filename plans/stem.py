"""Bluesky plan of a 4D-STEM raster scan: one Bragg list per probe position.

One run visits an ``nx`` × ``ny`` grid of probe positions row by row (y outer, x inner, no
snaking), moves the probe with ``bps.mv`` and records the detector's Bragg list, the probe
position and the voltage with ``bps.trigger_and_read``. Event ``seq_num`` k (1-based) is
position (iy, ix) = divmod(k − 1, nx). Every position is checked against the probe's hard
limits before the run opens, so a scan that does not fit the field leaves no documents.

:func:`bragg_lists_from_docs` turns the documents of such a run back into an (ny, nx) grid of
Bragg lists, the input of :func:`uedsteer.surrogates.crystal.maps.crystal_maps`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp
import numpy as np

from uedsteer.sim_devices.stem_devices import unpad_bragg_list

from .scans import MsgGenerator, _check_n

__all__ = ["bragg_lists_from_docs", "bragg_lists_from_run", "raster_scan"]


def _check_step(step_nm: float) -> float:
    try:
        step = float(step_nm)
    except (TypeError, ValueError):
        raise ValueError(f"step_nm={step_nm!r} is not a number") from None
    if not math.isfinite(step) or step <= 0:
        raise ValueError(f"step_nm={step_nm!r} must be a finite step > 0 nm")
    return step


def raster_scan(
    microscope,
    nx: int,
    ny: int,
    step_nm: float = 2.1,
    *,
    x0_nm: float = 0.0,
    y0_nm: float = 0.0,
    md: dict | None = None,
) -> MsgGenerator:
    """Raster the probe over ``nx`` × ``ny`` positions and read a Bragg list at each.

    Parameters
    ----------
    microscope : StemMicroscope
        Or any device with ``probe.x``, ``probe.y`` (nm, with ``check_value``), ``detector``
        and ``voltage``.
    nx, ny : int
        Positions along x (inner loop) and y (outer loop).
    step_nm : float
        Probe step, nm (2.1 nm in the seed's gold scan).
    x0_nm, y0_nm : float
        First position, nm.
    md : dict, optional
        Extra run metadata (overrides the defaults).

    Raises
    ------
    ValueError
        ``LimitError`` (a ``ValueError``) naming the first position outside the probe's hard
        limits, or a bad ``nx``, ``ny`` or ``step_nm``; raised before the run opens.
    """
    nx = _check_n(nx, "nx")
    ny = _check_n(ny, "ny")
    step = _check_step(step_nm)
    probe, det = microscope.probe, microscope.detector
    xs = float(x0_nm) + step * np.arange(nx)
    ys = float(y0_nm) + step * np.arange(ny)
    for signal, values in ((probe.x, xs), (probe.y, ys)):
        for v in (values[0], values[-1]):  # a grid is inside the limits iff its corners are
            signal.check_value(float(v))
    voltage_kv = float(microscope.voltage.get())
    run_md: dict[str, Any] = {
        "plan_name": "raster_scan",
        "purpose": "4D-STEM raster: Bragg list per probe position",
        "sample": "Au nanoparticles on amorphous carbon",
        "voltage_kv": voltage_kv,
        "plan_args": {
            "nx": nx,
            "ny": ny,
            "step_nm": step,
            "x0_nm": float(x0_nm),
            "y0_nm": float(y0_nm),
        },
        "shape": [ny, nx],
        "extents": [[float(ys[0]), float(ys[-1])], [float(xs[0]), float(xs[-1])]],
        "snaking": [False, False],
        "raster_order": "row-major: y outer, x inner; seq_num k -> (iy, ix) = divmod(k-1, nx)",
        "num_points": nx * ny,
        "detectors": [det.name],
        "motors": [probe.y.name, probe.x.name],
        "bragg_key": det.spots.name,
        "n_spots_key": det.n_spots.name,
        "hints": {"dimensions": [([probe.y.name], "primary"), ([probe.x.name], "primary")]},
    }
    field = getattr(microscope, "field", None)
    if hasattr(field, "model_dump"):  # a simulated microscope: record how the sample was made
        run_md["simulation"] = {"field": field.model_dump(mode="json")}
    run_md.update(md or {})
    readables = [det, probe, microscope.voltage]

    def body() -> MsgGenerator:
        for y in ys:
            yield from bps.mv(probe.x, float(xs[0]), probe.y, float(y))  # fly back, next row
            for k, x in enumerate(xs):
                if k:
                    yield from bps.mv(probe.x, float(x))
                yield from bps.trigger_and_read(readables)

    return (yield from bpp.run_wrapper(body(), md=run_md))


def bragg_lists_from_docs(docs: Iterable[tuple[str, dict]]) -> np.ndarray:
    """The (ny, nx) grid of Bragg lists of one :func:`raster_scan` run from its documents.

    Parameters
    ----------
    docs : iterable of (name, document)
        The run's documents as a RunEngine callback receives them (``event_page`` documents
        are unpacked too).

    Returns
    -------
    numpy.ndarray
        (ny, nx) object array of (n, 3) float arrays ``(qx, qy, I)``, padding removed.

    Raises
    ------
    ValueError
        If there is no raster_scan start document, or the events do not fill the grid.
    """
    from event_model import unpack_event_page

    start = None
    events: list[dict] = []
    for name, doc in docs:
        if name == "start":
            if start is not None:
                raise ValueError("docs hold more than one run; pass the documents of one run")
            start = doc
        elif name == "event":
            events.append(doc)
        elif name == "event_page":
            events.extend(unpack_event_page(doc))
    if start is None or "shape" not in start or "bragg_key" not in start:
        raise ValueError("docs hold no raster_scan start document (with shape and bragg_key)")
    ny, nx = (int(v) for v in start["shape"])
    key, n_key = start["bragg_key"], start["n_spots_key"]
    out = np.empty((ny, nx), dtype=object)
    seen = np.zeros((ny, nx), dtype=bool)
    for ev in events:
        if key not in ev["data"]:
            continue  # another stream
        iy, ix = divmod(int(ev["seq_num"]) - 1, nx)
        if not (0 <= iy < ny):
            raise ValueError(f"event seq_num {ev['seq_num']} is outside the {ny} x {nx} grid")
        out[iy, ix] = unpad_bragg_list(np.asarray(ev["data"][key]), int(ev["data"][n_key]))
        seen[iy, ix] = True
    if not seen.all():
        raise ValueError(
            f"the run has {int(seen.sum())} of {nx * ny} positions (was it aborted?); "
            "a map needs every position"
        )
    return out


def bragg_lists_from_run(run: Any) -> np.ndarray:
    """The (ny, nx) grid of Bragg lists of one :func:`raster_scan` run read from the catalog.

    Parameters
    ----------
    run : tiled BlueskyRun
        E.g. ``catalog[uid]`` of :func:`uedsteer.plans.catalog.local_catalog`.

    Returns
    -------
    numpy.ndarray
        (ny, nx) object array of (n, 3) float arrays ``(qx, qy, I)``, padding removed.

    Raises
    ------
    ValueError
        If the run is not a raster scan or does not hold every position.
    """
    start = run.metadata["start"]
    if "shape" not in start or "bragg_key" not in start:
        raise ValueError("run is not a raster_scan run (its start has no shape / bragg_key)")
    ny, nx = (int(v) for v in start["shape"])
    primary = run["primary"]
    spots = np.asarray(primary[start["bragg_key"]].read())
    counts = np.asarray(primary[start["n_spots_key"]].read()).astype(int)
    if len(spots) != nx * ny:
        raise ValueError(
            f"the run has {len(spots)} of {nx * ny} positions (was it aborted?); "
            "a map needs every position"
        )
    out = np.empty((ny, nx), dtype=object)
    for k in range(nx * ny):  # events are stored in seq_num order: (iy, ix) = divmod(k, nx)
        out[divmod(k, nx)] = unpad_bragg_list(spots[k], int(counts[k]))
    return out
