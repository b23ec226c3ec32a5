"""Synthetic frames of every label: parameters, seeding, interpolation, bad input."""

import numpy as np
import pytest

from uedsteer.sim_devices.frames import COLUMNS, LABELS, MATERIAL, generate_frames
from uedsteer.sim_devices.materials import MOTE2

SMALL = {"base_size": (12, 7)}
CLASSES = MOTE2.class_names


def test_stores_hold_the_default_materials_labels():
    assert MATERIAL is MOTE2 and LABELS == MOTE2.labels
    assert CLASSES[0] == "ref_2H" and CLASSES[7] == "degraded" and len(CLASSES) == 8
    assert LABELS[-1] == "interpolated"


@pytest.mark.parametrize("label", LABELS)
def test_every_label_generates_with_its_parameters(label):
    frames, params = generate_frames(label, 2, seed=3, **SMALL)
    assert frames.shape == (2, 261, 261) and frames.dtype == np.float32
    assert np.all(np.isfinite(frames))
    for p in params:
        assert set(COLUMNS) <= set(p) and p["label"] == label and p["seed"] == 3
    p = params[0]
    if label.startswith("vacancy"):
        assert 0.05 <= p["mo_vacancy"] <= 0.2 and 0.05 <= p["te_vacancy"] <= 0.2
    if label.startswith("deform"):
        assert max(abs(p["strain_xx"]), abs(p["strain_yy"]), abs(p["strain_xy"])) >= 0.02
    if label.startswith("phonon"):
        assert p["mode"] and p["mode_frequency_cm1"] > 10 and p["phonon_amplitude"] > 0
        phase, mode = p["mode"].split("/")
        assert MOTE2.modes(phase).inplane_fraction(mode) >= 0.5, "visible in-plane mode"
    if label == "degraded":
        assert p["mo_vacancy"] >= 0.9
    assert p["phase"] == ("1T'" if label.endswith("1Tp") else "2H")


def test_same_seed_same_frames_different_seed_different():
    a, pa = generate_frames("vacancy_2H", 3, seed=11, **SMALL)
    b, pb = generate_frames("vacancy_2H", 3, seed=11, **SMALL)
    c, _ = generate_frames("vacancy_2H", 3, seed=12, **SMALL)
    assert np.array_equal(a, b) and pa == pb
    assert not np.array_equal(a, c)
    # a frame depends on (seed, label, index) only, not on how the work is split
    tail, _ = generate_frames("vacancy_2H", 2, seed=11, start=1, **SMALL)
    assert np.array_equal(tail, a[1:])


def test_interpolated_fractions_are_honoured():
    _, params = generate_frames("interpolated", 3, seed=0, x=[0.0, 0.5, 1.0], **SMALL)
    assert [p["x"] for p in params] == [0.0, 0.5, 1.0]
    with pytest.raises(ValueError, match="x values"):
        generate_frames("interpolated", 2, x=[0.2, 1.3], **SMALL)
    with pytest.raises(ValueError, match="only allowed"):
        generate_frames("ref_2H", 1, x=0.3, **SMALL)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"label": "2H"}, "label="),
        ({"n": 0}, "n="),
        ({"vacancy_fraction": (-0.1, 0.2)}, "vacancy_fraction"),
        ({"noise_level": (0.2, 1.5)}, "noise_level"),
        ({"grid_n": 260}, "n=260"),
        ({"not_a_field": 1}, "not_a_field"),
    ],
)
def test_bad_generator_input(kwargs, match):
    args = {"label": "ref_2H", "n": 1, **kwargs}
    with pytest.raises(ValueError, match=match):
        generate_frames(args.pop("label"), args.pop("n"), **args)
