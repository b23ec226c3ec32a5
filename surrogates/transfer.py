"""CNNExp: fine-tune CNNSyn on a small labelled set of the beamline's own frames.

The simulated beamline's detector (``BEAMLINE_DETECTOR``: σ = 3 px PSF, beam stop 0.12 1/Å,
readout noise 2 counts, its own space-charge slope) differs from the training generator's.
``run_finetune`` labels 77 frames rendered through that detector (the seed used 77
experimental frames), fine-tunes all layers at 0.1× the learning rate, and measures on fresh
beamline frames: accuracy of CNNSyn vs CNNExp, and class flips within 10 ps windows along a
delay scan of the simulated beamline (the seed's Fig. 4).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from uedsteer.sim_devices.beamline import BEAMLINE_DETECTOR, FrameRenderer, SimulatedBeamline
from uedsteer.sim_devices.frames import generate_frames
from uedsteer.sim_devices.materials import Material, get_material
from uedsteer.sim_devices.physics.difference import reference_pattern
from uedsteer.sim_devices.response import ShotState, site_vacancy_state

from .cnn import load_uednet
from .preprocess import cnn_input
from .train_models import update_card
from .training import fine_tune, predict_logits

EVAL_PER_CLASS = 100


def finetune_per_class(material: str | Material | None = None) -> tuple[int, ...]:
    """Labelled frames per class for fine-tuning: 10 each, 7 of the last class (MoTe2's eight
    classes: 77 frames, as in the seed)."""
    n = len(get_material(material).classes)
    return (10,) * (n - 1) + (7,)


FINETUNE_PER_CLASS = finetune_per_class()
"""The default material's :func:`finetune_per_class` (MoTe2: 10 × 7 + 7 = 77 frames)."""


def beamline_frames(
    label: str, n: int, seed: int, material: str | Material | None = None, oversample: int = 1
) -> np.ndarray:
    """Frames of a class rendered through the simulated beamline's detector (``oversample``:
    samples per pixel edge, see :class:`~uedsteer.sim_devices.frames.GeneratorSettings`)."""
    frames, _ = generate_frames(
        label,
        n,
        seed=seed,
        material=material,
        detector=BEAMLINE_DETECTOR,
        noise_level=(0.1, 0.1),
        oversample=oversample,
    )
    return frames


def _labelled(per_class, seed: int, reference: np.ndarray, material=None, oversample: int = 1):
    xs, ys = [], []
    classes = get_material(material).class_names
    for k, (label, n) in enumerate(zip(classes, per_class, strict=True)):
        xs.append(cnn_input(beamline_frames(label, n, seed, material, oversample), reference))
        ys.append(torch.full((n,), k, dtype=torch.long))
    return torch.cat(xs), torch.cat(ys)


def _base_record(path: Path, separate: bool) -> dict:
    """Which CNNSyn was fine-tuned: file hash and, when known, how it was trained."""
    record = {
        "file": "cnn_syn.pt of a separate folder" if separate else "cnn_syn.pt of this folder",
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
    }
    card = path.parent / "model_card.json"
    if separate and card.is_file():
        section = json.loads(card.read_text()).get("cnn_syn", {})
        record.update({k: section[k] for k in ("command", "data", "test_metrics") if k in section})
    return record


def delay_scan_flips(
    models: dict,
    reference: np.ndarray,
    seed: int,
    material: str | Material | None = None,
    oversample: int = 1,
) -> dict:
    """Class flips per 10 ps window along a delay scan on the simulated beamline."""
    classes = get_material(material).class_names
    renderer = FrameRenderer(material=material, oversample=oversample)
    bl = SimulatedBeamline(seed=seed, renderer=renderer)
    bl.pump.fluence.set(5.0).wait(1)
    bl.pump.wavelength.set(800.0).wait(1)
    bl.pump.shutter.set("open").wait(1)
    delays = np.arange(-5.0, 55.0, 0.5)
    frames = []
    for d in delays:
        bl.delay.delay.set(float(d)).wait(1)
        bl.detector.trigger().wait(5)
        frames.append(bl.detector.image.get().copy())
    bl.pump.shutter.set("closed").wait(1)
    x = cnn_input(np.stack(frames), reference)
    out = {}
    for name, model in models.items():
        pred = predict_logits(model, x).argmax(1).numpy()
        windows = [(delays >= t) & (delays < t + 10) for t in np.arange(-5, 55, 10)]
        flips = [int(np.sum(pred[w][1:] != pred[w][:-1])) for w in windows]
        out[name] = {
            "flips_per_10ps_window": flips,
            "mean_flips": float(np.mean(flips)),
            "classes_seen": sorted({classes[k] for k in pred}),
        }
    return out


def run_finetune(
    out: Path,
    seed: int = 0,
    base: Path | None = None,
    material: str | Material | None = None,
    oversample: int = 1,
) -> dict:
    """Fine-tune a CNNSyn into CNNExp and write ``out/cnn_exp.pt`` and its card section.

    Parameters
    ----------
    out : Path
        Scorer folder that receives ``cnn_exp.pt``; its ``cnn_syn.pt`` is the starting point
        unless ``base`` is given.
    seed : int
        Seeds the labelled beamline frames (seed + 900 … 903) and the fine-tuning.
    base : Path, optional
        Folder whose ``cnn_syn.pt`` is fine-tuned instead (e.g. the CNNSyn the campaign was
        validated with). Its file hash and training command are recorded in the card, and
        ``out``'s own CNNSyn is evaluated on the same beamline frames for comparison.
    material : str or Material, optional
        The material the CNN classifies (default MoTe2).
    oversample : int
        Samples per pixel edge of every beamline frame (1: point samples, as the shipped
        scorer's; 3: pixels integrated, see ``physics.pixel_intensity``); recorded in the card.
    """
    m = get_material(material)
    n_classes = len(m.classes)
    base_dir = Path(base) if base is not None else Path(out)
    base_file = base_dir / "cnn_syn.pt"
    if not base_file.is_file():
        raise FileNotFoundError(
            f"base={str(base_dir)!r} holds no cnn_syn.pt: train one with `uedsteer train cnn`"
        )
    syn = load_uednet(base_file, n_classes)
    models = {"cnn_syn": syn}
    if base is not None and (Path(out) / "cnn_syn.pt").is_file():
        models = {
            "base_cnn_syn": syn,
            "cnn_syn": load_uednet(Path(out) / "cnn_syn.pt", n_classes),
        }
    reference = reference_pattern(beamline_frames(m.reference_class, 8, seed + 900, m, oversample))
    x_ft, y_ft = _labelled(finetune_per_class(m), seed + 901, reference, m, oversample)
    x_ev, y_ev = _labelled((EVAL_PER_CLASS,) * n_classes, seed + 902, reference, m, oversample)
    exp = fine_tune(syn, x_ft, y_ft, lr_scale=0.1, seed=seed)
    models["cnn_exp"] = exp
    acc = {
        name: float((predict_logits(m, x_ev).argmax(1) == y_ev).float().mean())
        for name, m in models.items()
    }
    flips = delay_scan_flips(models, reference, seed + 903, m, oversample)
    torch.save(exp.state_dict(), out / "cnn_exp.pt")
    result = {
        "finetune_frames": int(len(y_ft)),
        "eval_frames": int(len(y_ev)),
        "beamline_accuracy": acc,
        "delay_scan": flips,
    }
    update_card(
        out,
        "cnn_exp",
        {
            "method": "all layers retrained at 0.1 x lr (Adam 1e-4), 20 epochs, batch 16",
            "base": _base_record(base_file, base is not None),
            "data": {
                "finetune_seed": seed + 901,
                "eval_seed": seed + 902,
                "reference_seed": seed + 900,
                "delay_scan_seed": seed + 903,
                "detector": BEAMLINE_DETECTOR.model_dump(),
                "oversample": oversample,
            },
            **result,
        },
    )
    return result


MIXED_X = (0.1, 0.7)  # 1T' fractions of the mixed frames: where a campaign climbs at the band
MIXED_VACANCY = (0.02, 0.12)  # site vacancy of the hurt half (a success needs < 0.02)


def mixed_frames(
    n: int,
    rng: np.random.Generator,
    reference: np.ndarray,
    material: str | Material | None = None,
):
    """Partially transformed beamline frames, every second one on a hurt spot, with labels.

    Rendered by the simulated beamline's :class:`FrameRenderer` (its detector), x uniform in
    ``MIXED_X``, thermal rms 0.06–0.1 Å, bunch charge log-uniform 10–40 fC; the hurt ones
    carry a site vacancy uniform in ``MIXED_VACANCY`` (Mo = 0.4 × Te, the response model's
    ratio). Labels: ``vacancy_2H`` / ``vacancy_1Tp`` for hurt frames and ``phonon_2H`` /
    ``phonon_1Tp`` for intact ones, by x below or above 0.5 (what the network already calls
    intact mixed frames); for another material the vacancy and phonon classes of the path's
    nearer end. Returns pooled difference images (n, 2, 87, 87) and labels (n,).
    """
    m = get_material(material)
    renderer = FrameRenderer(material=m)
    frames, labels = [], []
    for i in range(n):
        x = rng.uniform(*MIXED_X)
        hurt = i % 2 == 1
        vacancy = rng.uniform(*MIXED_VACANCY) if hurt else 0.0
        state = site_vacancy_state(x, vacancy, rng.uniform(0.06, 0.1))
        charge = float(np.exp(rng.uniform(np.log(10.0), np.log(40.0))))
        frames.append(renderer.render(state, charge, rng))
        side = m.phases[0] if x < 0.5 else m.phases[1]
        label = m.classes_of("vacancy" if hurt else "phonon", side)[0]
        labels.append(m.class_names.index(label))
    return cnn_input(np.stack(frames), reference), torch.tensor(labels)


def _mixed_metrics(model, x: torch.Tensor, y: torch.Tensor, material=None) -> dict:
    damage = list(get_material(material).damage_classes)
    with torch.no_grad():
        p = torch.softmax(predict_logits(model, x), 1)[:, damage].sum(1)
    hurt = torch.isin(y, torch.tensor(damage))
    return {
        "intact_read_as_damage": float((p[~hurt] >= 0.5).float().mean()),
        "hurt_read_as_damage": float((p[hurt] >= 0.5).float().mean()),
    }


def run_mixed_finetune(
    out: Path, seed: int = 0, n_mixed: int = 160, material: str | Material | None = None
) -> dict:
    """Teach CNNExp to see vacancies on partially transformed frames (a second stage).

    The shipped classes hold vacancies only on pure 2H and pure 1T' lattices, so a spot with
    vacancy 0.05 read intact at x ≈ 0.3–0.5 (``benchmarks/bench_damage_sensitivity.py``),
    where a campaign climbs at the resonant band. This fine-tunes ``out/cnn_exp.pt`` (all
    layers, 0.1× lr, 20 epochs) on 77 labelled beamline frames of the eight classes
    (seed + 1901, so the classes are not forgotten) plus ``n_mixed`` :func:`mixed_frames`,
    measures old and new on 100 fresh beamline frames a class (seed + 902) and 120 fresh
    mixed frames, overwrites ``out/cnn_exp.pt`` and records the stage (input file hash,
    seeds, metrics) under ``cnn_exp.mixed_stage`` of the model card. ``material`` (default
    MoTe2) names the classes.
    """
    m = get_material(material)
    from .train_models import _edit_card, code_version

    out = Path(out)
    src = out / "cnn_exp.pt"
    if not src.is_file():
        raise FileNotFoundError(
            f"out={str(out)!r} holds no cnn_exp.pt: run `uedsteer train finetune`"
        )
    if n_mixed < 2:
        raise ValueError(f"n_mixed={n_mixed} must be >= 2 (half intact, half hurt)")
    card = out / "model_card.json"
    if card.is_file() and "mixed_stage" in json.loads(card.read_text()).get("cnn_exp", {}):
        raise ValueError(
            f"{src} already went through the mixed stage (model card: cnn_exp.mixed_stage); "
            "run `uedsteer train finetune` first to start from a fresh CNNExp"
        )
    exp = load_uednet(src, len(m.classes))
    input_sha = hashlib.sha256(src.read_bytes()).hexdigest()
    rng = np.random.default_rng([seed, 77])
    renderer = FrameRenderer(material=m)
    pristine = ShotState(0.0, 0.0, 0.0, False, 0.06, 0.0)
    mixed_ref = reference_pattern(
        np.stack([renderer.render(pristine, 20.0, rng) for _ in range(8)])
    )
    reference = reference_pattern(beamline_frames(m.reference_class, 8, seed + 900, m))
    x_ft, y_ft = _labelled(finetune_per_class(m), seed + 1901, reference, m)
    x_mix, y_mix = mixed_frames(n_mixed, rng, mixed_ref, m)
    new = fine_tune(
        exp, torch.cat([x_ft, x_mix]), torch.cat([y_ft, y_mix]), lr_scale=0.1, seed=seed
    )
    x_ev, y_ev = _labelled((EVAL_PER_CLASS,) * len(m.classes), seed + 902, reference, m)
    x_me, y_me = mixed_frames(120, np.random.default_rng([seed, 99]), mixed_ref, m)
    result = {}
    for name, model in (("before", exp), ("after", new)):
        pred = predict_logits(model, x_ev).argmax(1)
        result[name] = {
            "beamline_accuracy": float((pred == y_ev).float().mean()),
            "per_class": {
                c: float((pred[y_ev == k] == k).float().mean()) for k, c in enumerate(m.class_names)
            },
            "mixed": _mixed_metrics(model, x_me, y_me, m),
        }
    torch.save(new.state_dict(), src)
    stage = {
        "method": "all layers retrained at 0.1 x lr (Adam 1e-4), 20 epochs, batch 16",
        "input_sha256": input_sha,
        "finetune_seed": seed + 1901,
        "mixed_frames": n_mixed,
        "mixed_seed": [seed, 77],
        "mixed_eval_seed": [seed, 99],
        "mixed_x": list(MIXED_X),
        "mixed_vacancy": list(MIXED_VACANCY),
        "eval_seed": seed + 902,
        **result,
        "code_version": code_version(),
    }
    _edit_card(out, lambda card: card.setdefault("cnn_exp", {}).update(mixed_stage=stage))
    return result
