"""Error and warning types, and the GPU install hint.

A leaf module: it imports nothing, so every other module (the engines included) can use it
without an import cycle.
"""

GPU_INSTALL_HINT = (
    "install the GPU extra that matches your CUDA driver, e.g. pip install 'gpusom[cuda12]' or "
    "'gpusom[cuda13]', on a machine with an NVIDIA GPU"
)


class BackendUnavailableError(RuntimeError):
    """The requested engine cannot run on this machine."""


class GPUFallbackWarning(RuntimeWarning):
    """``backend="auto"`` found a GPU it could not use and runs on the CPU instead."""


class NotFittedError(ValueError, AttributeError):
    """A method that needs a trained map was called before ``fit``, ``train`` or ``SOM.load``."""
