"""Test configuration: numba's CUDA simulator and per-dtype tolerances.

The simulator must be switched on before numba is first imported, which is why this happens at
the top of the conftest. ``GPUSOM_TEST_CUDASIM=0`` runs the same tests on a real GPU instead.
"""

import os

if os.environ.get("GPUSOM_TEST_CUDASIM", "1") != "0":
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from engines import ENGINE_NAMES, prepared_engine

#: Codebook tolerances of a trained map against the plain-numpy oracle, per dtype.
TOLERANCES = {
    np.float32: {"rtol": 2e-4, "atol": 2e-5},
    np.float64: {"rtol": 1e-10, "atol": 1e-12},
}


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.fixture(params=ENGINE_NAMES)
def engine(request, monkeypatch):
    """Every engine this machine runs, one after another (one test body for all)."""
    yield from prepared_engine(request.param, monkeypatch)


@pytest.fixture
def gpu(monkeypatch):
    """The CUDA engine: simulated, or on the device."""
    if "cuda" not in ENGINE_NAMES:
        pytest.skip("needs numba's CUDA simulator or a CUDA device")
    yield from prepared_engine("cuda", monkeypatch)
