"""Accuracy benchmark: a fresh test set from a seed, scored by the shipped FrameScorer.

Generates ``--per-class`` frames of every label from ``--seed`` (noise up to 50 %), prints
the CNN confusion matrix, overall and worst-class accuracy, and the VAE's Spearman correlation
between progress and the true 2H → 1T' fraction and the ROC AUC of the line distance
(on-path 2H/interpolated vs vacancy/degraded). Goals (issue 4): ≥ 98 % overall, ≥ 97 % worst
class, Spearman ≥ 0.95, AUC ≥ 0.95.
Run: ``.venv/bin/python benchmarks/bench_accuracy.py --seed 777 --per-class 500``
"""

from __future__ import annotations

import argparse
import shutil
import tempfile

import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from uedsteer.sim_devices.frame_store import DatasetSpec, load_dataset, write_dataset
from uedsteer.sim_devices.frames import LABELS
from uedsteer.sim_devices.materials import INTERPOLATED
from uedsteer.surrogates.scorer import FrameScorer
from uedsteer.surrogates.train_models import class_metrics, confusion, on_path, vae_labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=777)
    parser.add_argument("--per-class", type=int, default=500)
    parser.add_argument("--variant", default="syn", choices=["syn", "exp"])
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="uedsteer-acc-")
    try:
        spec = DatasetSpec(n_per_label=args.per_class, seed=args.seed, chunk=50)
        store = write_dataset(f"{tmp}/test.zarr", spec, progress=False)
        scorer = FrameScorer.pretrained(args.variant)
        CLASSES = scorer.classes
        y_true, y_pred = [], []
        prog, xfrac, dist, onpath = [], [], [], []
        for label in LABELS:
            frames, params = load_dataset(store, [label])
            for i in range(0, len(frames), 100):
                s = scorer.score(frames[i : i + 100])
                if label in CLASSES:
                    y_true += [CLASSES.index(label)] * len(s)
                    y_pred += s.predicted_class.tolist()
                if label == INTERPOLATED:
                    prog += s.progress.tolist()
                    xfrac += [p["x"] for p in params[i : i + 100]]
                if label in vae_labels():
                    dist += s.line_distance.tolist()
                    onpath += [label in on_path()] * len(s)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    matrix = confusion(np.array(y_true), np.array(y_pred), len(CLASSES))
    m = class_metrics(matrix, CLASSES)
    print(
        f"test set: seed {args.seed}, {args.per_class} frames per label, noise up to 50 %, "
        f"classifier CNN{args.variant.capitalize()}"
    )
    print("confusion matrix (rows true, columns predicted):")
    print("              " + " ".join(f"{c[:9]:>9s}" for c in CLASSES))
    for c, row in zip(CLASSES, matrix, strict=True):
        print(f"{c:>13s} " + " ".join(f"{v:9d}" for v in row))
    print(f"overall accuracy : {m['overall_accuracy']:.4f}   (goal >= 0.98)")
    print(f"worst class      : {m['worst_class']} {m['worst_class_accuracy']:.4f}   (goal >= 0.97)")
    rho = spearmanr(prog, xfrac).statistic
    auc = roc_auc_score(~np.array(onpath), np.array(dist))
    print(f"VAE Spearman(progress, x) on interpolated frames : {rho:.4f}   (goal >= 0.95)")
    print(f"VAE line-distance ROC AUC on-path vs damaged     : {auc:.4f}   (goal >= 0.95)")


if __name__ == "__main__":
    main()
