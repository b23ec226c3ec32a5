"""Simulated UED beamline: physics backend, synthetic data sets (and, later, ophyd devices)."""

from .classes import CLASSES, DAMAGE_CLASSES, INTERPOLATED, LABELS

__all__ = ["CLASSES", "DAMAGE_CLASSES", "INTERPOLATED", "LABELS"]
