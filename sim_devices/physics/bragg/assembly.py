"""Pattern assembly: excited beams to a Bragg list (merged, thresholded, sorted, beam first)."""

from __future__ import annotations

import numpy as np

_MERGE_Q = 1e-8  # 1/Å: spots closer than this in (qx, qy) are one detector spot


def _to_bragg_list(
    qxy: np.ndarray, intensity: np.ndarray, central: float, min_intensity: float
) -> np.ndarray:
    """Assemble a Bragg list: merge coincident spots, threshold, sort, central beam first.

    Beams whose in-plane positions coincide (e.g. a higher-order Laue-zone reflection right
    above a zero-order one in an orthogonal cell) reach the same detector spot, so their
    intensities are summed; beams that project onto (0, 0) join the central beam.
    """
    if len(qxy):
        keys = np.round(qxy / _MERGE_Q, 0)
        unique, inverse = np.unique(keys, axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        summed = np.bincount(inverse, weights=intensity, minlength=len(unique))
        first = np.full(len(unique), len(qxy))
        np.minimum.at(first, inverse, np.arange(len(qxy)))
        qxy, intensity = qxy[first], summed
        at_centre = np.all(unique == 0, axis=1)
        central += float(intensity[at_centre].sum())
        qxy, intensity = qxy[~at_centre], intensity[~at_centre]
    keep = intensity >= min_intensity
    qxy, intensity = qxy[keep], intensity[keep]
    radius = np.round(np.hypot(qxy[:, 0], qxy[:, 1]), 9)
    angle = np.round(np.arctan2(qxy[:, 1], qxy[:, 0]), 9)
    order = np.lexsort((angle, radius))
    out = np.empty((len(order) + 1, 3), dtype=np.float64)
    out[0] = (0.0, 0.0, central)
    out[1:, :2] = qxy[order]
    out[1:, 2] = intensity[order]
    return out
