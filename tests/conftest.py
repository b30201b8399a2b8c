"""Shared test setup: a bounded hypothesis profile, and the device matrix.

Tests that take a `device` argument run on "cpu" and, when CuPy and a GPU are present, on
"cuda"; without them, on "cuda" with a CuPy stand-in (tests/cupy_stand_in.py). Anything marked
`gpu` is skipped without CUDA.
"""

import os

import pytest
from hypothesis import HealthCheck, settings

from minigan import backend

# Bounded and derandomized under CI, so that a run is short and repeatable on 2 cores.
settings.register_profile("ci", max_examples=30, derandomize=True, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=60, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

CUDA = backend.cuda_available()


def pytest_collection_modifyitems(config, items):
    if CUDA:
        return
    skip = pytest.mark.skip(reason="needs CuPy and a CUDA GPU")
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip)


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.gpu), "cuda-stand-in"])
def device(request, monkeypatch):
    """"cpu", "cuda" on a GPU, and without one "cuda" on tests/cupy_stand_in.py: NumPy in CuPy's
    place, strict where CuPy is (a host array meeting a device one, an implicit copy to the host)."""
    if request.param != "cuda-stand-in":
        yield request.param
    elif CUDA:
        pytest.skip("the real CuPy runs these here")
    else:
        import cupy_stand_in

        with cupy_stand_in.installed(monkeypatch):
            yield "cuda"


@pytest.fixture(scope="session")
def small_classifier():
    """A small digit classifier trained on synthetic digits, standing in for the cached MNIST one."""
    from minigan import classifier
    from synthetic import synthetic_digits

    images, labels = synthetic_digits(1000)
    model = classifier.train_classifier(images, labels, epochs=3, lr=1e-2, hidden=(64, 32), progress=False)
    model.test_accuracy = 1.0
    return model


@pytest.fixture(autouse=True)
def _seeded():
    """Every test starts from the same random state."""
    backend.manual_seed(0)
    yield
