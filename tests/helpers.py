"""Pieces several test modules share: a scorer that reads damage on cue, the CLI in-process."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys

import numpy as np


class DamagingScorer:
    """The real scorer, but from shot ``start`` on every frame reads as damaged, and no frame
    reads progress above 0.05 (the campaign cannot reach its target before the damage; below
    0.07 a frame still counts as a heating reading)."""

    def __init__(self, scorer, start: int = 0) -> None:
        self.inner, self.start, self.n = scorer, start, 0
        self.meta = scorer.meta

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def set_reference(self, frames):
        self.inner.set_reference(frames)

    def score(self, frames):
        s = self.inner.score(frames)
        s.progress[:] = np.minimum(s.progress, 0.05)
        if self.n >= self.start:
            s.class_probs[:] = 0.0
            s.class_probs[:, 7] = 0.95
            s.class_probs[:, 0] = 0.05
            s.damage_prob[:] = 0.95
        self.n += 1
        return s


def run_main(args, env: dict | None = None) -> subprocess.CompletedProcess:
    """The ``uedsteer`` command's ``main`` in this process, with ``env`` as the environment.

    A subprocess costs ~10 s of imports; tests that need a real process (signals, kills, the
    installed entry point) start one. An exception escaping ``main`` (a user's traceback)
    fails the test just the same.
    """
    from uedsteer.controller.cli import main

    out, err = io.StringIO(), io.StringIO()
    saved = dict(os.environ)
    if env is not None:
        os.environ.clear()
        os.environ.update(env)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else 2
                if exit_.code is not None and not isinstance(exit_.code, int):
                    print(exit_.code, file=sys.stderr)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


def score_row(progress: float = 0.1, damage: float = 0.0, heating: float = 0.002) -> dict:
    """The scores of one clean, valid frame as the scorer reports them (a row of ``Scores``),
    with the progress, damage probability and heating a test chooses."""
    return {
        "progress": progress,
        "damage_prob": damage,
        "line_distance": 0.3,
        "heating": heating,
        "recon_error": 1.0,
        "frame_quality": 0.9,
        "predicted_class": 0,
        "valid": True,
        "class_probs": [1.0] + [0.0] * 7,
        "latent": [0.0] * 4,
    }
