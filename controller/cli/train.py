"""``uedsteer train``: the frame scorer's models (``cnn``, ``vae``, ``finetune``, ``mixed``) or
the crystal forests (``crystal``). Every input is checked before any work; the weights and the
model card go to a user folder unless ``--out`` names another, and the card records the command
that made them."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from .arguments import (
    check_frame_stores,
    int_at_least,
    non_negative_int,
    number,
    out_folder,
    oversample,
    positive_int,
)
from .errors import fail


def add_parser(sub: Any) -> None:
    """The ``train`` sub-command's arguments."""
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
        type=out_folder,
        help="cnn, vae, finetune, mixed: the weights folder, default the user folder "
        "~/.local/share/uedsteer/scorer ($UEDSTEER_DATA/scorer, else "
        "$XDG_DATA_HOME/uedsteer/scorer); once cnn and vae are trained there, load it with "
        "FrameScorer.load(DIR) or report it with `uedsteer report models --weights DIR`. The "
        "shipped weights (the package's surrogates/weights) change only when --out names "
        "that folder. crystal: the model folder, default ~/.local/share/uedsteer/crystal, "
        "which CrystalPredictor.load() and `uedsteer stem` prefer to the shipped model (the "
        "package's surrogates/crystal/model, changed only when --out names it: `make "
        "crystal-model`)",
    )
    p.add_argument(
        "--report",
        default=None,
        type=out_folder,
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
        type=int_at_least(2),
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
            type=positive_int,
            default=None,
            help=f"crystal: trees of the {name.replace('_', ' ')} forests (the preset's)"
            + (" (--estimators paper: the compact one is boosted)" if name == "system" else ""),
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
        default="zone",
        help="crystal: model inputs: the zone-lattice and symmetry features (default: 2-D "
        "reduced cell, rotation and mirror scores, ring profile; 0.47 single-pattern accuracy "
        "where the radial basis reads 0.33), the paper's radial basis, or both",
    )
    p.add_argument(
        "--estimators",
        choices=["compact", "paper"],
        default="compact",
        help="crystal: 'compact' (default: a gradient-boosted crystal-system classifier and "
        "forests with a few patterns a leaf; a few MB, as accurate) or 'paper' (the paper's "
        "forests, grown without limit: ~25 KB a training pattern)",
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
        help="crystal: features per split of the forests, 'all' (paper), 'sqrt', 'log2' or a "
        "fraction in (0, 1]",
    )
    p.add_argument(
        "--position-jitter",
        type=number(0),
        default=0.0,
        metavar="RMS",
        help="crystal: train on lists whose spot positions carry a Gaussian error, its rms per "
        "coordinate drawn per list from 0 to RMS 1/Å (>= 0; default 0: the exact simulated "
        "positions). A model trained on exact lists reads measured ones far worse",
    )
    p.add_argument("--seed", type=non_negative_int, default=0, help="training seed (>= 0)")
    p.add_argument(
        "--oversample",
        type=oversample,
        default=1,
        help="finetune: samples per pixel edge of the beamline frames (odd; 1: point samples, "
        "as the shipped scorer's; 3: pixels integrated as a detector does)",
    )
    p.add_argument("--epochs", type=positive_int, default=None, help="cnn, vae: epochs (40; >= 1)")
    p.add_argument(
        "--lr", type=number(0, open_low=True), default=None, help="cnn, vae: learning rate (1e-3)"
    )
    p.add_argument(
        "--beta",
        type=number(0),
        default=0.02,
        help="VAE KL weight, >= 0 (1 collapses the latent to a single dimension)",
    )
    p.add_argument(
        "--guide",
        type=number(0),
        default=1.0,
        help="VAE latent guidance weight, >= 0 (0: the seed's unsupervised VAE)",
    )
    p.add_argument(
        "--patience", type=positive_int, default=6, help="CNN early-stopping patience (>= 1)"
    )
    p.add_argument(
        "--target",
        type=number(0, 1, open_low=True),
        default=0.999,
        help="CNN: stop at this validation accuracy, in (0, 1]",
    )
    p.add_argument("--threads", type=positive_int, default=2, help="CPU threads (>= 1)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``uedsteer train MODEL``."""
    if args.model == "crystal":
        return _train_crystal(args)
    import torch

    from uedsteer.surrogates import train_models as tm

    out = Path(args.out) if args.out else tm.default_weights_dir()
    extra = [Path(e) for e in args.extra_train.split(",")] if args.extra_train else []
    _check_scorer_inputs(args, out, extra)  # every input is checked before any work
    torch.set_num_threads(args.threads)
    if args.model == "mixed":
        _mixed(args, out)
        return 0
    if args.model == "cnn":
        _cnn(args, out, extra)
    elif args.model == "vae":
        _vae(args, out)
    else:
        _finetune(args, out)
    section = {"cnn": "cnn_syn", "vae": "vae", "finetune": "cnn_exp"}[args.model]
    tm.note_command(out, section, _command(args))
    print(f"wrote {out}")
    if (out / "scorer.json").is_file() and (out / "cnn_syn.pt").is_file():
        print(f"use it: FrameScorer.load({str(out)!r})")
    return 0


def _command(args: argparse.Namespace) -> str:
    """The command line as the user typed it (or as ``main`` was given it), for the model
    card."""
    return " ".join(["uedsteer", *getattr(args, "argv", sys.argv[1:])])


def _check_scorer_inputs(args: argparse.Namespace, out: Path, extra: list[Path]) -> None:
    """Stop with one line unless the stores or weights the model trains from are there."""
    from uedsteer.surrogates import train_models as tm

    data = Path(args.data)
    if args.model == "cnn":
        check_frame_stores(args, "--data", [data / f"{s}.zarr" for s in ("train", "val", "test")])
        check_frame_stores(args, "--extra-train", extra)
    elif args.model == "vae":
        stores = [data / "train.zarr", data / "test.zarr"]
        check_frame_stores(args, "--data", stores, tm.VAE_LABELS)
    elif args.model == "finetune":
        base = Path(args.base) if args.base else out
        if not (base / "cnn_syn.pt").is_file():
            option = "--base" if args.base else "--out"
            fail(
                args,
                f"argument {option}: {str(base)!r} holds no cnn_syn.pt to fine-tune; train one "
                f"first with `uedsteer train cnn --out {base}`"
                + ("" if args.base else ", or name another folder with --base DIR"),
            )
    elif not (out / "cnn_exp.pt").is_file():  # mixed
        fail(
            args,
            f"argument --out: {str(out)!r} holds no cnn_exp.pt for the mixed stage; make it "
            f"first with `uedsteer train finetune --out {out}`",
        )


def _cnn(args: argparse.Namespace, out: Path, extra: list[Path]) -> None:
    """CNNSyn on the synthetic train/val/test stores (and any ``--extra-train`` stores)."""
    from uedsteer.surrogates import train_models as tm

    data = Path(args.data)
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


def _vae(args: argparse.Namespace, out: Path) -> None:
    """The VAE on the synthetic train/test stores."""
    from uedsteer.surrogates import train_models as tm

    data = Path(args.data)
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


def _finetune(args: argparse.Namespace, out: Path) -> None:
    """CNNExp: ``--base``'s (or ``--out``'s) CNNSyn fine-tuned on beamline frames."""
    from uedsteer.surrogates import transfer

    out.mkdir(parents=True, exist_ok=True)  # a new --out with another --base
    base = Path(args.base) if args.base else None
    result = transfer.run_finetune(out, seed=args.seed, base=base, oversample=args.oversample)
    print(json.dumps(result, indent=1))


def _mixed(args: argparse.Namespace, out: Path) -> None:
    """The mixed second stage of ``--out``'s CNNExp; the card's ``mixed_stage`` notes the
    command."""
    from uedsteer.surrogates import train_models as tm
    from uedsteer.surrogates import transfer

    result = transfer.run_mixed_finetune(out, seed=args.seed, n_mixed=args.mixed_frames)
    print(json.dumps(result, indent=1))
    command = _command(args)
    tm._edit_card(out, lambda card: card["cnn_exp"]["mixed_stage"].update(command=command))
    print(f"wrote {out}")


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
    """The crystal-system, space-group and lattice forests on one or more crystal stores."""
    from uedsteer.sim_devices.crystals.dataset import concatenate_datasets, load_crystal_dataset

    paths = _check_crystal_inputs(args)
    from uedsteer.surrogates.crystal.evaluation import format_metrics
    from uedsteer.surrogates.crystal.train import train_crystal

    data = concatenate_datasets([load_crystal_dataset(Path(p)) for p in paths])
    print(f"{len(data)} Bragg lists of {len(np.unique(data.material))} materials from {args.data}")
    _, metrics = train_crystal(
        data,
        out=args.out,
        report=args.report,
        seed=args.seed,
        n_jobs=args.threads,
        command=_command(args),
        q_range=tuple(args.q_range) if args.q_range else None,
        features=args.features,
        lattice_weighting=args.lattice_weights.replace("-", "_"),
        estimators=args.estimators,
        position_jitter=args.position_jitter,
        **_forest_params(args),
    )
    print(format_metrics(metrics))
    print(f"model: {metrics['model_folder']} (card: MODEL_CARD.md)")
    return 0


def _check_crystal_inputs(args: argparse.Namespace) -> list[str]:
    """The crystal stores to train on; stop with one line at a bad ``--q-range`` or store."""
    from uedsteer.sim_devices.crystals.store import check_crystal_store

    if args.system_trees is not None and args.estimators == "compact":
        fail(
            args,
            "argument --system-trees: the compact preset's crystal-system classifier is "
            "gradient-boosted and has no forest; use --estimators paper with it",
        )
    if args.q_range is not None:
        qmin, qmax = args.q_range
        if not (0 <= qmin < qmax and np.isfinite(qmax)):
            fail(
                args,
                f"argument --q-range: {qmin:g} {qmax:g} is not allowed: use 0 <= QMIN < QMAX "
                "(1/Å), e.g. 0.16 1.3",
            )
    paths = (args.data if args.data != "data" else "data/crystals").split(",")
    for path in paths:  # every store before any work
        try:
            check_crystal_store(Path(path))
        except FileNotFoundError as err:
            fail(
                args,
                f"argument --data: {err} (≈ 5–20 min for --n-materials 1000 on 2 cores), then run "
                "this command again (≈ 2–10 min), then `CrystalPredictor.load()` and `uedsteer "
                "stem` use the model it writes (without one they use the model shipped with "
                "uedsteer)",
            )
        except ValueError as err:
            fail(args, f"argument --data: {err}")
    return paths


def _forest_params(args: argparse.Namespace) -> dict[str, dict]:
    """``--*-trees`` and ``--max-features`` as the forests' keyword arguments."""
    params: dict[str, dict] = {}
    for name in ("system", "space_group", "lattice"):
        trees = getattr(args, f"{name}_trees")
        if trees is not None:
            params[f"{name}_params"] = {"n_estimators": trees}
    if args.max_features is not None:
        mf = args.max_features
        value = None if mf == "all" else mf if mf in ("sqrt", "log2") else float(mf)
        forests = ("space_group", "lattice") if args.estimators == "compact" else ()
        for name in forests or ("system", "space_group", "lattice"):
            params.setdefault(f"{name}_params", {})["max_features"] = value
    return params
