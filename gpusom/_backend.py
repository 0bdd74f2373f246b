"""Backend choice: the one place that decides where training runs.

The CUDA module is imported lazily, so ``import gpusom`` on a laptop imports neither cupy nor
numba's CUDA target.
"""

import importlib
import os

import numpy as np

BACKENDS = ("auto", "cpu", "cuda")
ENV_VAR = "GPUSOM_BACKEND"

GPU_INSTALL_HINT = (
    "install the GPU extra that matches your CUDA driver, e.g. pip install 'gpusom[cuda12]' or "
    "'gpusom[cuda13]', on a machine with an NVIDIA GPU"
)


class BackendUnavailableError(RuntimeError):
    """The requested backend cannot run on this machine."""


def cuda_device_present():
    """True when numba finds a real CUDA device (numba's simulator does not count)."""
    from numba.core import config

    if config.ENABLE_CUDASIM:
        return False
    try:
        from numba import cuda

        return bool(cuda.is_available())
    except Exception:  # a broken driver or toolkit means no usable device
        return False


def _cuda_usable():
    """True when the CUDA backend can run here: a real device, or numba's simulator (tests)."""
    from numba.core import config

    return bool(config.ENABLE_CUDASIM) or cuda_device_present()


def is_device_array(value):
    """True for an array in GPU memory (cupy, numba, ...): it has ``__cuda_array_interface__``.

    Asks the object only, so it imports nothing.
    """
    return hasattr(value, "__cuda_array_interface__")


def array_namespace(array):
    """The module whose functions apply to ``array``: numpy, or the CUDA backend's (cupy)."""
    if is_device_array(array):
        return resolve("cuda").array_module()
    return np


def resolve(name, prefer_device=False):
    """The backend module for ``name`` ("auto", "cpu" or "cuda").

    ``"auto"`` honours the ``GPUSOM_BACKEND`` environment variable, then picks CUDA when a real
    device is present (or ``prefer_device`` says the input already lives on one), else the CPU.
    """
    if name not in BACKENDS:
        valid = ", ".join(repr(b) for b in BACKENDS)
        raise ValueError(f"backend must be one of {valid}; got {name!r}")
    if name == "auto":
        override = os.environ.get(ENV_VAR, "").strip().lower()
        if override:
            if override not in BACKENDS:
                valid = ", ".join(repr(b) for b in BACKENDS)
                raise ValueError(f"{ENV_VAR} must be one of {valid}; got {override!r}")
            name = override
    if name == "auto":
        name = "cuda" if (prefer_device or cuda_device_present()) else "cpu"
    if name == "cpu":
        return importlib.import_module("gpusom.cpu")
    if not _cuda_usable():
        raise BackendUnavailableError(f"backend='cuda' needs a CUDA device: {GPU_INSTALL_HINT}")
    try:
        return importlib.import_module("gpusom.cuda")
    except ImportError as exc:
        raise BackendUnavailableError(
            f"the CUDA backend could not be loaded ({exc}); {GPU_INSTALL_HINT}"
        ) from exc
