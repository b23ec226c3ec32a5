"""``uedsteer stem``: a simulated 4D-STEM raster scan of Au nanoparticles, logged to a catalog,
read back and turned into crystal-system and lattice-constant maps by the crystal model: the one
``uedsteer train crystal`` wrote when there is one, else the model shipped with uedsteer."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .arguments import add_catalog_arguments, out_folder
from .errors import fail


def add_parser(sub: Any) -> None:
    """The ``stem`` sub-command's arguments."""
    p = sub.add_parser(
        "stem", help="simulated 4D-STEM scan of Au nanoparticles -> crystal-system/lattice maps"
    )
    p.add_argument("--nx", type=int, default=64)
    p.add_argument("--ny", type=int, default=64)
    p.add_argument("--seed", type=int, default=0, help="seed of the nanoparticle field")
    add_catalog_arguments(p)
    p.add_argument("--out", default="stem_output", type=out_folder, help="folder for the PNG maps")
    p.add_argument(
        "--model",
        default=None,
        help="crystal model folder (default: ~/.local/share/uedsteer/crystal, where "
        "`uedsteer train crystal` writes, when it holds a model; else the model shipped with "
        "uedsteer)",
    )
    p.add_argument(
        "--lattice-system",
        default="cubic",
        help="lattice model for the map: a crystal system (paper: cubic) or per_pixel",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``uedsteer stem``: the model first, then the scan, then the maps."""
    predictor = _load_model(args)
    from uedsteer.sim_devices.stem_sample import NanoparticleField
    from uedsteer.surrogates.crystal.maps import crystal_maps

    field = NanoparticleField(nx=args.nx, ny=args.ny, seed=args.seed)
    uid, lists = _scan(args, field)
    maps = crystal_maps(lists, predictor, lattice_system=args.lattice_system)
    _write_maps(args, field, maps, uid)
    return 0


def _load_model(args: argparse.Namespace) -> Any:
    """The crystal predictor, before the scan's imports: a missing model says how to make one."""
    from uedsteer.surrogates.crystal.persistence import model_source
    from uedsteer.surrogates.crystal.predictor import CrystalPredictor

    try:
        predictor = CrystalPredictor.load(args.model)
    except (FileNotFoundError, ValueError) as err:
        fail(args, f"argument --model: {err}" if args.model else str(err))
    print(f"crystal model: {model_source(args.model)}")
    return predictor


def _scan(args: argparse.Namespace, field: Any) -> tuple[str, Any]:
    """Scan ``field`` in a RunEngine logging to the catalog; the run's uid and its Bragg lists,
    read back from the catalog."""
    from bluesky import RunEngine

    from uedsteer.plans.catalog import open_catalog, scan_id_source, subscribe
    from uedsteer.plans.stem import bragg_lists_from_run, raster_scan
    from uedsteer.sim_devices.stem_devices import StemMicroscope

    microscope = StemMicroscope(field=field)
    catalog = open_catalog(args.catalog, api_key=args.api_key)
    RE = RunEngine({}, scan_id_source=scan_id_source(catalog))
    subscribe(RE, catalog)
    print(
        f"4D-STEM raster: {args.nx} x {args.ny} positions, {field.step_nm} nm step, "
        f"{len(field.particles)} Au particles (seed {args.seed}); catalog {args.catalog}"
    )
    (uid,) = RE(raster_scan(microscope, args.nx, args.ny, field.step_nm))
    return uid, bragg_lists_from_run(catalog[uid])


def _write_maps(args: argparse.Namespace, field: Any, maps: Any, uid: str) -> None:
    """Write the PNG maps into ``--out`` and print what they show."""
    from uedsteer.surrogates.crystal.maps_plot import plot_crystal_maps

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    png = plot_crystal_maps(
        maps,
        out / "stem_crystal_maps.png",
        step_nm=field.step_nm,
        reference_a=field.lattice_constant,
    )
    kept = int(maps.kept.sum())
    print(f"positions with >= 5 spots: {int(maps.enough_spots.sum())} of {args.nx * args.ny}")
    print(f"kept after 5x5 filter and difference confidence >= 0.005: {kept}")
    for name, count in maps.counts().items():
        print(f"  {name:13s} {int(count):6d} pixels")
    print(
        f"median lattice constant a = {maps.median_lattice:.3f} Å "
        f"({args.lattice_system} model; true {field.lattice_constant:.2f} Å)"
    )
    print(f"run {uid}; map {png}")
