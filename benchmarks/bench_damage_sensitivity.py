"""Which vacancy level the shipped scorer calls damage, on partially transformed frames too.

The controller's halting rules and damage model read the scorer's ``damage_prob``; a damage
event (DESIGN.md) is a spot with vacancy fraction ≥ 0.05. This renders frames through the
simulated beamline's own renderer and detector (``FrameRenderer``, 20 fC, the campaign's
reference of three pristine frames) for a grid of 2H → 1T' fractions x and site-averaged
vacancy fractions (Te and Mo in the response model's ratio, Mo = 0.4 × Te), at a fixed lattice
heating, and prints the median damage probability of ``--frames`` frames per cell, with the
lowest vacancy read as damage (median ≥ 0.5) at each x.

The CNN was trained on vacancies of 0.05–0.2 on pure 2H and pure 1T' lattices; campaigns climb
through mixed frames at the resonant band, so this shows where a hurt spot goes unseen.
Run: ``.venv/bin/python benchmarks/bench_damage_sensitivity.py --frames 12``
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np

from uedsteer.sim_devices.beamline import FrameRenderer
from uedsteer.sim_devices.response import ResponseParams, ShotState, site_vacancy_state
from uedsteer.surrogates.scorer import FrameScorer

warnings.filterwarnings("ignore")

FRACTIONS = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)
VACANCIES = (0.0, 0.01, 0.02, 0.03, 0.05, 0.08)


def damage_grid(
    frames: int,
    seed: int,
    thermal_rms: float,
    charge_fc: float,
    variant: str,
    folder: str | None = None,
) -> np.ndarray:
    """Median damage probability, (len(VACANCIES), len(FRACTIONS)).

    Parameters
    ----------
    frames : int
        Frames per (vacancy, x) cell.
    seed : int
        Seed of the renderer's random numbers (thermal displacements, vacancies, noise).
    thermal_rms : float
        Thermal rms displacement of every frame, Å (0.06 is the pristine sample).
    charge_fc : float
        Bunch charge, fC.
    variant : str
        Scorer variant, ``"syn"`` or ``"exp"``.
    folder : str, optional
        Scorer folder (``FrameScorer.load``); default: the shipped weights.
    """
    renderer = FrameRenderer()
    rng = np.random.default_rng(seed)
    rms0 = ResponseParams().thermal_rms0
    scorer = FrameScorer.load(folder, variant)
    pristine = ShotState(0.0, 0.0, 0.0, False, rms0, 0.0)
    scorer.set_reference(np.stack([renderer.render(pristine, charge_fc, rng) for _ in range(3)]))
    mo_per_te = ResponseParams().mo_to_te_damage
    out = np.zeros((len(VACANCIES), len(FRACTIONS)))
    for i, v in enumerate(VACANCIES):
        for j, x in enumerate(FRACTIONS):
            state = site_vacancy_state(x, v, thermal_rms, mo_per_te)
            batch = np.stack([renderer.render(state, charge_fc, rng) for _ in range(frames)])
            out[i, j] = np.median(scorer.score(batch).damage_prob)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=12, help="frames per cell")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--thermal-rms", type=float, default=0.075, help="Å (heated lattice)")
    parser.add_argument("--charge", type=float, default=20.0, help="bunch charge, fC")
    parser.add_argument(
        "--variant", default="exp", choices=("exp", "syn"), help="exp: the campaign's scorer"
    )
    parser.add_argument("--folder", default=None, help="scorer folder (default: shipped)")
    args = parser.parse_args()
    if args.frames < 1:
        parser.error(f"--frames={args.frames} must be >= 1")
    grid = damage_grid(
        args.frames, args.seed, args.thermal_rms, args.charge, args.variant, args.folder
    )
    print(
        f"median damage probability of {args.frames} frames (scorer {args.variant}, "
        f"thermal rms {args.thermal_rms} Å, {args.charge} fC, seed {args.seed})"
    )
    print("vacancy \\ x " + "".join(f"{x:>7.1f}" for x in FRACTIONS))
    for v, row in zip(VACANCIES, grid, strict=True):
        print(f"{v:>11.2f} " + "".join(f"{p:>7.2f}" for p in row))
    seen = []
    for j in range(len(FRACTIONS)):
        hit = np.flatnonzero(grid[:, j] >= 0.5)
        seen.append(f"{VACANCIES[hit[0]]:.2f}" if hit.size else "> 0.08")
    print("lowest vacancy read as damage " + " ".join(seen))


if __name__ == "__main__":
    main()
