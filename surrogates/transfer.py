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
from uedsteer.sim_devices.classes import CLASSES
from uedsteer.sim_devices.dataset import generate_frames
from uedsteer.sim_devices.physics.difference import reference_pattern

from .cnn import load_uednet
from .preprocess import cnn_input
from .train_models import update_card
from .training import fine_tune, predict_logits

FINETUNE_PER_CLASS = (10, 10, 10, 10, 10, 10, 10, 7)  # 77 frames, as in the seed
EVAL_PER_CLASS = 100


def beamline_frames(label: str, n: int, seed: int) -> np.ndarray:
    """Frames of a class rendered through the simulated beamline's detector."""
    frames, _ = generate_frames(
        label, n, seed=seed, detector=BEAMLINE_DETECTOR, noise_level=(0.1, 0.1)
    )
    return frames


def _labelled(per_class, seed: int, reference: np.ndarray):
    xs, ys = [], []
    for k, (label, n) in enumerate(zip(CLASSES, per_class, strict=True)):
        xs.append(cnn_input(beamline_frames(label, n, seed), reference))
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


def delay_scan_flips(models: dict, reference: np.ndarray, seed: int) -> dict:
    """Class flips per 10 ps window along a delay scan on the simulated beamline."""
    bl = SimulatedBeamline(seed=seed, renderer=FrameRenderer())
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
            "classes_seen": sorted({CLASSES[k] for k in pred}),
        }
    return out


def run_finetune(out: Path, seed: int = 0, base: Path | None = None) -> dict:
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
    """
    base_dir = Path(base) if base is not None else Path(out)
    base_file = base_dir / "cnn_syn.pt"
    if not base_file.is_file():
        raise FileNotFoundError(
            f"base={str(base_dir)!r} holds no cnn_syn.pt: train one with `uedsteer train cnn`"
        )
    syn = load_uednet(base_file)
    models = {"cnn_syn": syn}
    if base is not None and (Path(out) / "cnn_syn.pt").is_file():
        models = {"base_cnn_syn": syn, "cnn_syn": load_uednet(Path(out) / "cnn_syn.pt")}
    reference = reference_pattern(beamline_frames("ref_2H", 8, seed=seed + 900))
    x_ft, y_ft = _labelled(FINETUNE_PER_CLASS, seed + 901, reference)
    x_ev, y_ev = _labelled((EVAL_PER_CLASS,) * len(CLASSES), seed + 902, reference)
    exp = fine_tune(syn, x_ft, y_ft, lr_scale=0.1, seed=seed)
    models["cnn_exp"] = exp
    acc = {
        name: float((predict_logits(m, x_ev).argmax(1) == y_ev).float().mean())
        for name, m in models.items()
    }
    flips = delay_scan_flips(models, reference, seed + 903)
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
            },
            **result,
        },
    )
    return result
