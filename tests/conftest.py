import numpy as np
import pytest

from uedsteer.sim_devices.physics import ReciprocalGrid


@pytest.fixture(scope="session")
def grid() -> ReciprocalGrid:
    return ReciprocalGrid()


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
