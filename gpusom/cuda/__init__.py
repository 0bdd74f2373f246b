"""The CUDA backend: numba ``@cuda.jit`` kernels behind the interface every backend offers.

Same interface as ``gpusom.cpu`` (see its docstring): ``to_device``, ``train_online``,
``to_host``, ``find_bmus`` and ``NAME``. Imported lazily by ``gpusom._backend`` only, so
``import gpusom`` never initialises CUDA or imports cupy; training needs numba-cuda alone, cupy
only the analysis of cupy arrays.

Two training drivers (``config.DRIVER``) run the same phases (see ``gpusom.cuda.kernels``):

- ``"per_step"``: one kernel launch per step; the launch boundary is the grid-wide barrier.
  Simple, and bounded by launch overhead (microseconds per step) on small maps.
- ``"persistent"``: one cooperative launch per slice of steps, ``grid.sync()`` between steps, as
  many blocks as the device runs at once. numba's simulator runs blocks one after another, so
  there a persistent grid is always a single block.
"""

import numpy as np
from numba import cuda

from .. import _config
from .._bmu_search import blocked_bmus
from . import config, kernels
from .arrays import SIMULATOR, array_module, as_device_array, check_memory, to_numpy

__all__ = [
    "NAME",
    "array_module",
    "as_device_array",
    "check_memory",
    "find_bmus",
    "to_device",
    "to_host",
    "to_numpy",
    "train_online",
]

NAME = "cuda"

#: Most cells whose indices fit the low 32 bits of a packed key; larger maps reduce pairs.
PACKED_MAX_CELLS = 1 << 32


def to_device(codebook, data):
    """Device copies of a ``(n_cells, dim)`` codebook and ``(n_samples, dim)`` host data.

    The layout of ``gpusom.cuda.kernels``: the codebook ``(padded_dim, n_cells)``, the data
    ``(n_samples, padded_dim)``, zero-padded, both in the codebook's dtype.
    """
    n_cells, dim = codebook.shape
    n_samples = data.shape[0]
    width = kernels.padded_dim(dim)
    check_memory(
        codebook.dtype.itemsize * width * (n_cells + n_samples),
        f"a codebook of {n_cells} cells and {n_samples} samples of {dim} features",
    )
    internal = np.zeros((width, n_cells), dtype=codebook.dtype)
    internal[:dim] = codebook.T
    padded = np.zeros((n_samples, width), dtype=codebook.dtype)
    padded[:, :dim] = data
    return cuda.to_device(internal), cuda.to_device(padded)


def train_online(codebook, data, order, sigmas, lrs, rows, cols, is_torus, neighborhood, truncate):
    """Run ``len(order)`` online steps on the device codebook; returns the BMU indices (host)."""
    threads = _threads_per_block()
    driver = _driver()
    n_steps = order.size
    if n_steps == 0:
        return np.empty(0, dtype=np.int64)
    # Enough blocks for one cell per thread; more would only idle.
    blocks_needed = -(-codebook.shape[1] // threads)
    check_memory(32 * n_steps + 32 * blocks_needed, f"the schedules of {n_steps} steps")
    record = cuda.to_device(np.full(n_steps, kernels.NO_INDEX, dtype=np.int64))
    # float32 BMUs meet in packed keys (one atomic per block), float64 in per-block pairs.
    packed = codebook.dtype == np.float32 and codebook.shape[1] <= PACKED_MAX_CELLS
    partials = (
        ()
        if packed
        else tuple(cuda.device_array((2, blocks_needed), dtype=t) for t in (np.float64, np.int64))
    )
    args = (
        codebook,
        data,
        cuda.to_device(np.ascontiguousarray(order, dtype=np.int64)),
        cuda.to_device(np.ascontiguousarray(sigmas, dtype=np.float64)),
        cuda.to_device(np.ascontiguousarray(lrs, dtype=np.float64)),
        rows,
        cols,
        bool(is_torus),
        neighborhood,
        float(truncate),
        record,
        *partials,
    )
    driver(args, packed, threads, blocks_needed)
    found = record.copy_to_host()
    return found & kernels.INDEX_MASK if packed else found


def to_host(codebook, dim):
    """The ``(n_cells, dim)`` numpy codebook of the device codebook."""
    return np.ascontiguousarray(codebook.copy_to_host()[:dim].T)


def find_bmus(data, codebook, k=1):
    """Exact best matching units on the device, computed in blocks (``gpusom._bmu_search``).

    cupy matrix products give the scores and the :func:`kernels.rerank` kernel (one block per
    sample) ranks the candidates, so the result equals brute force with ties to the lowest index.

    Parameters
    ----------
    data : device array (or array_like), shape (n_samples, dim)
    codebook : device array (or array_like), shape (n_cells, dim)
    k : {1, 2}
        How many best units to return per sample.

    Returns
    -------
    index : device array of int64, shape (n_samples, k)
    squared_distance : device array of float64, shape (n_samples, k)
    """
    xp = array_module()
    data, codebook = xp.asarray(data), xp.asarray(codebook)
    n, dim = data.shape
    n_cells = codebook.shape[0]
    block = max(1, min(n, _config.ANALYSIS_BLOCK_BYTES // (8 * max(n_cells, 1))))
    check_memory(
        4 * n_cells * (dim + 2) + 16 * n * k + 8 * block * (n_cells + dim + 2),
        f"the BMUs of {n} samples on {n_cells} cells",
    )
    threads = _threads_per_block()

    def rerank(dots, *rest):
        kernels.rerank[min(dots.shape[0], config.MAX_BLOCKS), threads](dots, *rest)

    return blocked_bmus(data, codebook, k, xp, rerank)


def _threads_per_block():
    threads = config.THREADS_PER_BLOCK
    if not 1 <= threads <= kernels.MAX_THREADS:
        raise ValueError(
            f"gpusom.cuda.config.THREADS_PER_BLOCK must be in 1..{kernels.MAX_THREADS}, "
            f"got {threads}"
        )
    return threads


def _per_step(args, packed, threads, blocks_needed):
    """One launch per phase; the kernel boundary orders the phases."""
    kernel = kernels.train_phase_packed if packed else kernels.train_phase
    launch = kernel[min(blocks_needed, config.MAX_BLOCKS), threads]
    for t in range(args[2].size + 1):
        launch(*args, t)


def _persistent(args, packed, threads, blocks_needed):
    """All phases in one cooperative launch, sized to what the device runs at once."""
    blocks = min(blocks_needed, config.PERSISTENT_BLOCKS or blocks_needed)
    kernel = kernels.train_persistent_packed if packed else kernels.train_persistent
    if SIMULATOR:
        # The simulator runs blocks one after another: grid.sync() is right with one block only.
        kernel[1, threads](*args)
        return
    # compile() goes through numba's disk cache (a specialize()d copy would not) and returns
    # the kernel that the launch below then finds in memory.
    compiled = kernel.compile(tuple(kernel.typeof_pyval(a) for a in args))
    blocks = min(blocks, compiled.max_cooperative_grid_blocks(threads))
    kernel[blocks, threads](*args)


DRIVERS = {"persistent": _persistent, "per_step": _per_step}


def _driver():
    if config.DRIVER not in DRIVERS:
        valid = ", ".join(repr(d) for d in DRIVERS)
        raise ValueError(f"gpusom.cuda.config.DRIVER must be one of {valid}; got {config.DRIVER!r}")
    return DRIVERS[config.DRIVER]
