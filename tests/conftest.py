import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from uedsteer.sim_devices.physics import ReciprocalGrid

# One core for each test process (`make test` runs two workers on two cores): torch's and
# OpenBLAS's thread pools on top of that only make the threads wait for each other; the GP
# fits are too small to split. Set before any worker, or any process a test starts, imports
# torch; a value the caller set is kept.
os.environ.setdefault("OMP_NUM_THREADS", "1")


BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark(name: str) -> ModuleType:
    """A script of ``benchmarks/`` imported as a module (its folder on the path, for the
    scripts that import each other)."""
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def grid() -> ReciprocalGrid:
    return ReciprocalGrid()


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(scope="module")
def shipped():
    """The crystal model shipped in the package (``surrogates/crystal/model``)."""
    from uedsteer.surrogates.crystal.persistence import SHIPPED_MODEL_DIR
    from uedsteer.surrogates.crystal.predictor import CrystalPredictor

    return CrystalPredictor.load(SHIPPED_MODEL_DIR)


LONG_END_TO_END = (
    "tests/plans/test_queueserver.py",
    "tests/plans/test_facility.py",
    "tests/plans/test_monitor.py",
    "tests/plans/test_served_catalog_access.py",
)
"""Modules of real-process end-to-end tests that take a minute or more each."""


def pytest_collection_modifyitems(session, config, items):
    """Start the long end-to-end modules first, half of them at the head of each half of the
    list: ``make test``'s two workers begin on contiguous halves, so each starts one and the
    short tests fill in around them, instead of one worker ending on a minute-long test while
    the other waits."""
    module = {it: it.nodeid.split("::")[0] for it in items}
    present = [m for m in LONG_END_TO_END if m in module.values()]
    if not present:
        return
    # whole modules, so that a module's servers (its fixtures) start once, on one worker
    first = [it for m in present[0::2] for it in items if module[it] == m]
    second = [it for m in present[1::2] for it in items if module[it] == m]
    rest = [it for it in items if module[it] not in present]
    k = max(0, len(items) // 2 - len(first))
    items[:] = first + rest[:k] + second + rest[k:]
