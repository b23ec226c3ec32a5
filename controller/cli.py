"""The ``uedsteer`` command line: ``demo``, ``campaign``, ``generate``, ``ipython``, ``train``,
``report``, ``phonons``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def _demo(args: argparse.Namespace) -> int:
    from uedsteer.sim_devices import LABELS
    from uedsteer.sim_devices.dataset import generate_frames
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


def _overrides(items: list[str] | None) -> dict:
    overrides = {}
    for item in items or []:
        key, _, value = item.partition("=")
        if not _:
            raise SystemExit(f"--set {item!r}: expected KEY=VALUE (VALUE as JSON)")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            raise SystemExit(
                f"--set {item!r}: VALUE must be JSON, e.g. noise_level=[0,0.5]"
            ) from None
    return overrides


def _generate_crystals(args: argparse.Namespace) -> int:
    from uedsteer.sim_devices.crystal_dataset import (
        CrystalDatasetSpec,
        CrystalGenSettings,
        write_crystal_dataset,
    )

    spec = CrystalDatasetSpec(
        n_materials=args.n_materials,
        seed=args.seed,
        chunk=args.chunk or 12,
        settings=CrystalGenSettings(**_overrides(args.set)),
    )
    out = write_crystal_dataset(args.out, spec, scheduler=args.scheduler, n_workers=args.workers)
    print(f"wrote {out}")
    return 0


def _generate(args: argparse.Namespace) -> int:
    from uedsteer.sim_devices import LABELS
    from uedsteer.sim_devices.dataset import DatasetSpec, GeneratorSettings, write_dataset

    if args.what == "crystals":
        return _generate_crystals(args)
    overrides = _overrides(args.set)
    labels = LABELS if args.labels == "all" else tuple(args.labels.split(","))
    spec = DatasetSpec(
        labels=labels,
        n_per_label=args.n_per_label,
        seed=args.seed,
        chunk=args.chunk or 32,
        settings=GeneratorSettings(**overrides),
    )
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


def _max_features(value: str) -> str | float | None:
    if value == "all":
        return None
    if value in ("sqrt", "log2"):
        return value
    try:
        frac = float(value)
    except ValueError:
        frac = -1.0
    if not 0 < frac <= 1:
        raise SystemExit(f"--max-features {value!r}: use 'all', 'sqrt', 'log2' or a fraction")
    return frac


def _train_crystal(args: argparse.Namespace) -> int:
    import sys

    from uedsteer.sim_devices.crystal_dataset import concatenate_datasets, load_crystal_dataset
    from uedsteer.surrogates.crystal.train import format_metrics, train_crystal

    paths = (args.data if args.data != "data" else "data/crystals").split(",")
    data = concatenate_datasets([load_crystal_dataset(Path(p)) for p in paths])
    params = {}
    for name in ("system", "space_group", "lattice"):
        trees = getattr(args, f"{name}_trees")
        if trees is not None:
            params[f"{name}_params"] = {"n_estimators": trees}
    if args.max_features is not None:
        for name in ("system", "space_group", "lattice"):
            params.setdefault(f"{name}_params", {})["max_features"] = _max_features(
                args.max_features
            )
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
    from bluesky import RunEngine

    from uedsteer.plans.catalog import local_catalog, subscribe
    from uedsteer.plans.stem import bragg_lists_from_run, raster_scan
    from uedsteer.sim_devices.stem import NanoparticleField, StemMicroscope
    from uedsteer.surrogates.crystal.maps import crystal_maps, plot_crystal_maps
    from uedsteer.surrogates.crystal.predictor import CrystalPredictor

    predictor = CrystalPredictor.load(args.model)  # fails early, with how to train
    field = NanoparticleField(nx=args.nx, ny=args.ny, seed=args.seed)
    microscope = StemMicroscope(field=field)
    catalog = local_catalog(args.catalog)
    RE = RunEngine({})
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


def _train(args: argparse.Namespace) -> int:
    if args.model == "crystal":
        return _train_crystal(args)
    import torch

    from uedsteer.surrogates import train_models as tm

    torch.set_num_threads(args.threads)
    out = Path(args.out) if args.out else tm.default_weights_dir()
    data = Path(args.data)
    if args.model == "cnn":
        metrics = tm.train_cnn(
            data / "train.zarr",
            data / "val.zarr",
            data / "test.zarr",
            out,
            seed=args.seed,
            extra=[Path(e) for e in args.extra_train.split(",")] if args.extra_train else (),
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

        result = transfer.run_finetune(
            out, seed=args.seed, base=Path(args.base) if args.base else None
        )
        print(json.dumps(result, indent=1))
    section = {"cnn": "cnn_syn", "vae": "vae", "finetune": "cnn_exp"}[args.model]
    tm.note_command(out, section, " ".join(["uedsteer", *sys.argv[1:]]))
    print(f"wrote {out}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from uedsteer.surrogates import report

    for path in report.report_models(Path(args.data), Path(args.out)):
        print(f"wrote {path}")
    return 0


def _campaign(args: argparse.Namespace) -> int:
    import warnings

    from bluesky import RunEngine
    from bluesky.utils import RunEngineInterrupted

    from uedsteer.controller.campaign import SETTING_UNITS, Campaign
    from uedsteer.controller.config import CampaignConfig
    from uedsteer.controller.plots import campaign_plots
    from uedsteer.plans.catalog import local_catalog
    from uedsteer.plans.simulate import simulate_campaign
    from uedsteer.sim_devices.response import ResponseParams
    from uedsteer.surrogates.scorer import FrameScorer

    warnings.filterwarnings("ignore", module="botorch|gpytorch|linear_operator")
    try:
        cfg = CampaignConfig.from_yaml(args.config) if args.config else CampaignConfig()
    except Exception as err:  # pydantic names the field
        raise SystemExit(f"--config {args.config}: {err}") from None
    if args.budget is not None:
        cfg = cfg.model_copy(update={"budget": args.budget})
        CampaignConfig.model_validate(cfg.model_dump())
    response = ResponseParams() if args.sample is None else ResponseParams.random(args.sample)
    catalog = local_catalog(args.catalog)
    scorer = FrameScorer.pretrained()
    if args.resume:
        camp = Campaign.resume(catalog, args.resume, config=cfg if args.budget else None)
        print(f"resuming {args.resume}: {len(camp.record)} shots recorded")
    else:
        camp = Campaign(cfg)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(
        f"simulated sample: {'defaults' if args.sample is None else f'random({args.sample})'}"
        f"; budget {cfg.budget} shots; catalog {args.catalog}"
    )
    # steered charge or delay get a column of their own
    extra = [p.name for p in cfg.parameters if p.name in ("charge", "delay")]
    symbol = {"charge": "Q", "delay": "t"}
    heads = {k: f"{symbol[k]} ({SETTING_UNITS[k]})" for k in extra}
    print(
        f"{'shot':>4} {'spot':>4} {'fluence':>8} {'λ (nm)':>7} "
        + "".join(f"{heads[k]:>8} " for k in extra)
        + f"{'class':>12} {'progress':>8} {'damage':>7} {'heating':>8} {'action':>8}  why"
    )

    def show(t) -> None:
        s = t.scores
        cls = "invalid" if t.status != "ok" else _class_name(s)
        print(
            f"{t.index:4d} {t.spot:4d} {t.settings['fluence']:8.2f} "
            f"{t.settings['wavelength']:7.0f} "
            + "".join(f"{t.settings[k]:8.1f} " for k in extra)
            + f"{cls:>12} {s['progress']:8.3f} {s['damage_prob']:7.3f} {s['heating']:8.4f}"
            f" {t.action:>8}  {t.proposal.get('mode', '')}",
            flush=True,
        )

    RE = RunEngine({}, call_returns_result=True)
    try:
        simulate_campaign(
            cfg,
            response,
            seed=args.seed,
            scorer=scorer,
            catalog=catalog,
            on_shot=show,
            RE=RE,
            controller=camp,
        )
    except RunEngineInterrupted:
        RE.abort("user interrupt")  # the plan's finalizer closes the shutter
        camp.stop("user interrupt (shutter closed; resume with --resume UID)")
    run = catalog.values().last()
    df = camp.record.to_dataframe()
    ok = df[df["status"] == "ok"]
    print(f"\nstop: {camp.record.stop_reason}")
    print(f"run uid: {run.metadata['start']['uid']}")
    if len(ok):
        best = ok.loc[ok["objective"].idxmax()]
        print(
            f"shots {len(df)} (failed {int((df['status'] != 'ok').sum())}); best "
            f"{cfg.objective} {best['objective']:.3f} at fluence {best['fluence']:.2f} mJ/cm², "
            f"wavelength {best['wavelength']:.0f} nm (shot {int(best['shot'])}); max damage "
            f"probability {ok['damage_prob'].max():.3f}; median proposal "
            f"{1000 * np.median(camp.proposal_seconds or [0]):.0f} ms"
        )
    if "truth_x" in df:  # simulated shots of this process (a resumed record has none before)
        sim = df[df["truth_x"].notna()]
        molten = sim["truth_molten"].astype(bool)
        succ = (sim["truth_x"] >= 0.8) & (sim["truth_vacancy"] < 0.02) & ~molten
        dmg = (sim["truth_vacancy"] >= 0.05) | molten
        print(
            f"hidden truth (simulation only, {len(sim)} shots): first success at shot "
            f"{int(sim['shot'][succ].iloc[0]) if succ.any() else 'none'}; damage events "
            f"{int(dmg.sum())}"
        )
    df.to_csv(out / "campaign.csv", index=False)
    for path in campaign_plots(camp, scorer.line, out):
        print(f"wrote {path}")
    print(f"wrote {out / 'campaign.csv'}")
    return 0


def _class_name(scores: dict) -> str:
    from uedsteer.sim_devices.classes import CLASSES

    k = int(scores.get("predicted_class", -1))
    return CLASSES[k] if 0 <= k < len(CLASSES) else "invalid"


def _ipython(args: argparse.Namespace) -> int:
    from uedsteer.plans.session import start_ipython

    start_ipython(args.catalog, args.seed, ipython_args=args.ipython_args)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``uedsteer`` command."""
    parser = argparse.ArgumentParser(prog="uedsteer", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="one frame of each structural class as a PNG montage")
    p.add_argument("--out", default="demo_output", help="output folder")
    p.add_argument("--seed", type=int, default=0)
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
    p.add_argument("--out", required=True, help="store path, e.g. data/train.zarr")
    p.add_argument("--labels", default="all", help="frames: comma-separated labels or 'all'")
    p.add_argument("--n-per-label", type=int, default=100, help="frames per label")
    p.add_argument("--n-materials", type=int, default=600, help="crystals: random materials")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--chunk", type=int, default=None, help="frames (32) or materials (12) per chunk/task"
    )
    p.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes")
    p.add_argument("--scheduler", default=None, help="address of an existing Dask scheduler")
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=JSON",
        help="override a GeneratorSettings (frames) or CrystalGenSettings (crystals) field, "
        "e.g. rotation_deg=[-60,60] or zone_axes=10",
    )
    p.set_defaults(func=_generate)

    p = sub.add_parser("campaign", help="closed-loop simulated campaign on the local catalog")
    p.add_argument("--config", help="campaign YAML (fields of CampaignConfig)")
    p.add_argument("--budget", type=int, help="shot budget (overrides the config)")
    p.add_argument("--sample", type=int, help="ResponseParams.random(SAMPLE) instead of defaults")
    p.add_argument("--seed", type=int, default=0, help="seed of the simulated beamline")
    p.add_argument("--catalog", default="uedsteer_catalog", help="local catalog folder")
    p.add_argument("--out", default="campaign_output", help="folder for plots and the table")
    p.add_argument("--resume", metavar="UID", help="continue the campaign of run UID")
    p.set_defaults(func=_campaign)

    p = sub.add_parser("ipython", help="IPython with RunEngine, simulated beamline, plans, catalog")
    p.add_argument("--catalog", default="uedsteer_catalog", help="catalog folder or Tiled URI")
    p.add_argument("--seed", type=int, default=0, help="seed of the simulated beamline")
    p.add_argument(
        "ipython_args",
        nargs=argparse.REMAINDER,
        help="passed to IPython after '--', e.g. -- --simple-prompt",
    )
    p.set_defaults(func=_ipython)

    p = sub.add_parser("train", help="train the frame scorer's models (writes weights + card)")
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
        help="default: the package's weights folder; crystal: the user data directory",
    )
    p.add_argument("--report", default=None, help="crystal: metrics/PNG folder (default: --out)")
    p.add_argument(
        "--extra-train",
        default=None,
        help="cnn: extra training stores, comma-separated (any subset of the classes, e.g. "
        "hard examples made with `uedsteer generate --labels ... --set ...`)",
    )
    p.add_argument(
        "--mixed-frames",
        type=int,
        default=160,
        help="mixed: partially transformed beamline frames (half on hurt spots) added to the "
        "second fine-tuning stage of cnn_exp.pt",
    )
    p.add_argument(
        "--base",
        default=None,
        help="finetune: folder whose cnn_syn.pt is fine-tuned (default: --out's own CNNSyn)",
    )
    for name in ("system", "space_group", "lattice"):
        p.add_argument(
            f"--{name.replace('_', '-')}-trees",
            type=int,
            default=None,
            help=f"crystal: trees of the {name.replace('_', ' ')} forests (paper default)",
        )
    p.add_argument(
        "--q-range",
        nargs=2,
        type=float,
        metavar=("QMIN", "QMAX"),
        default=None,
        help="crystal: train on lists cropped to this |q| window, 1/Å (UED frames: 0.16 1.3)",
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
        help="crystal: features per split, 'all' (paper), 'sqrt' or a fraction",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument(
        "--beta",
        type=float,
        default=0.02,
        help="VAE KL weight (1 collapses the latent to a single dimension)",
    )
    p.add_argument(
        "--guide",
        type=float,
        default=1.0,
        help="VAE latent guidance weight (0: the seed's unsupervised VAE)",
    )
    p.add_argument("--patience", type=int, default=6, help="CNN early-stopping patience")
    p.add_argument(
        "--target", type=float, default=0.999, help="CNN: stop at this validation accuracy"
    )
    p.add_argument("--threads", type=int, default=2)
    p.set_defaults(func=_train)

    p = sub.add_parser(
        "stem", help="simulated 4D-STEM scan of Au nanoparticles -> crystal-system/lattice maps"
    )
    p.add_argument("--nx", type=int, default=64)
    p.add_argument("--ny", type=int, default=64)
    p.add_argument("--seed", type=int, default=0, help="seed of the nanoparticle field")
    p.add_argument("--catalog", default="uedsteer_catalog", help="local Tiled catalog folder")
    p.add_argument("--out", default="stem_output", help="folder for the PNG maps")
    p.add_argument("--model", default=None, help="crystal model folder (default: user cache)")
    p.add_argument(
        "--lattice-system",
        default="cubic",
        help="lattice model for the map: a crystal system (paper: cubic) or per_pixel",
    )
    p.set_defaults(func=_stem)

    p = sub.add_parser("report", help="plots of the trained models (PNG)")
    p.add_argument("what", choices=["models"])
    p.add_argument("--data", default="data", help="folder with test.zarr")
    p.add_argument("--out", default="reports", help="output folder")
    p.set_defaults(func=_report)

    p = sub.add_parser("phonons", help="compute the MoTe2 phonon table (needs extra 'phonons')")
    p.add_argument("--out", default=None, help="default: the package data file")
    p.add_argument("--supercell", type=int, nargs=3, default=(6, 6, 1))
    p.set_defaults(func=_phonons)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``uedsteer`` command."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ValueError as err:
        print(f"uedsteer {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
