"""``Scores``: what :class:`~uedsteer.surrogates.scorer.FrameScorer` says of a batch of
frames, as numpy arrays and as plain rows for event documents and tables."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SCORE_FIELDS = (
    "class_probs",
    "predicted_class",
    "damage_prob",
    "latent",
    "line_distance",
    "progress",
    "recon_error",
    "frame_quality",
    "heating",
)
CRYSTAL_FIELDS = ("crystal_system", "crystal_confidence")
"""Optional :class:`Scores` fields filled only when a crystal predictor is attached."""


@dataclass
class Scores:
    """Scores of a batch of B frames (numpy arrays; NaN where a frame could not be scored).

    Attributes
    ----------
    class_probs : (B, K) probabilities over the scorer's K classes, in the order of
        ``classes`` (sum to 1).
    predicted_class : (B,) int, −1 for an invalid frame.
    damage_prob : (B,) summed probability of the damage classes (MoTe2: 1, 4, 7).
    latent : (B, d) VAE latent means.
    line_distance : (B,) distance of the latent to the 2H–1T' segment.
    progress : (B,) position along the segment, 0 = 2H … 1 = 1T'.
    recon_error : (B,) VAE reconstruction error relative to the training median (≈ 1 in
        distribution; large = out of distribution).
    frame_quality : (B,) signal-to-noise figure in [0, 1] (1 = noise-free).
    heating : (B,) apparent Debye–Waller Δ⟨u²⟩ (Å²) against the reference: a lattice-heating
        proxy that rises with the absorbed fluence (see :mod:`uedsteer.surrogates.heating`).
    valid : (B,) bool; ``flags`` says why a frame is invalid (see :data:`FLAG_REASONS`:
        ``nan``, ``inf``, ``zero``, ``negative``, ``saturated``, ``complex``, ``shape``).
    crystal_system : (B,) str, the crystal system the attached crystal predictor reads from
        the frame's Bragg peaks; ``""`` when not computed (no predictor attached, invalid
        frame, too few peaks, or the predictor failed).
    crystal_confidence : (B,) share of the predictor's trees voting for ``crystal_system``;
        NaN when not computed.
    classes : tuple of str
        Names of the K classes, in the order of ``class_probs`` (from the scorer's model card).
    """

    class_probs: np.ndarray
    predicted_class: np.ndarray
    damage_prob: np.ndarray
    latent: np.ndarray
    line_distance: np.ndarray
    progress: np.ndarray
    recon_error: np.ndarray
    frame_quality: np.ndarray
    heating: np.ndarray
    valid: np.ndarray
    flags: list[str] = field(default_factory=list)
    crystal_system: np.ndarray | None = None
    crystal_confidence: np.ndarray | None = None
    classes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        b = len(self.valid)
        self.classes = tuple(self.classes)
        if np.shape(self.class_probs)[1:] != (len(self.classes),):
            raise ValueError(
                f"class_probs has shape {np.shape(self.class_probs)}; classes names "
                f"{len(self.classes)} classes"
            )
        if self.crystal_system is None:
            self.crystal_system = np.full(b, "", dtype="<U12")
        else:
            self.crystal_system = np.asarray(self.crystal_system, dtype=str)
        if self.crystal_confidence is None:
            self.crystal_confidence = np.full(b, np.nan)
        else:
            self.crystal_confidence = np.asarray(self.crystal_confidence, dtype=np.float64)
        for name in CRYSTAL_FIELDS:
            if getattr(self, name).shape != (b,):
                raise ValueError(
                    f"{name} has shape {getattr(self, name).shape}; {b} frames need ({b},)"
                )

    def __len__(self) -> int:
        return len(self.valid)

    def class_names(self) -> list[str]:
        """Predicted class names (``"invalid"`` for flagged frames)."""
        return [self.classes[k] if k >= 0 else "invalid" for k in self.predicted_class]

    def row(self, i: int) -> dict[str, float | int | str | list[float]]:
        """Scores of frame ``i`` as plain values (for an event document or a table);
        ``classes`` names the entries of ``class_probs``."""
        k = int(self.predicted_class[i])
        return {
            "predicted_class": k,
            "class_name": self.classes[k] if k >= 0 else "invalid",
            "damage_prob": float(self.damage_prob[i]),
            "line_distance": float(self.line_distance[i]),
            "progress": float(self.progress[i]),
            "recon_error": float(self.recon_error[i]),
            "frame_quality": float(self.frame_quality[i]),
            "heating": float(self.heating[i]),
            "valid": bool(self.valid[i]),
            "flag": self.flags[i],
            "class_probs": self.class_probs[i].tolist(),
            "latent": self.latent[i].tolist(),
            "crystal_system": str(self.crystal_system[i]),
            "crystal_confidence": float(self.crystal_confidence[i]),
            "classes": list(self.classes),
        }
