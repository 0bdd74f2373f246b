"""The CUDA engine: numba ``@cuda.jit`` kernels behind the protocol of ``gpusom._engine.Engine``.

Imported lazily by ``gpusom._backend`` only, so ``import gpusom`` never initialises CUDA or
imports cupy. Training needs numba-cuda alone; the engine's arrays are cupy arrays (numpy under
numba's simulator, where the "device" is the host), needed for analysis on the GPU only.

Two training drivers (``config.DRIVER``) run the same phases (see ``gpusom.cuda.kernels``):

- ``"per_step"``: one kernel launch per step; the launch boundary is the grid-wide barrier.
  Simple, and bounded by launch overhead (tens of microseconds per step) on small maps.
- ``"persistent"``: one cooperative launch per slice of steps, ``grid.sync()`` between steps, as
  many blocks as the device runs at once. numba's simulator runs blocks one after another, so
  there a persistent grid is always a single block. A device that refuses the cooperative
  launch gets the per-step driver instead, from then on.

Late steps of float32 Euclidean runs on complete samples may run batched instead, where the cost
model of ``gpusom.cuda.late`` says they pay.
"""

import warnings

import numpy as np
from numba import cuda
from numba.core import config as numba_config

from .. import _bmu_search, _checks
from .._engine import Engine
from .._errors import GPU_INSTALL_HINT, BackendUnavailableError
from .._math import EUCLIDEAN, INDEX_MASK, NO_INDEX, PACKED_MAX_CELLS
from . import batch as batch_kernels
from . import config, kernels, late

#: True under numba's CUDA simulator (set before numba was imported; fixed for the process).
SIMULATOR = bool(numba_config.ENABLE_CUDASIM)

#: Most rows and most columns of a lattice the kernels train (``gpusom.cuda.kernels._phase``).
LATTICE_AXIS_MAX = 2**31 - 1

#: Driver error codes of a refused cooperative launch (CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE,
#: CUDA_ERROR_NOT_SUPPORTED): nothing ran, so the per-step driver can run the slice instead.
COOPERATIVE_REFUSALS = (720, 801)


class DeviceData:
    """The training samples on the device, ``(n_samples, padded_dim)``, and ``missing``: true
    for each sample with NaN (missing) features."""

    def __init__(self, values, missing):
        self.values = cuda.to_device(values)
        self.missing = cuda.to_device(missing)
        self.any_missing = bool(missing.any())


class CUDAEngine(Engine):
    """numba ``@cuda.jit`` kernels on the current CUDA device."""

    name = "cuda"

    #: The launch settings (``gpusom.cuda.config``), read at every call.
    config = config

    @property
    def xp(self):
        """cupy on a GPU, numpy under numba's simulator."""
        if SIMULATOR:
            return np
        try:
            import cupy
        except ImportError as exc:
            raise BackendUnavailableError(
                f"GPU arrays need cupy ({exc}); {GPU_INSTALL_HINT}"
            ) from exc
        return cupy

    def as_array(self, value, name, ndim, allow_nan=False):
        """As ``gpusom._checks.as_float_array`` (same checks and messages), on the device."""
        xp = self.xp
        try:
            array = xp.asarray(value)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} must be a numeric array: {exc}") from None
        return _checks.checked_float_array(array, name, ndim, xp, allow_nan)

    def to_numpy(self, array):
        xp = self.xp
        return np.asarray(array) if xp is np else xp.asnumpy(xp.asarray(array))

    def check_memory(self, n_bytes, what):
        """Raise a ``ValueError`` naming the bytes when ``n_bytes`` exceed the free memory.

        Called before allocating, so a run that cannot fit fails with this message rather than
        with a CUDA out-of-memory error halfway through.
        """
        free = free_memory()
        if n_bytes > free:
            raise ValueError(
                f"{what} needs {n_bytes} bytes ({n_bytes / 2**30:.2f} GiB) of GPU memory but "
                f"only {free} bytes ({free / 2**30:.2f} GiB) are free on the device; use a "
                "smaller lattice, fewer samples or backend='cpu' (a float64 map takes about twice "
                "a float32 one's memory)"
            )

    def to_device(self, codebook, data):
        """The layout of ``gpusom.cuda.kernels``: the codebook ``(padded_dim, n_cells)``, the
        data ``(n_samples, padded_dim)``, zero-padded, both in the codebook's dtype, with the
        samples' missing-value flags (``DeviceData``)."""
        n_cells, dim = codebook.shape
        n_samples = data.shape[0]
        width = kernels.padded_dim(dim)
        self.check_memory(
            codebook.dtype.itemsize * width * (n_cells + n_samples),
            f"a codebook of {n_cells} cells and {n_samples} samples of {dim} features",
        )
        internal = np.zeros((width, n_cells), dtype=codebook.dtype)
        internal[:dim] = codebook.T
        padded = np.zeros((n_samples, width), dtype=codebook.dtype)
        padded[:, :dim] = data
        return cuda.to_device(internal), DeviceData(padded, np.isnan(data).any(axis=1))

    def to_host(self, codebook, dim):
        return np.ascontiguousarray(codebook.copy_to_host()[:dim].T)

    def train_online(
        self,
        codebook,
        data,
        order,
        sigmas,
        lrs,
        rows,
        cols,
        is_torus,
        neighborhood,
        truncate,
        topology=0,
        metric=0,
    ):
        threads = _threads_per_block()
        driver = _driver()
        n_steps = order.size
        if n_steps == 0:
            return np.empty(0, dtype=np.int64)
        if max(rows, cols) > LATTICE_AXIS_MAX:
            raise ValueError(
                f"the CUDA engine trains lattices of at most {LATTICE_AXIS_MAX} rows and "
                f"columns (its kernels step them in 32-bit integers); got {rows}x{cols}"
            )
        # Enough blocks for one cell per thread; more would only idle.
        blocks_needed = -(-codebook.shape[1] // threads)
        weight_bytes = 2 * (rows + cols) * codebook.dtype.itemsize
        self.check_memory(
            32 * n_steps + 16 * blocks_needed + weight_bytes, f"the schedules of {n_steps} steps"
        )
        record = cuda.to_device(np.full(n_steps, NO_INDEX, dtype=np.int64))
        # float32 BMUs meet in packed keys (one atomic per block), float64 in per-block pairs;
        # other metrics and missing values take the general kernels, with pairs.
        general = metric != EUCLIDEAN or data.any_missing
        packed = (
            not general and codebook.dtype == np.float32 and codebook.shape[1] <= PACKED_MAX_CELLS
        )
        partials = (
            ()
            if packed
            else tuple(
                cuda.device_array((2, blocks_needed), dtype=t) for t in (np.float64, np.int64)
            )
        )
        options = (metric, data.missing) if general else ()
        device_order = cuda.to_device(np.ascontiguousarray(order, dtype=np.int64))
        device_sigmas = cuda.to_device(np.ascontiguousarray(sigmas, dtype=np.float64))
        device_lrs = cuda.to_device(np.ascontiguousarray(lrs, dtype=np.float64))
        # The per-axis weight tables (kernels._fill_axis_weights), NaN until written: an entry
        # read before it is written spoils the map instead of passing unnoticed.
        weights = cuda.to_device(np.full((2, rows + cols), np.nan, dtype=codebook.dtype))

        def steps(start, stop):
            """The kernels' arguments for steps ``start`` to ``stop - 1``."""
            return (
                codebook, data.values, device_order[start:stop], device_sigmas[start:stop],
                device_lrs[start:stop], weights, rows, cols, bool(is_torus), neighborhood,
                float(truncate), topology, *options, record[start:stop], *partials,
            )  # fmt: skip

        # The two sample rows of a step go to each block's shared memory when they fit
        # (gpusom.cuda.kernels._sample_rows); wider rows are read from global memory.
        row_bytes = 2 * data.values.shape[1] * data.values.dtype.itemsize
        shared = row_bytes if row_bytes <= config.SHARED_ROWS_BYTES else 0
        variant = "any" if general else "packed" if packed else "pairs"
        # Batched late steps (gpusom.cuda.late) take the packed keys' case.
        blocks = np.zeros(n_steps, dtype=np.int64)
        if packed:
            blocks = late.plan(
                sigmas, neighborhood, truncate, topology, rows, cols, codebook.shape[0],
                free_memory(),
            )  # fmt: skip
        if blocks.any():
            n_cells, largest = codebook.shape[1], int(blocks.max())
            self.check_memory(late.Scratch.bytes(largest, n_cells), "batched late steps")
            scratch = late.Scratch(largest, n_cells)
            whole_run = steps(0, n_steps)  # the batched kernels index the run by step
        for start, stop, batched in late.stretches(blocks):
            if batched:
                late.run_block(scratch, whole_run, start, stop, threads)
            else:
                driver(steps(start, stop), variant, threads, blocks_needed, shared)
        found = record.copy_to_host()
        return found & INDEX_MASK if packed else found

    def find_bmus(self, data, codebook, k=1, metric=0):
        """Exact best units in blocks (``gpusom._bmu_search``): cupy matrix products give the
        scores, the :func:`kernels.rerank` kernel (one block per sample) ranks the candidates."""
        xp = self.xp
        data, codebook = xp.asarray(data), xp.asarray(codebook)
        n, dim = data.shape
        n_cells = codebook.shape[0]
        self.check_memory(
            _bmu_search.search_bytes(n, n_cells, dim, k),
            f"the BMUs of {n} samples on {n_cells} cells",
        )
        threads = _threads_per_block()

        def rerank(dots, *rest):
            kernels.rerank[min(dots.shape[0], config.MAX_BLOCKS), threads](dots, *rest)

        return _bmu_search.blocked_bmus(data, codebook, k, xp, rerank, metric)

    #: The batch kernels, run by ``gpusom._batch``.
    batch = batch_kernels


ENGINE = CUDAEngine()


def free_memory():
    """Bytes of device memory free now."""
    return cuda.current_context().get_memory_info()[0]


def probe():
    """Compile and run one tiny training step, and touch cupy if it is installed.

    Raises whatever goes wrong (no driver or device, no NVRTC or device runtime library, a
    compute capability the installed toolkit cannot build for, a cupy that imports but cannot
    run); ``gpusom._backend`` turns that into one warning or error with the cause.
    """
    if not (SIMULATOR or cuda.is_available()):
        raise BackendUnavailableError("numba finds no CUDA driver or device")
    codebook = np.zeros((6, 2), dtype=np.float32)
    state = ENGINE.to_device(codebook, np.ones((2, 2), dtype=np.float32))
    one = np.ones(1)
    ENGINE.train_online(*state, np.zeros(1, dtype=np.int64), one, one, 2, 3, False, 0, 1.0, 0)
    cuda.synchronize()
    try:
        import cupy
    except ImportError:
        return  # training needs no cupy; analysis then runs on the CPU
    if not SIMULATOR:
        cupy.asarray([1.0, 2.0]).sum().item()


def _threads_per_block():
    threads = config.THREADS_PER_BLOCK
    if not 1 <= threads <= kernels.MAX_THREADS:
        raise ValueError(
            f"gpusom.cuda.config.THREADS_PER_BLOCK must be in 1..{kernels.MAX_THREADS}, "
            f"got {threads}"
        )
    return threads


#: The training kernels by variant: packed float32 keys, per-block pairs, or any metric and
#: missing values (pairs). Looked up at each launch, so tests can stand in for a kernel.
PHASE_KERNELS = {"packed": "train_phase_packed", "pairs": "train_phase", "any": "train_phase_any"}
PERSISTENT_KERNELS = {
    "packed": "train_persistent_packed",
    "pairs": "train_persistent",
    "any": "train_persistent_any",
}


def _per_step(args, variant, threads, blocks_needed, shared):
    """One launch per phase, with ``shared`` bytes of dynamic shared memory per block; the
    kernel boundary orders the phases."""
    kernel = getattr(kernels, PHASE_KERNELS[variant])
    launch = kernel[min(blocks_needed, config.MAX_BLOCKS), threads, 0, shared]
    for t in range(args[2].size + 1):
        launch(*args, t)


def _persistent(args, variant, threads, blocks_needed, shared):
    """All phases in one cooperative launch, sized to what the device runs at once with
    ``shared`` bytes of dynamic shared memory per block."""
    blocks = min(blocks_needed, config.PERSISTENT_BLOCKS or blocks_needed)
    kernel = getattr(kernels, PERSISTENT_KERNELS[variant])
    if SIMULATOR:
        # The simulator runs blocks one after another: grid.sync() is right with one block only.
        kernel[1, threads, 0, shared](*args)
        return
    # compile() goes through numba's disk cache (a specialize()d copy would not) and returns
    # the kernel that the launch below then finds in memory.
    compiled = kernel.compile(tuple(kernel.typeof_pyval(a) for a in args))
    blocks = min(blocks, compiled.max_cooperative_grid_blocks(threads, shared))
    try:
        if blocks < 1:
            raise _Refused(f"no cooperative block of {threads} threads fits a multiprocessor")
        kernel[blocks, threads, 0, shared](*args)
    except Exception as exc:
        if not isinstance(exc, _Refused) and getattr(exc, "code", None) not in COOPERATIVE_REFUSALS:
            raise
        warnings.warn(
            f"this GPU refused the persistent (cooperative) launch ({exc}); gpusom uses the "
            "per-step driver from now on (gpusom.cuda.config.DRIVER = 'per_step')",
            RuntimeWarning,
            stacklevel=2,
        )
        config.DRIVER = "per_step"
        _per_step(args, variant, threads, blocks_needed, shared)


class _Refused(Exception):
    """The persistent driver cannot run on this device."""


DRIVERS = {"persistent": _persistent, "per_step": _per_step}


def _driver():
    if config.DRIVER not in DRIVERS:
        valid = ", ".join(repr(d) for d in DRIVERS)
        raise ValueError(f"gpusom.cuda.config.DRIVER must be one of {valid}; got {config.DRIVER!r}")
    return DRIVERS[config.DRIVER]
