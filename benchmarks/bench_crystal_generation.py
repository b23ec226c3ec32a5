"""Crystal-store generation speed: the previous pipeline against the current one, same patterns.

For each material of ``--seed`` (as ``uedsteer generate crystals`` draws it, with the store's
default settings unless ``--set`` changes them) both pipelines make the material's Bragg lists
in this one process, one after the other:

* previous: the crystal drawn, its zone axes by the per-orbit loop, abTEM's full
  structure-factor table, abTEM's ``BlochWaves`` and full eigendecomposition per pattern
  (:mod:`uedsteer.sim_devices.physics.bragg.reference`);
* current: :func:`simulate_material` (the generator's own function: on-demand structure
  factors shared by the zone axes, Lanczos propagation).

The draw of the crystal (pyxtal, the same in both) is also timed alone, so that the Bloch-wave
part (the rest) can be compared by itself. It prints patterns/s of each and their ratio
(goal, issue 32: ≥ 3× per pattern) and checks that the lists are the same as stored
(float32): same spots, intensities within 1e-6 relative (in float64 they differ by ~1e-11,
``tests/sim_devices/physics/bragg/test_bloch_solver.py``). One thread
(``OMP_NUM_THREADS=1``); the store runs one such process per core.

Run: ``OMP_NUM_THREADS=1 python benchmarks/bench_crystal_generation.py --materials 8``
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from uedsteer.sim_devices.crystals.settings import CrystalGenSettings
from uedsteer.sim_devices.crystals.simulate import simulate_material
from uedsteer.sim_devices.crystals.sources import random_crystal
from uedsteer.sim_devices.physics.bragg.orientation import _laue_rotations
from uedsteer.sim_devices.physics.bragg.reference import (
    abtem_dynamical_bragg,
    abtem_structure_factor,
)

GOAL = 3.0
INTENSITY_RTOL = 1e-6
POSITION_ATOL = 1e-6  # 1/Å (the store keeps float32)


def _previous_zone_axes(atoms: Any, n: int, max_index: int, symprec: float = 1e-3) -> np.ndarray:
    """The previous ``zone_axes``: one Python loop over each [uvw]'s orbit members."""
    rotations = _laue_rotations(atoms, symprec)
    cell = np.asarray(atoms.cell, dtype=np.float64)
    rng = np.arange(-max_index, max_index + 1)
    grid = np.stack(np.meshgrid(rng, rng, rng, indexing="ij"), axis=-1).reshape(-1, 3)
    grid = grid[np.any(grid != 0, axis=1)]
    grid = grid[np.gcd.reduce(np.abs(grid), axis=1) == 1]

    def representative(uvw: np.ndarray) -> tuple[int, ...]:
        members = rotations @ uvw
        return min((int(np.sum(m < 0)), tuple(int(x) for x in m)) for m in members)[1]

    reps = {representative(uvw) for uvw in grid}
    ordered = sorted(reps, key=lambda r: (round(float(np.linalg.norm(np.array(r) @ cell)), 8), r))
    return np.array(ordered[:n], dtype=np.int64).reshape(-1, 3)


def previous_material(index: int, seed: int, settings: CrystalGenSettings) -> dict:
    """One material's lists by the previous pipeline (dynamical zone axes, as the store)."""
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng([seed, index])
    system = settings.systems[index % len(settings.systems)]
    atoms, info = random_crystal(system, rng, settings)
    axes = _previous_zone_axes(atoms, settings.zone_axes, settings.max_index)
    kw = {
        "voltage_kv": settings.voltage_kv,
        "k_max": settings.k_max,
        "thickness_nm": settings.thickness_nm,
        "sg_max": settings.sg_max,
        "thermal_sigma": settings.thermal_sigma,
        "min_intensity": settings.min_intensity,
    }
    kw["structure_factor"] = abtem_structure_factor(atoms, settings.k_max, settings.thermal_sigma)
    lists = [abtem_dynamical_bragg(atoms, uvw, **kw) for uvw in axes]
    if settings.random_orientations:
        rotations = Rotation.random(
            settings.random_orientations, random_state=int(rng.integers(2**31 - 1))
        ).as_matrix()
        lists += [abtem_dynamical_bragg(atoms, rotation=rot, **kw) for rot in rotations]
        axes = np.vstack([axes, np.zeros((len(rotations), 3), int)])
    return {"info": info, "zone_axes": axes, "bragg": [np.asarray(b, np.float32) for b in lists]}


def _difference(previous: dict, current: dict) -> tuple[int, float]:
    """(lists that differ in their spots or zone axis, largest relative intensity change)."""
    differ, worst = 0, 0.0
    same_axes = np.array_equal(previous["zone_axes"], current["zone_axes"])
    for a, b in zip(previous["bragg"], current["bragg"], strict=True):
        if (
            not same_axes
            or a.shape != b.shape
            or not np.allclose(a[:, :2], b[:, :2], rtol=0, atol=POSITION_ATOL)
        ):
            differ += 1
            continue
        worst = max(worst, float(np.max(np.abs(a[:, 2] - b[:, 2]) / a[:, 2])))
    return differ, worst


def compare_generation(
    seed: int, materials: int, settings: CrystalGenSettings, verbose: bool = False
) -> dict:
    """Time both pipelines on the same materials; check that their lists agree.

    Returns
    -------
    dict
        ``patterns``, ``previous_s``, ``current_s``, ``draw_s`` (seconds for all materials;
        the draw is inside both others), ``previous_rate``, ``current_rate`` (patterns/s),
        ``speedup``, ``simulation_speedup`` (draw left out), ``differing_lists`` and
        ``max_relative_intensity_change``.
    """
    if settings.method != "dynamical":
        raise ValueError("the comparison is of the dynamical (Bloch-wave) generator")
    warm = settings.model_copy(update={"zone_axes": 1, "random_orientations": 0})
    previous_material(0, seed, warm)  # imports, abTEM's compiled kernels, the prototype library
    simulate_material(0, seed, warm)
    totals = {"patterns": 0, "previous_s": 0.0, "current_s": 0.0, "draw_s": 0.0}
    totals["differing_lists"] = 0
    worst = 0.0
    system = settings.systems

    def draw(index: int) -> None:
        random_crystal(system[index % len(system)], np.random.default_rng([seed, index]), settings)

    for index in range(materials):
        draw(index)  # untimed: pyxtal's first use of a space group loads its tables
        t0 = time.perf_counter()
        previous = previous_material(index, seed, settings)
        t1 = time.perf_counter()
        current = simulate_material(index, seed, settings)
        t2 = time.perf_counter()
        draw(index)
        totals["draw_s"] += time.perf_counter() - t2
        differ, change = _difference(previous, current)
        n = len(current["bragg"])
        totals["patterns"] += n
        totals["previous_s"] += t1 - t0
        totals["current_s"] += t2 - t1
        totals["differing_lists"] += differ
        worst = max(worst, change)
        if verbose:
            info = current["info"]
            print(
                f"  {index:3d} {info['formula']:<14} {info['n_atoms']:3d} atoms "
                f"{info['volume']:6.0f} Å³ {n:3d} patterns   previous {t1 - t0:6.2f} s   "
                f"current {t2 - t1:6.2f} s   x{(t1 - t0) / (t2 - t1):5.1f}   "
                f"max |ΔI|/I (float32) {change:.1e}"
                + (f"   {differ} lists differ" if differ else "")
            )
    totals["previous_rate"] = totals["patterns"] / totals["previous_s"]
    totals["current_rate"] = totals["patterns"] / totals["current_s"]
    totals["speedup"] = totals["previous_s"] / totals["current_s"]
    totals["simulation_speedup"] = (totals["previous_s"] - totals["draw_s"]) / max(
        totals["current_s"] - totals["draw_s"], 1e-9
    )
    totals["max_relative_intensity_change"] = worst
    return totals


def format_comparison(result: dict) -> str:
    """One line: patterns/s before and after, the ratio against the goal, the agreement."""
    verdict = "meets" if result["speedup"] >= GOAL else "misses"
    return (
        f"crystal generation, {result['patterns']} patterns, one process: previous "
        f"{result['previous_rate']:.1f} patterns/s, current {result['current_rate']:.1f} "
        f"patterns/s, x{result['speedup']:.1f} ({verdict} the goal x{GOAL:.0f}; without the "
        f"crystal draws, {result['draw_s']:.1f} s in each: x{result['simulation_speedup']:.1f}); "
        f"{result['differing_lists']} lists differ, stored (float32) intensities within "
        f"{result['max_relative_intensity_change']:.1e} relative (tolerance {INTENSITY_RTOL:g})"
    )


def settings_from_args(
    parser: argparse.ArgumentParser, stored: dict, items: list[str]
) -> CrystalGenSettings:
    """``stored`` settings changed by the ``--set KEY=JSON`` ``items``; a bad pair or value is
    the parser's one-line error."""
    from pydantic import ValidationError

    from uedsteer.controller.cli.arguments import setting_pair

    overrides = {}
    for item in items:
        try:
            key, value = setting_pair(item)
        except argparse.ArgumentTypeError:
            parser.error(f"argument --set: {item!r} is not allowed: use KEY=JSON")
        overrides[key] = value
    try:
        return CrystalGenSettings(**{**stored, **overrides})
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        parser.error(f"argument --set: {key}={first.get('input')!r} is not allowed: {first['msg']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="data seed of the materials")
    parser.add_argument("--materials", type=int, default=8)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=JSON",
        help="override a CrystalGenSettings field, e.g. zone_axes=10",
    )
    args = parser.parse_args()
    settings = settings_from_args(parser, {}, args.set)
    print(
        f"seed {args.seed}, {args.materials} materials, {settings.zone_axes} zone axes each, "
        f"{settings.thickness_nm} nm, {settings.voltage_kv} kV, sg_max {settings.sg_max}, "
        f"k_max {settings.k_max}"
    )
    result = compare_generation(args.seed, args.materials, settings, verbose=True)
    print(format_comparison(result))


if __name__ == "__main__":
    main()
