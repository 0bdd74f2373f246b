"""The engine choice: the one place that decides where computations run.

Training asks :func:`training_engine` (from the ``backend`` setting, the size of the map and
where the data lives); analysis asks :func:`array_engine` (from where the arrays live). Both hand
back an engine (``gpusom._engine.Engine``) and nothing else in gpusom branches on the device.
The CUDA engine is imported lazily, so ``import gpusom`` on a laptop imports neither cupy nor
numba's CUDA target, and it is probed once per process before first use: compile and run one
tiny step (``gpusom.cuda.probe``).
"""

import ctypes
import functools
import importlib
import os
import sys
import warnings

from ._errors import GPU_INSTALL_HINT, BackendUnavailableError, GPUFallbackWarning

BACKENDS = ("auto", "cpu", "cuda")
ENV_VAR = "GPUSOM_BACKEND"

#: Under ``backend="auto"``, maps with fewer codebook elements (``n_cells * dim``) than this
#: train on the CPU: below it the GPU's step (about 6 us of barrier and phase latency) loses to
#: one CPU core (benchmarks/RESULTS.md, "Where the GPU starts to win").
AUTO_GPU_MIN_ELEMENTS = 100_000


def cpu_engine():
    """The CPU engine."""
    return importlib.import_module("gpusom.cpu").ENGINE


def cuda_engine():
    """The CUDA engine, probed; a ``BackendUnavailableError`` with the cause where it cannot run."""
    engine, cause = _cuda_status()
    if engine is None:
        raise BackendUnavailableError(f"the CUDA engine cannot run here: {cause}; {_fix(cause)}")
    return engine


def engine_named(name):
    """The engine for an explicit ``"cpu"`` or ``"cuda"``."""
    return cpu_engine() if name == "cpu" else cuda_engine()


def training_engine(backend, n_elements, n_bytes, on_device=False):
    """The engine that trains a map of ``n_elements`` codebook values under setting ``backend``.

    ``"auto"`` honours the ``GPUSOM_BACKEND`` environment variable, then picks CUDA for data
    already on a GPU or a map of at least :data:`AUTO_GPU_MIN_ELEMENTS` elements on a machine
    whose CUDA engine passes its probe and has ``n_bytes`` of memory free; else the CPU trains,
    with a :class:`GPUFallbackWarning` naming the cause when a GPU was there but unusable.
    """
    name = as_backend(backend)
    if name != "auto":
        return engine_named(name)
    if not on_device and (n_elements < AUTO_GPU_MIN_ELEMENTS or not cuda_device_present()):
        return cpu_engine()
    engine = usable_cuda_or_cpu()
    try:
        engine.check_memory(n_bytes, "the training")
    except ValueError as exc:
        warnings.warn(f"gpusom: training on the CPU: {exc}", GPUFallbackWarning, stacklevel=3)
        return cpu_engine()
    return engine


def array_backend(*arrays):
    """``"cuda"`` when any of ``arrays`` is a GPU array, else ``"cpu"``; nothing is probed."""
    return "cuda" if any(hasattr(a, "__cuda_array_interface__") for a in arrays) else "cpu"


def array_engine(*arrays):
    """The engine whose arrays these are: CUDA when any is a GPU array, else the CPU."""
    return engine_named(array_backend(*arrays))


def check_chunk_backend(backend, chunk_meta):
    """Raise a ``ValueError`` when an explicit ``backend`` is not the engine of a Dask array's
    chunks (``chunk_meta``, the array's empty sample chunk): each chunk trains on the engine of
    its arrays, so ``"cpu"`` or ``"cuda"`` cannot be honoured by moving the data silently."""
    chunks = array_backend(chunk_meta)
    if backend in ("auto", chunks):
        return
    kind, convert = {"cpu": ("numpy", "cupy.asarray"), "cuda": ("cupy", "cupy.asnumpy")}[chunks]
    raise ValueError(
        f"backend={backend!r} cannot train this Dask array: its chunks are {kind} arrays and "
        f"each chunk trains on the engine of its own arrays; pass backend='auto', or convert "
        f"the chunks first (X.map_blocks({convert}))"
    )


def analysis_engine(trained_on, data_engine):
    """The engine that analyses data of ``data_engine`` with a map trained on ``trained_on``.

    A map trained on the GPU, or GPU data, is analysed on the GPU; where the CUDA engine cannot
    run (a model loaded on a machine without a GPU or without cupy), on the CPU.
    """
    if trained_on in ("cpu", "dask") and data_engine.name == "cpu":
        return data_engine
    engine = usable_cuda_or_cpu()
    try:
        engine.xp  # noqa: B018 -- analysis on the GPU needs cupy; training does not
    except BackendUnavailableError:
        return cpu_engine()
    return engine


def usable_cuda_or_cpu():
    """The CUDA engine where it runs; else the CPU engine, with one warning per process when a
    GPU is present but unusable."""
    from numba.core import config

    if not (config.ENABLE_CUDASIM or cuda_device_present()):
        return cpu_engine()
    engine, cause = _cuda_status()
    if engine is not None:
        return engine
    _warn_once(cause)
    return cpu_engine()


def as_backend(backend):
    """The validated setting, with ``GPUSOM_BACKEND`` applied to ``"auto"``."""
    valid = ", ".join(repr(b) for b in BACKENDS)
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {valid}; got {backend!r}")
    override = os.environ.get(ENV_VAR, "").strip().lower()
    if backend != "auto" or not override:
        return backend
    if override not in BACKENDS:
        raise ValueError(f"{ENV_VAR} must be one of {valid}; got {override!r}")
    return override


def cuda_device_present():
    """True when numba finds a real CUDA device (numba's simulator does not count)."""
    from numba.core import config

    if config.ENABLE_CUDASIM or not cuda_driver_loads():
        return False
    try:
        from numba import cuda

        return bool(cuda.is_available())
    except Exception:  # a broken driver or toolkit means no usable device
        return False


@functools.cache
def cuda_driver_loads():
    """Whether the CUDA driver library opens, under the names numba-cuda tries
    (``numba.cuda.cudadrv.driver.locate_driver_and_loader``).

    Without it there is no device, and the answer costs a failed ``dlopen`` instead of
    importing ``numba.cuda`` (0.2-0.45 s, paid in the first large training of a process on a
    machine without a GPU). Where ``NUMBA_CUDA_DRIVER`` names a library, numba decides.
    """
    if os.environ.get("NUMBA_CUDA_DRIVER"):
        return True
    if sys.platform == "win32":
        folders, names = ["\\windows\\system32"], ["nvcuda.dll"]
    elif sys.platform == "darwin":
        folders, names = ["/usr/local/cuda/lib"], ["libcuda.dylib"]
    else:
        folders, names = ["/usr/lib", "/usr/lib64"], ["libcuda.so", "libcuda.so.1"]
    loader = ctypes.WinDLL if sys.platform == "win32" else ctypes.CDLL
    for path in names + [os.path.join(folder, name) for folder in folders for name in names]:
        try:
            loader(path)
        except OSError:
            continue
        return True
    return False


@functools.cache
def _cuda_status():
    """``(engine, None)`` when the CUDA engine passed its probe, else ``(None, cause)``."""
    try:
        module = importlib.import_module("gpusom.cuda")
        module.probe()
    except Exception as exc:  # any failure at all means: not this engine
        return None, f"{type(exc).__name__}: {exc}".strip()
    return module.ENGINE, None


def _fix(cause):
    if "memory" in cause.lower():
        return "free GPU memory or use backend='cpu'"
    return f"{GPU_INSTALL_HINT} (matching numba-cuda, CUDA toolkit and numpy versions)"


@functools.cache
def _warn_once(cause):
    warnings.warn(
        f"gpusom: a CUDA device is present but the CUDA engine failed its start-up check "
        f"({cause}); training and analysis run on the CPU. To use the GPU: {_fix(cause)}. "
        "To silence this: backend='cpu' or GPUSOM_BACKEND=cpu.",
        GPUFallbackWarning,
        stacklevel=4,
    )
