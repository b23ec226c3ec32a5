"""Training arrays read from frame stores."""

import pytest

from uedsteer.sim_devices.frame_store import DatasetSpec, load_dataset, write_dataset
from uedsteer.sim_devices.frames import GeneratorSettings
from uedsteer.sim_devices.materials import MOTE2

CLASSES = MOTE2.class_names


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "train.zarr"
    spec = DatasetSpec(
        labels=("ref_2H", "phonon_1Tp", "interpolated"),
        n_per_label=5,
        seed=7,
        chunk=2,
        settings=GeneratorSettings(base_size=(12, 7)),
    )
    write_dataset(path, spec, n_workers=1, progress=False)
    return path


def test_cnn_arrays_read_stores_with_some_of_the_classes(store):
    """Extra training stores may hold a subset of the classes (hard examples): each frame is
    labelled by its class, labels a CNN does not know (interpolated) are left out."""
    from uedsteer.surrogates.train_models import cnn_arrays

    refs, _ = load_dataset(store, ["ref_2H"])
    x, y = cnn_arrays([store, store], refs.mean(axis=0))
    assert x.shape == (20, 2, 87, 87)
    counts = {CLASSES[k]: int((y == k).sum()) for k in y.unique().tolist()}
    assert counts == {"ref_2H": 10, "phonon_1Tp": 10}
