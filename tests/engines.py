"""The engines under test, and helpers to drive them as gpusom does.

Every engine present runs the same test bodies (the ``engine`` fixture of ``conftest``): the CPU
always, the CUDA engine in numba's simulator on a machine without a GPU (the default of the
suite) and on the device where one exists (``GPUSOM_TEST_CUDASIM=0``).
"""

import sys
import threading
import traceback

import numpy as np
import pytest
from numba.core import config as numba_config
from numba.core import types as numba_types
from numba.np import numpy_support

from gpusom import _backend
from gpusom._math import METRICS, NEIGHBORHOODS, TOPOLOGIES

#: True when this process runs numba's CUDA simulator instead of a GPU.
SIMULATOR = bool(numba_config.ENABLE_CUDASIM)

#: The engines this machine can run: the CUDA one in the simulator or on a device.
ENGINE_NAMES = ["cpu"] + (["cuda"] if SIMULATOR or _backend.cuda_device_present() else [])

needs_cuda = pytest.mark.skipif(
    "cuda" not in ENGINE_NAMES, reason="needs numba's CUDA simulator or a CUDA device"
)
needs_device = pytest.mark.skipif(
    SIMULATOR or not _backend.cuda_device_present(), reason="needs a CUDA device"
)


def train_with(engine, codebook, data, order, sigmas, lrs, rows, cols, is_torus, neighborhood,
               truncate=3.0, topology="rectangular", metric="euclidean"):  # fmt: skip
    """One slice of online steps through ``engine``: ``(host codebook, BMU of every step)``."""
    state = engine.to_device(codebook, data)
    nbh, lattice = NEIGHBORHOODS[neighborhood], TOPOLOGIES[topology]
    bmus = engine.train_online(
        *state, order, sigmas, lrs, rows, cols, is_torus, nbh, truncate, lattice, METRICS[metric]
    )
    return engine.to_host(state[0], codebook.shape[1]), np.asarray(bmus)


class SimulatedDeviceArray(np.ndarray):
    """A numpy array that says it lives on a GPU: under the simulator the device is the host."""

    @property
    def __cuda_array_interface__(self):
        return self.__array_interface__


def on_device(array):
    """``array`` as a GPU array of the CUDA engine (a stand-in under the simulator)."""
    if SIMULATOR:
        return np.asarray(array).view(SimulatedDeviceArray)
    cupy = pytest.importorskip("cupy")
    return cupy.asarray(array)


def to_numpy(array):
    """A numpy copy of a numpy or GPU array."""
    return _backend.array_engine(array).to_numpy(array)


def lock_simulated_shared_arrays(monkeypatch):
    """Serialise numba's simulated ``cuda.shared.array``.

    The simulator finds a block's shared array by its call site with an unlocked get-then-insert,
    so two threads starting together can each create one: they then reduce in different arrays
    and read uninitialised values (seen as a garbage BMU, about once in ten suite runs). Same
    logic as ``FakeCUDAShared.array`` for static shapes, under a lock.
    """
    from numba.cuda.simulator import kernelapi

    lock = threading.Lock()
    original = kernelapi.FakeCUDAShared.array

    def array(self, shape, dtype):
        if shape == 0:  # dynamic shared memory: one buffer, no race
            return original(self, shape, dtype)
        if isinstance(dtype, numba_types.Type):
            dtype = numpy_support.as_dtype(dtype)
        caller = traceback.extract_stack(sys._getframe())[-2][0:2]
        with lock:
            if caller not in self._allocations:
                self._allocations[caller] = np.empty(shape, dtype)
            return self._allocations[caller]

    monkeypatch.setattr(kernelapi.FakeCUDAShared, "array", array)


def prepared_engine(name, monkeypatch):
    """Generator for fixtures: the engine ``name``; the CUDA one with 32-thread blocks and, in
    the simulator, locked shared arrays and fast thread switches (simulated threads meet at
    barriers several times sooner)."""
    if name == "cpu":
        yield _backend.cpu_engine()
        return
    engine = _backend.cuda_engine()
    monkeypatch.setattr(engine.config, "THREADS_PER_BLOCK", 32)
    interval = sys.getswitchinterval()
    if SIMULATOR:
        lock_simulated_shared_arrays(monkeypatch)
        sys.setswitchinterval(1e-4)
    yield engine
    sys.setswitchinterval(interval)
