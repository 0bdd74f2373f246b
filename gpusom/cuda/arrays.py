"""Device arrays for the public functions: the array module, validation, transfers, memory.

Training needs only numba's device arrays; cupy is imported here, lazily, for the analysis
functions that take cupy arrays (matrix products, reductions). Under numba's simulator the
"device" is the host, so the array module is numpy there and the same code runs in the tests.
"""

import numpy as np
from numba import cuda
from numba.core import config as numba_config

from .._backend import GPU_INSTALL_HINT, BackendUnavailableError
from .._checks import checked_float_array

#: True under numba's CUDA simulator (set before numba was imported; fixed for the process).
SIMULATOR = bool(numba_config.ENABLE_CUDASIM)


def array_module():
    """The module of device arrays: cupy on a GPU, numpy under numba's simulator."""
    if SIMULATOR:
        return np
    try:
        import cupy
    except ImportError as exc:
        raise BackendUnavailableError(f"GPU arrays need cupy ({exc}); {GPU_INSTALL_HINT}") from exc
    return cupy


def to_numpy(array):
    """A host (numpy) copy of a device array."""
    xp = array_module()
    return np.asarray(array) if xp is np else xp.asnumpy(xp.asarray(array))


def as_device_array(value, name, ndim):
    """``value`` as a finite float device array of ``ndim`` dimensions, never empty.

    The device counterpart of ``gpusom._checks.as_float_array`` (the same checks and messages):
    host arrays are copied to the device, float32 and float64 are kept, other numbers become
    float64.
    """
    xp = array_module()
    try:
        array = xp.asarray(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a numeric array: {exc}") from None
    return checked_float_array(array, name, ndim, xp)


def free_memory():
    """Bytes of device memory free now."""
    return cuda.current_context().get_memory_info()[0]


def check_memory(n_bytes, what):
    """Raise a ``ValueError`` naming the bytes when ``n_bytes`` exceed the free device memory.

    Called before allocating, so a run that cannot fit fails with this message rather than
    with a CUDA out-of-memory error halfway through.
    """
    free = free_memory()
    if n_bytes > free:
        raise ValueError(
            f"{what} needs {n_bytes} bytes ({n_bytes / 2**30:.2f} GiB) of GPU memory but only "
            f"{free} bytes ({free / 2**30:.2f} GiB) are free on the device; use a smaller "
            "lattice, fewer samples, dtype='float32' or backend='cpu'"
        )
