"""Every engine implements the whole engine protocol, with the protocol's signatures."""

import importlib
import inspect
import subprocess
import sys

import numpy as np
import pytest
from engines import ENGINE_NAMES

from gpusom import _backend
from gpusom._engine import Engine

PROTOCOL = {
    name: member
    for name, member in inspect.getmembers(Engine)
    if not name.startswith("_") and (callable(member) or isinstance(member, property))
}


@pytest.mark.parametrize("module", ["gpusom.cpu", "gpusom.cuda"])
def test_every_engine_implements_the_protocol_with_its_signatures(module):
    if module == "gpusom.cuda" and "cuda" not in ENGINE_NAMES:
        pytest.skip("numba's CUDA target is not importable here")
    engine = importlib.import_module(module).ENGINE
    assert isinstance(engine, Engine)
    assert engine.name == module.rsplit(".", 1)[1]
    for name, member in PROTOCOL.items():
        implemented = inspect.getattr_static(type(engine), name)
        if isinstance(member, property):
            assert isinstance(implemented, property), name
            continue
        assert inspect.signature(implemented) == inspect.signature(member), name
    assert not type(engine).__abstractmethods__


def test_the_protocol_is_what_the_rest_of_gpusom_calls():
    """No module outside the engines reaches into an engine's own module for arrays or kernels."""
    assert set(PROTOCOL) == {
        "as_array",
        "check_memory",
        "find_bmus",
        "to_device",
        "to_host",
        "to_numpy",
        "train_batch",
        "train_online",
        "xp",
    }


def test_array_engine_is_chosen_by_where_arrays_live():
    class OnDevice:
        __cuda_array_interface__ = None

    assert _backend.array_engine([1.0], [[2.0]]).name == "cpu"
    if "cuda" in ENGINE_NAMES:
        assert _backend.array_engine([1.0], OnDevice()).name == "cuda"


def test_importing_gpusom_imports_no_device_engine_and_the_errors_are_a_leaf():
    script = (
        "import sys, gpusom\n"
        "assert 'gpusom.cuda' not in sys.modules and 'cupy' not in sys.modules\n"
        "import gpusom.cuda\n"  # the engine imports cleanly on its own (no import cycle)
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    source = inspect.getsource(importlib.import_module("gpusom._errors"))
    assert not [line for line in source.splitlines() if line.startswith(("import", "from"))]


def test_errors_and_the_fallback_warning_are_public():
    import gpusom

    assert issubclass(gpusom.GPUFallbackWarning, RuntimeWarning)
    assert issubclass(gpusom.BackendUnavailableError, RuntimeError)
    assert issubclass(gpusom.NotFittedError, ValueError)
    assert gpusom.NotFittedError is gpusom.som.NotFittedError
    assert "GPUFallbackWarning" not in gpusom.__all__


@pytest.mark.parametrize("dim", [1, 2, 40])
def test_training_state_never_aliases_the_callers_arrays(engine, dim):
    codebook = np.zeros((6, dim), dtype=np.float32)
    data = np.ones((3, dim), dtype=np.float32)
    state = engine.to_device(codebook, data)
    ones = np.ones(4)
    engine.train_online(*state, np.zeros(4, dtype=np.int64), ones, ones, 2, 3, False, 0, 2.0)
    assert not codebook.any()  # trained the state, not the caller's codebook
    assert engine.to_host(state[0], dim).any()
