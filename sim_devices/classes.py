"""Structural classes of UED frames (order fixed by the ML-UED seed, plus ``degraded``)."""

CLASSES: tuple[str, ...] = (
    "ref_2H",
    "vacancy_2H",
    "deform_2H",
    "phonon_2H",
    "vacancy_1Tp",
    "deform_1Tp",
    "phonon_1Tp",
    "degraded",
)
"""Class names in CNN output order: 0 ``ref_2H`` … 7 ``degraded``."""

DAMAGE_CLASSES: tuple[int, ...] = (1, 4, 7)
"""Indices of the classes that mean sample damage (vacancies, degradation)."""

INTERPOLATED = "interpolated"
"""Label of 2H → 1T' path frames (VAE training), not a CNN class."""

LABELS: tuple[str, ...] = (*CLASSES, INTERPOLATED)
"""Every label the frame generator understands."""
