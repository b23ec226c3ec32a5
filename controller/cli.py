"""The ``uedsteer`` command line: ``demo``, ``campaign``, ``generate``, ``ipython``, ``train``,
``report``, ``phonons``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from .campaign_cli import add_campaign_parser, add_catalog_arguments


def _demo(args: argparse.Namespace) -> int:
    from uedsteer.sim_devices.dataset import LABELS, generate_frames
    from uedsteer.sim_devices.plots import frame_montage

    quiet = {"noise_level": (0.1, 0.1), "charge_fc": (50.0, 50.0), "base_size": (40, 24)}
    reference, _ = generate_frames("ref_2H", 3, seed=args.seed + 1000, **quiet)
    frames, titles = [], []
    for label in LABELS:
        kw = {"x": 0.5} if label == "interpolated" else {}
        f, p = generate_frames(label, 1, seed=args.seed, **kw, **quiet)
        frames.append(f[0])
        extra = {
            "vacancy_2H": f"Mo {p[0]['mo_vacancy']:.0%} Te {p[0]['te_vacancy']:.0%}",
            "vacancy_1Tp": f"Mo {p[0]['mo_vacancy']:.0%} Te {p[0]['te_vacancy']:.0%}",
            "phonon_2H": p[0]["mode"],
            "phonon_1Tp": p[0]["mode"],
            "interpolated": f"x = {p[0]['x']:.2f}",
            "degraded": f"{p[0]['mo_vacancy']:.0%} vacant",
        }.get(label, "")
        titles.append(f"{label}\n{extra}")
        print(f"  {label:13s} {extra}")
    out = Path(args.out) / "montage.png"
    frame_montage(np.stack(frames), titles, reference, out)
    print(f"wrote {out}")
    return 0


def _fail(args: argparse.Namespace, message: str) -> NoReturn:
    """Stop with ``uedsteer COMMAND: error: MESSAGE`` on stderr and status 2, as argparse does."""
    print(f"uedsteer {args.command}: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def _int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse ``type``: an integer >= ``minimum`` (argparse names the option on error)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not allowed: use an integer >= {minimum}"
            )
        return value

    return parse


_positive_int = _int_at_least(1)
_non_negative_int = _int_at_least(0)


def _number(
    low: float, high: float = float("inf"), open_low: bool = False
) -> Callable[[str], float]:
    """An argparse ``type``: a finite number in [low, high], or (low, high] with ``open_low``."""
    allowed = f"a number {'>' if open_low else '>='} {low:g}" + (
        f" and <= {high:g}" if high < float("inf") else ""
    )

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        inside = (value > low if open_low else value >= low) and value <= high
        if not (inside and np.isfinite(value)):
            raise argparse.ArgumentTypeError(f"{text!r} is not allowed: use {allowed}")
        return value

    return parse


def _out_folder(text: str) -> str:
    """An argparse ``type`` for an output folder: a new or existing folder, not a file."""
    path = Path(text).expanduser()
    for p in (path, *path.parents):
        if p.exists() and not p.is_dir():
            where = "is a file" if p == path else f"lies inside the file {str(p)!r}"
            raise argparse.ArgumentTypeError(
                f"{text!r} {where}: give a folder (new or existing) for the output"
            )
    return text


def _out_file(text: str) -> str:
    """An argparse ``type`` for an output file: not an existing folder, not inside a file."""
    path = Path(text).expanduser()
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a folder: give a file name (.npz)")
    for p in path.parents:
        if p.exists() and not p.is_dir():
            raise argparse.ArgumentTypeError(
                f"{text!r} lies inside the file {str(p)!r}: give a file in a folder"
            )
    return text


def _set_item(text: str) -> tuple[str, Any]:
    """An argparse ``type`` for ``--set KEY=JSON``: the pair (KEY, decoded JSON)."""
    key, sep, value = text.partition("=")
    try:
        if not sep or not key:
            raise ValueError
        return key, json.loads(value)
    except ValueError:  # JSONDecodeError too
        raise argparse.ArgumentTypeError(
            f"{text!r} is not allowed: use KEY=VALUE with VALUE as JSON, e.g. noise_level=[0,0.5]"
        ) from None


def _overrides(items: list[tuple[str, Any]] | None) -> dict:
    """The ``--set`` pairs as keyword arguments (a later KEY wins)."""
    return dict(items or [])


def _validated(
    args: argparse.Namespace, model: Any, fields: dict, options: dict[str, str] | None = None
) -> Any:
    """``model(**fields)``; a validation error stops with one line naming the option.

    ``options`` maps a field to its command-line option (``{"chunk": "--chunk"}``); every other
    field came from ``--set KEY=JSON``.
    """
    from pydantic import ValidationError

    try:
        return model(**fields)
    except ValidationError as err:
        first = err.errors()[0]
        loc = [str(part) for part in first["loc"]]
        msg = first["msg"].removeprefix("Value error, ")
        msg = msg[:1].lower() + msg[1:]  # pydantic's "Input should be ..."
        key = loc[0] if loc else ""
        if key in (options or {}):
            value = getattr(args, key, fields.get(key))
            text = value if isinstance(value, str) else json.dumps(value)
            said = msg if text in msg else f"{text} is not allowed: {msg}"
            _fail(args, f"argument {options[key]}: {said}")
        if first["type"] == "extra_forbidden" and len(loc) == 1:
            allowed = ", ".join(model.model_fields)
            _fail(args, f"argument --set: {key!r} is not a setting; allowed: {allowed}")
        text = json.dumps(fields.get(key), separators=(",", ":"))
        inner = f" ({'.'.join(loc)})" if len(loc) > 1 else ""
        said = msg if f"{key}=" in msg else f"{key}={text}{inner} is not allowed: {msg}"
        _fail(args, f"argument --set: {said}")


def _generate_crystals(args: argparse.Namespace) -> int:
    from uedsteer.sim_devices.crystal_dataset import (
        CrystalDatasetSpec,
        CrystalGenSettings,
        write_crystal_dataset,
    )

    settings = _validated(args, CrystalGenSettings, _overrides(args.set))
    fields = {
        "n_materials": args.n_materials,
        "seed": args.seed,
        "chunk": 12 if args.chunk is None else args.chunk,
        "settings": settings,
    }
    options = {"n_materials": "--n-materials", "seed": "--seed", "chunk": "--chunk"}
    spec = _validated(args, CrystalDatasetSpec, fields, options)
    out = write_crystal_dataset(args.out, spec, scheduler=args.scheduler, n_workers=args.workers)
    print(f"wrote {out}")
    return 0


def _generate(args: argparse.Namespace) -> int:
    from uedsteer.sim_devices.dataset import LABELS, DatasetSpec, GeneratorSettings, write_dataset

    if args.what == "crystals":
        return _generate_crystals(args)
    settings = _validated(args, GeneratorSettings, _overrides(args.set))
    fields = {
        "labels": LABELS if args.labels == "all" else tuple(args.labels.split(",")),
        "n_per_label": args.n_per_label,
        "seed": args.seed,
        "chunk": 32 if args.chunk is None else args.chunk,
        "settings": settings,
    }
    options = {
        "labels": "--labels",
        "n_per_label": "--n-per-label",
        "seed": "--seed",
        "chunk": "--chunk",
    }
    spec = _validated(args, DatasetSpec, fields, options)
    out = write_dataset(args.out, spec, scheduler=args.scheduler, n_workers=args.workers)
    print(f"wrote {out}")
    return 0


def _phonons(args: argparse.Namespace) -> int:
    from uedsteer.sim_devices.phonon_calc import compute_phonon_table, default_output

    out = Path(args.out) if args.out else default_output()
    summary = compute_phonon_table(out, supercell=tuple(args.supercell))
    for phase, ranges in summary.items():
        for q, (lo, hi) in ranges.items():
            print(f"  {phase:4s} {q:6s} {lo:7.1f} … {hi:7.1f} cm⁻¹")
    print(f"wrote {out}")
    return 0


def _max_features(value: str) -> str:
    """An argparse ``type`` for ``--max-features``: 'all', 'sqrt', 'log2' or a fraction."""
    try:
        frac = float(value)
    except ValueError:
        frac = -1.0
    if value not in ("all", "sqrt", "log2") and not 0 < frac <= 1:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not allowed: use 'all', 'sqrt', 'log2' or a fraction in (0, 1]"
        )
    return value


def _train_crystal(args: argparse.Namespace) -> int:
    from uedsteer.sim_devices.crystal_dataset import (
        check_crystal_store,
        concatenate_datasets,
        load_crystal_dataset,
    )

    if args.q_range is not None:
        qmin, qmax = args.q_range
        if not (0 <= qmin < qmax and np.isfinite(qmax)):
            _fail(
                args,
                f"argument --q-range: {qmin:g} {qmax:g} is not allowed: use 0 <= QMIN < QMAX "
                "(1/Å), e.g. 0.16 1.3",
            )
    paths = (args.data if args.data != "data" else "data/crystals").split(",")
    for path in paths:  # every store before any work
        try:
            check_crystal_store(Path(path))
        except (FileNotFoundError, ValueError) as err:
            _fail(args, f"argument --data: {err}")
    from uedsteer.surrogates.crystal.train import format_metrics, train_crystal

    data = concatenate_datasets([load_crystal_dataset(Path(p)) for p in paths])
    params = {}
    for name in ("system", "space_group", "lattice"):
        trees = getattr(args, f"{name}_trees")
        if trees is not None:
            params[f"{name}_params"] = {"n_estimators": trees}
    if args.max_features is not None:
        mf = args.max_features
        value = None if mf == "all" else mf if mf in ("sqrt", "log2") else float(mf)
        for name in ("system", "space_group", "lattice"):
            params.setdefault(f"{name}_params", {})["max_features"] = value
    _, metrics = train_crystal(
        data,
        out=args.out,
        report=args.report,
        seed=args.seed,
        n_jobs=args.threads,
        command=" ".join(["uedsteer", *sys.argv[1:]]),
        q_range=tuple(args.q_range) if args.q_range else None,
        features=args.features,
        lattice_weighting=args.lattice_weights.replace("-", "_"),
        **params,
    )
    print(format_metrics(metrics))
    print(f"model: {metrics['model_folder']}")
    return 0


def _stem(args: argparse.Namespace) -> int:
    from uedsteer.surrogates.crystal.predictor import CrystalPredictor

    try:  # first, before the scan's imports: a missing model says how to make one
        predictor = CrystalPredictor.load(args.model)
    except (FileNotFoundError, ValueError) as err:
        _fail(args, f"argument --model: {err}" if args.model else str(err))
    from bluesky import RunEngine

    from uedsteer.plans.catalog import open_catalog, scan_id_source, subscribe
    from uedsteer.plans.stem import bragg_lists_from_run, raster_scan
    from uedsteer.sim_devices.stem import NanoparticleField, StemMicroscope
    from uedsteer.surrogates.crystal.maps import crystal_maps, plot_crystal_maps

    field = NanoparticleField(nx=args.nx, ny=args.ny, seed=args.seed)
    microscope = StemMicroscope(field=field)
    catalog = open_catalog(args.catalog, api_key=args.api_key)
    RE = RunEngine({}, scan_id_source=scan_id_source(catalog))
    subscribe(RE, catalog)
    print(
        f"4D-STEM raster: {args.nx} x {args.ny} positions, {field.step_nm} nm step, "
        f"{len(field.particles)} Au particles (seed {args.seed}); catalog {args.catalog}"
    )
    (uid,) = RE(raster_scan(microscope, args.nx, args.ny, field.step_nm))
    lists = bragg_lists_from_run(catalog[uid])  # read back from the catalog
    maps = crystal_maps(lists, predictor, lattice_system=args.lattice_system)
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
    return 0


def _check_frame_stores(
    args: argparse.Namespace, option: str, stores: list[Path], labels: tuple[str, ...] = ()
) -> None:
    """Stop with one line naming ``option`` unless every store is finished and has ``labels``."""
    from uedsteer.sim_devices.dataset import check_store

    for store in stores:
        try:
            check_store(store, labels)
        except FileNotFoundError:
            what = (
                f"{args.data!r} has no {store.name} ({store} does not exist)"
                if option == "--data"
                else f"{str(store)!r} does not exist"
            )
            fix = f"make it with `uedsteer generate --out {store}`"
            _fail(args, f"argument {option}: {what}; {fix}")
        except ValueError as err:
            _fail(args, f"argument {option}: {err}")


def _train(args: argparse.Namespace) -> int:
    if args.model == "crystal":
        return _train_crystal(args)
    import torch

    from uedsteer.surrogates import train_models as tm

    out = Path(args.out) if args.out else tm.default_weights_dir()
    data = Path(args.data)
    # every input is checked before any work
    extra = [Path(e) for e in args.extra_train.split(",")] if args.extra_train else []
    if args.model == "cnn":
        _check_frame_stores(args, "--data", [data / f"{s}.zarr" for s in ("train", "val", "test")])
        _check_frame_stores(args, "--extra-train", extra)
    elif args.model == "vae":
        stores = [data / "train.zarr", data / "test.zarr"]
        _check_frame_stores(args, "--data", stores, tm.VAE_LABELS)
    elif args.model == "finetune":
        base = Path(args.base) if args.base else out
        if not (base / "cnn_syn.pt").is_file():
            option = "--base" if args.base else "--out"
            _fail(
                args,
                f"argument {option}: {str(base)!r} holds no cnn_syn.pt to fine-tune; train one "
                f"first with `uedsteer train cnn --out {base}`"
                + ("" if args.base else ", or name another folder with --base DIR"),
            )
    elif not (out / "cnn_exp.pt").is_file():  # mixed
        _fail(
            args,
            f"argument --out: {str(out)!r} holds no cnn_exp.pt for the mixed stage; make it "
            f"first with `uedsteer train finetune --out {out}`",
        )
    torch.set_num_threads(args.threads)
    if args.model == "cnn":
        metrics = tm.train_cnn(
            data / "train.zarr",
            data / "val.zarr",
            data / "test.zarr",
            out,
            seed=args.seed,
            extra=extra,
            max_epochs=args.epochs or 40,
            lr=args.lr or 1e-3,
            patience=args.patience,
            target_val_accuracy=args.target,
        )
        print(
            f"CNNSyn test accuracy {metrics['overall_accuracy']:.4f}; worst class "
            f"{metrics['worst_class']} {metrics['worst_class_accuracy']:.4f}"
        )
    elif args.model == "vae":
        metrics = tm.train_vae_model(
            data / "train.zarr",
            data / "test.zarr",
            out,
            seed=args.seed,
            epochs=args.epochs or 40,
            lr=args.lr or 1e-3,
            beta=args.beta,
            guide=args.guide,
        )
        print(
            f"VAE Spearman(progress, x) {metrics['spearman_progress_vs_x']:.4f}; line-distance"
            f" AUC {metrics['auc_line_distance_onpath_vs_damaged']:.4f}"
        )
    elif args.model == "mixed":
        from uedsteer.surrogates import transfer

        result = transfer.run_mixed_finetune(out, seed=args.seed, n_mixed=args.mixed_frames)
        print(json.dumps(result, indent=1))
        command = " ".join(["uedsteer", *sys.argv[1:]])
        tm._edit_card(out, lambda card: card["cnn_exp"]["mixed_stage"].update(command=command))
        print(f"wrote {out}")
        return 0
    else:
        from uedsteer.surrogates import transfer

        out.mkdir(parents=True, exist_ok=True)  # a new --out with another --base
        result = transfer.run_finetune(
            out, seed=args.seed, base=Path(args.base) if args.base else None
        )
        print(json.dumps(result, indent=1))
    section = {"cnn": "cnn_syn", "vae": "vae", "finetune": "cnn_exp"}[args.model]
    tm.note_command(out, section, " ".join(["uedsteer", *sys.argv[1:]]))
    print(f"wrote {out}")
    if (out / "scorer.json").is_file() and (out / "cnn_syn.pt").is_file():
        print(f"use it: FrameScorer.load({str(out)!r})")
    return 0


def _report(args: argparse.Namespace) -> int:
    from uedsteer.surrogates import report

    _check_frame_stores(args, "--data", [Path(args.data) / "test.zarr"], report.REPORT_LABELS)
    weights = Path(args.weights) if args.weights else None
    if weights is not None:
        missing = [
            name
            for name in ("scorer.json", "vae.pt", "reference.npy", "cnn_syn.pt")
            if not (weights / name).is_file()
        ]
        if missing:
            _fail(
                args,
                f"argument --weights: {args.weights!r} lacks {', '.join(missing)}; train into "
                f"it with `uedsteer train cnn --out {weights}` and `uedsteer train vae --out "
                f"{weights}`, or leave --weights out for the shipped models",
            )
    for path in report.report_models(Path(args.data), Path(args.out), weights=weights):
        print(f"wrote {path}")
    return 0


def _ipython(args: argparse.Namespace) -> int:
    from uedsteer.plans.session import start_ipython

    start_ipython(args.catalog, args.seed, ipython_args=args.ipython_args, api_key=args.api_key)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``uedsteer`` command."""
    parser = argparse.ArgumentParser(prog="uedsteer", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="one frame of each structural class as a PNG montage")
    p.add_argument("--out", default="demo_output", type=_out_folder, help="output folder")
    p.add_argument("--seed", type=_non_negative_int, default=0)
    p.set_defaults(func=_demo)

    p = sub.add_parser(
        "generate",
        help="synthetic UED frames (zarr) or random crystals' Bragg lists; resumable (Dask)",
    )
    p.add_argument(
        "what",
        nargs="?",
        default="frames",
        choices=["frames", "crystals"],
        help="frames: labelled MoTe2 UED frames; crystals: pyxtal crystals + Bragg lists",
    )
    p.add_argument(
        "--out",
        required=True,
        type=_out_folder,
        help="store folder, e.g. data/train.zarr; an existing store made with the same "
        "settings is resumed (frames: a larger --n-per-label extends it, the frames it holds "
        "unchanged)",
    )
    p.add_argument("--labels", default="all", help="frames: comma-separated labels or 'all'")
    p.add_argument("--n-per-label", type=_positive_int, default=100, help="frames per label (>= 1)")
    p.add_argument(
        "--n-materials", type=_positive_int, default=600, help="crystals: random materials (>= 1)"
    )
    p.add_argument("--seed", type=_non_negative_int, default=0, help="data seed (>= 0)")
    p.add_argument(
        "--chunk",
        type=_positive_int,
        default=None,
        help="frames (32, at most 4096) or materials (12, at most 1000) per chunk/task",
    )
    p.add_argument(
        "--workers", type=_positive_int, default=2, help="LocalCluster worker processes (>= 1)"
    )
    p.add_argument("--scheduler", default=None, help="address of an existing Dask scheduler")
    p.add_argument(
        "--set",
        action="append",
        type=_set_item,
        metavar="KEY=JSON",
        help="override a GeneratorSettings (frames) or CrystalGenSettings (crystals) field, "
        "e.g. rotation_deg=[-60,60] or zone_axes=10",
    )
    p.set_defaults(func=_generate)

    add_campaign_parser(sub)

    p = sub.add_parser("ipython", help="IPython with RunEngine, simulated beamline, plans, catalog")
    add_catalog_arguments(p)
    p.add_argument("--seed", type=int, default=0, help="seed of the simulated beamline")
    p.add_argument(
        "ipython_args",
        nargs=argparse.REMAINDER,
        help="passed to IPython after '--', e.g. -- --simple-prompt",
    )
    p.set_defaults(func=_ipython)

    p = sub.add_parser(
        "train",
        help="train the frame scorer's models or the crystal forests (weights + model card, "
        "into a user folder unless --out names another)",
    )
    p.add_argument("model", choices=["cnn", "vae", "finetune", "mixed", "crystal"])
    p.add_argument(
        "--data",
        default="data",
        help="folder with train/val/test.zarr; crystal: crystal store(s), comma-separated "
        "(default data/crystals)",
    )
    p.add_argument(
        "--out",
        default=None,
        type=_out_folder,
        help="cnn, vae, finetune, mixed: the weights folder, default the user folder "
        "~/.local/share/uedsteer/scorer ($UEDSTEER_DATA/scorer, else "
        "$XDG_DATA_HOME/uedsteer/scorer); once cnn and vae are trained there, load it with "
        "FrameScorer.load(DIR) or report it with `uedsteer report models --weights DIR`. The "
        "shipped weights (the package's surrogates/weights) change only when --out names "
        "that folder. crystal: the model folder, default ~/.local/share/uedsteer/crystal, "
        "which `uedsteer stem` loads (another with --model DIR)",
    )
    p.add_argument(
        "--report",
        default=None,
        type=_out_folder,
        help="crystal: metrics/PNG folder (default: --out)",
    )
    p.add_argument(
        "--extra-train",
        default=None,
        help="cnn: extra training stores, comma-separated (any subset of the classes, e.g. "
        "hard examples made with `uedsteer generate --labels ... --set ...`)",
    )
    p.add_argument(
        "--mixed-frames",
        type=_int_at_least(2),
        default=160,
        help="mixed: partially transformed beamline frames (half on hurt spots) added to the "
        "second fine-tuning stage of cnn_exp.pt",
    )
    p.add_argument(
        "--base",
        default=None,
        help="finetune: folder whose cnn_syn.pt is fine-tuned (default: --out's own CNNSyn); "
        "mixed: unused, it continues --out's cnn_exp.pt",
    )
    for name in ("system", "space_group", "lattice"):
        p.add_argument(
            f"--{name.replace('_', '-')}-trees",
            type=_positive_int,
            default=None,
            help=f"crystal: trees of the {name.replace('_', ' ')} forests (paper default)",
        )
    p.add_argument(
        "--q-range",
        nargs=2,
        type=float,
        metavar=("QMIN", "QMAX"),
        default=None,
        help="crystal: train on lists cropped to this |q| window, 0 <= QMIN < QMAX, 1/Å (UED "
        "frames: 0.16 1.3)",
    )
    p.add_argument(
        "--features",
        choices=["radial", "zone", "radial+zone"],
        default="radial",
        help="crystal: model inputs: the paper's radial basis (default), the zone-lattice and "
        "symmetry features (2-D reduced cell, rotation and mirror scores), or both",
    )
    p.add_argument(
        "--lattice-weights",
        choices=["cell-size", "none"],
        default="cell-size",
        help="crystal: weigh training patterns in the lattice regressors by 1/sqrt(atoms in "
        "the cell) (default; the generated stores hold mostly large cells) or equally",
    )
    p.add_argument(
        "--max-features",
        default=None,
        type=_max_features,
        help="crystal: features per split, 'all' (paper), 'sqrt', 'log2' or a fraction in (0, 1]",
    )
    p.add_argument("--seed", type=_non_negative_int, default=0, help="training seed (>= 0)")
    p.add_argument("--epochs", type=_positive_int, default=None, help="cnn, vae: epochs (40; >= 1)")
    p.add_argument(
        "--lr", type=_number(0, open_low=True), default=None, help="cnn, vae: learning rate (1e-3)"
    )
    p.add_argument(
        "--beta",
        type=_number(0),
        default=0.02,
        help="VAE KL weight, >= 0 (1 collapses the latent to a single dimension)",
    )
    p.add_argument(
        "--guide",
        type=_number(0),
        default=1.0,
        help="VAE latent guidance weight, >= 0 (0: the seed's unsupervised VAE)",
    )
    p.add_argument(
        "--patience", type=_positive_int, default=6, help="CNN early-stopping patience (>= 1)"
    )
    p.add_argument(
        "--target",
        type=_number(0, 1, open_low=True),
        default=0.999,
        help="CNN: stop at this validation accuracy, in (0, 1]",
    )
    p.add_argument("--threads", type=_positive_int, default=2, help="CPU threads (>= 1)")
    p.set_defaults(func=_train)

    p = sub.add_parser(
        "stem", help="simulated 4D-STEM scan of Au nanoparticles -> crystal-system/lattice maps"
    )
    p.add_argument("--nx", type=int, default=64)
    p.add_argument("--ny", type=int, default=64)
    p.add_argument("--seed", type=int, default=0, help="seed of the nanoparticle field")
    add_catalog_arguments(p)
    p.add_argument("--out", default="stem_output", type=_out_folder, help="folder for the PNG maps")
    p.add_argument(
        "--model",
        default=None,
        help="crystal model folder (default: ~/.local/share/uedsteer/crystal, where "
        "`uedsteer train crystal` writes; make it with `uedsteer generate crystals --out "
        "data/crystals` then `uedsteer train crystal --data data/crystals`)",
    )
    p.add_argument(
        "--lattice-system",
        default="cubic",
        help="lattice model for the map: a crystal system (paper: cubic) or per_pixel",
    )
    p.set_defaults(func=_stem)

    p = sub.add_parser("report", help="plots of the trained models (PNG)")
    p.add_argument("what", choices=["models"])
    p.add_argument("--data", default="data", help="folder with test.zarr (every label)")
    p.add_argument("--out", default="reports", type=_out_folder, help="output folder")
    p.add_argument(
        "--weights",
        default=None,
        help="scorer folder to report, e.g. the --out of `uedsteer train cnn` and `uedsteer "
        "train vae` (default: the shipped weights)",
    )
    p.set_defaults(func=_report)

    p = sub.add_parser("phonons", help="compute the MoTe2 phonon table (needs extra 'phonons')")
    p.add_argument(
        "--out", default=None, type=_out_file, help="the .npz file (default: the package data file)"
    )
    p.add_argument(
        "--supercell",
        type=_positive_int,
        nargs=3,
        default=(6, 6, 1),
        metavar=("NA", "NB", "NC"),
        help="phonopy supercell (each >= 1)",
    )
    p.set_defaults(func=_phonons)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``uedsteer`` command."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, OSError) as err:
        print(f"uedsteer {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"uedsteer {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
