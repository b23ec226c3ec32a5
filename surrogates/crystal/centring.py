"""The lattice centring of a cubic crystal, read off its spots indexed on its lattice constant.

Every spot of a cubic crystal with constant a lies at |q|² = N / a², N = h² + k² + l². A
centred lattice forbids whole classes of N, whatever the atoms: a body-centred (I) one every
h + k + l odd, which is every odd N; a face-centred (F) one every mixed-parity hkl, which is
every N with N mod 8 not in {0, 3, 4}. Multiple scattering cannot fill these in (a sum of
allowed reciprocal-lattice vectors is allowed), unlike the absences of screw axes and glides.
So the spots of a few zone axes, indexed on the aggregate's own a, tell P, I and F apart where
the space-group forests, which see one zone at a time in units of its own first ring, often
cannot (an I cell along [001] looks like a P cell of a/√2).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

CUBIC_CENTRING: dict[int, str] = {
    **{g: "P" for g in range(195, 231)},
    **{g: "F" for g in (196, 202, 203, 209, 210, 216, 219, 225, 226, 227, 228)},
    **{g: "I" for g in (197, 199, 204, 206, 211, 214, 217, 220, 229, 230)},
}
"""The Bravais centring of each cubic space group (195–230): the first letter of its symbol."""

N_MAX = 24
"""Spots up to N = h² + k² + l² = 24 are indexed: above it neighbouring √N lie within 2 % of
each other, a few times the tolerance, and a spot could index on the wrong N."""
INDEX_TOLERANCE = 0.005
"""Relative distance of a·|q| from √N within which a spot indexes (simulated lists' positions
are exact; a measured list's 0.004 1/Å at |q| = 1 1/Å is 0.4 %)."""
MIN_INDEXED = 0.95
"""Share of the spots up to N_MAX that must index on a; else a is not the crystal's constant
(or the crystal is not cubic) and nothing is said."""


PSEUDO_CENTRING = 0.01
"""Likelihood that the spots of a primitive (P) crystal's aggregate show a centred lattice:
its h + k + l odd spots can be too faint for the lists in the zones drawn (atoms of nearly the
same scattering power on the centring positions). Centred lattices never read P (their
forbidden spots do not exist); a P aggregate reads centred rarely (measured in
``docs/benchmarks/crystal-measurements.md``). The weight of a group whose centring the spots do
not show is multiplied by it, so a forest sure of a P group keeps it while a close call goes to
the centring seen."""


def weigh_by_centring(
    weights: dict[int, float], centring: str | None
) -> tuple[int, float, dict[int, float]]:
    """Space-group weights of a cubic aggregate, each multiplied by the likelihood of the
    centring its spots show (1 for groups of that centring, :data:`PSEUDO_CENTRING` for the
    others) and normalized.

    Parameters
    ----------
    weights : dict
        Space group → weight (a vote product or summed difference weights), all ≥ 0.
    centring : str or None
        What :func:`cubic_centring` read; None leaves the weights as they are.

    Returns
    -------
    tuple
        (the group of the largest weight, its share, every group's share).
    """
    groups = list(weights)
    w = np.array([weights[g] for g in groups], dtype=np.float64)
    if centring is not None:
        w = w * np.array(
            [1.0 if CUBIC_CENTRING[int(g)] == centring else PSEUDO_CENTRING for g in groups]
        )
    total = w.sum()
    share = w / total if total > 0 else w
    k = int(np.argmax(share))
    return groups[k], float(share[k]), {g: float(v) for g, v in zip(groups, share, strict=True)}


def cubic_centring(bragg_lists: Sequence[np.ndarray], a: float) -> str | None:
    """The centring (``"P"``, ``"I"`` or ``"F"``) that the spots of a cubic crystal show.

    Parameters
    ----------
    bragg_lists : sequence of (n, 3) arrays
        Bragg lists (q_x, q_y in 1/Å, intensity) of patterns of one crystal; the central beam
        (q = 0) is ignored.
    a : float
        The cubic lattice constant in Å (e.g. the aggregate's).

    Returns
    -------
    str or None
        ``"I"`` when every indexed spot has even N and some N ≡ 2 (mod 4) (the 110 family:
        without it a may be twice the constant); ``"F"`` when every N mod 8 is 0, 3 or 4 and
        some N is odd (the 111 family); ``"P"`` when the spots rule out both; None when fewer
        than :data:`MIN_INDEXED` of the spots index on ``a``, or none do.
    """
    if not np.isfinite(a) or a <= 0:
        return None
    q = [np.hypot(*np.asarray(b, dtype=np.float64)[:, :2].T) for b in bragg_lists if len(b)]
    if not q:
        return None
    root = a * np.concatenate(q)
    root = root[(root > 1e-6) & (root <= np.sqrt(N_MAX + 0.5))]
    n = np.rint(root**2).astype(int)
    indexed = (n > 0) & (np.abs(root - np.sqrt(np.maximum(n, 1))) <= INDEX_TOLERANCE * root)
    if not indexed.any() or indexed.mean() < MIN_INDEXED:
        return None
    found = np.unique(n[indexed])
    if np.all(found % 2 == 0):
        return "I" if np.any(found % 4 == 2) else None
    if np.all(np.isin(found % 8, (0, 3, 4))):
        return "F" if np.any(found % 2 == 1) else None
    return "P"
