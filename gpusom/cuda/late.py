"""Batched late steps on the device: when they pay, and how a block of them runs.

A plain step reads the whole codebook to find one BMU: on a large map about 85 us on an H200
(benchmarks/RESULTS.md, "Second device run"), however few cells its window moves. Late in
training the window holds a few cells, and a block of steps can share one pass over the codebook
(``gpusom.cuda.kernels``, "Batched late steps"): every distance the block's searches could need,
then the steps in order in one thread block, each refreshing only what its update moved. The
BMUs and the codebook are the plain steps' own.

:func:`plan` chooses, step by step, plain or batched steps and the block size with a cost
model; :func:`stretches` cuts the run accordingly. The model's device figures are the H200's
where the runs of benchmarks/RESULTS.md measured them (bandwidth, a launch, a step's floor) and
estimates elsewhere (the arithmetic and cache rates, the one-block walk): RESULTS.md, "Batched
late steps on the device", holds the model, and ``benchmarks/gpu_bench.py`` prints it next to
the measured step.
"""

import itertools

import numpy as np
from numba import cuda

from .._math import BUBBLE, RECTANGULAR, TRIANGLE
from . import config, kernels

#: Device figures of the cost model (seconds, bytes and flops per second).
DEVICE = {
    # The codebook copy rate of the H200 runs (3.02-3.37 TB/s).
    "bandwidth": 3.0e12,
    # A plain persistent step of the walk-through (5.6-5.8 us): barriers and the BMU's chain.
    "step_floor": 5.7e-6,
    # One launch from Python: the per-step driver's walk-through step (65-98 us, one launch).
    "launch": 8.0e-5,
    # Estimates, not measured (RESULTS.md): the float32 rate of chains of subtract and FMA,
    "flops": 3.3e13,
    # one multiprocessor's share of it (132 of them),
    "block_flops": 2.5e11,
    # a walk step: five barrier-separated stages, each with a trip to the L2 cache,
    "walk_step": 5.0e-6,
    # and the L2 cache's read rate, for the cell vectors late_distances reads again for every
    # fourth sample.
    "cache_bandwidth": 6.0e12,
}

#: Steps per block the model chooses from.
BLOCKS = (16, 32, 64, 128, 256)

#: A batched stretch must be modelled this many times faster than plain steps: the model's
#: unmeasured figures may be off by that much.
MARGIN = 2.0

#: Most bytes of device memory the batched steps' distances take.
MEMORY = 2**30


def plain_step_seconds(n_cells, width):
    """Modelled time of a plain step: one read of the codebook, or the floor."""
    return max(DEVICE["step_floor"], 4.0 * n_cells * width / DEVICE["bandwidth"])


def window_cells(sigmas, neighborhood, truncate, topology, rows, cols):
    """Cells of the box :func:`gpusom.cuda.kernels.late_walk` visits around each step's BMU:
    :func:`gpusom.cuda.kernels.window_box` for a whole run at once (a test holds them equal)."""
    sigmas = np.asarray(sigmas, dtype=np.float64)
    radius = sigmas if neighborhood in (BUBBLE, TRIANGLE) else truncate * sigmas
    reach_rows = radius if topology == RECTANGULAR else radius * 1.1547005383792517
    box_rows = np.minimum(2 * np.floor(np.minimum(reach_rows, rows) + 1.0) + 1, rows)
    box_cols = np.minimum(2 * np.floor(np.minimum(radius, cols) + 1.5) + 1, cols)
    return box_rows * box_cols


def late_step_seconds(cells, block, n_cells, width):
    """Modelled time per step of batched steps of ``block`` steps with ``cells`` in each box."""
    return (
        2.0 * n_cells * width / DEVICE["flops"]  # every distance of the block, once per step
        + n_cells * width / DEVICE["cache_bandwidth"]  # a quarter of the codebook, per step
        + 8.0 * n_cells / DEVICE["bandwidth"]  # written, and read back for the tile minima
        + DEVICE["walk_step"]
        + cells * (block - 1) / 2.0 * 2.0 * width / DEVICE["block_flops"]  # refreshed distances
        + 3.0 * DEVICE["launch"] / block
    )


def plan(sigmas, neighborhood, truncate, topology, rows, cols, width, free_bytes):
    """Steps per batched block for each step of a run: 0 where the step runs plain.

    ``config.LATE_STEPS`` decides: ``"never"``; ``"always"`` (every step, in blocks of
    ``config.LATE_BLOCK`` or 16: what the tests compare with plain steps); ``"auto"``, each step
    whose modelled batched time, at the block size best for its window, is ``MARGIN`` times
    below a plain step's. Blocks are capped by ``MEMORY`` and a quarter of ``free_bytes``.
    """
    mode = config.LATE_STEPS
    if mode not in ("auto", "always", "never"):
        raise ValueError(
            f"gpusom.cuda.config.LATE_STEPS must be 'auto', 'always' or 'never'; got {mode!r}"
        )
    n_steps = len(sigmas)
    n_cells = rows * cols
    largest = int(min(MEMORY, free_bytes // 4) // (4 * n_cells))
    if mode == "never" or largest < 2:
        return np.zeros(n_steps, dtype=np.int64)
    if config.LATE_BLOCK is not None:
        choices = [int(config.LATE_BLOCK)]
        if choices[0] < 1:
            raise ValueError(f"gpusom.cuda.config.LATE_BLOCK must be positive; got {choices[0]}")
    else:
        choices = list(BLOCKS) if mode == "auto" else [16]
    choices = np.array([b for b in choices if b <= largest] or [largest])
    if mode == "always":
        return np.full(n_steps, choices[0], dtype=np.int64)
    cells = window_cells(sigmas, neighborhood, truncate, topology, rows, cols)
    late = np.array([late_step_seconds(cells, block, n_cells, width) for block in choices])
    best = late.argmin(axis=0)
    pays = MARGIN * late[best, np.arange(n_steps)] < plain_step_seconds(n_cells, width)
    return np.where(pays, choices[best], 0).astype(np.int64)


def stretches(blocks):
    """``(start, stop, batched)`` runs of the steps of a :func:`plan`: plain ones whole, batched
    ones a block at a time, each as long as its first step's block size says."""
    batched = blocks > 0
    edges = np.flatnonzero(np.diff(batched.astype(np.int8))) + 1
    for start, stop in itertools.pairwise([0, *edges.tolist(), len(blocks)]):
        if not batched[start]:
            yield start, stop, False
            continue
        while start < stop:
            first, start = start, min(start + int(blocks[start]), stop)
            yield first, start, True


class Scratch:
    """The device arrays of a block of ``block`` batched steps on ``n_cells`` cells."""

    def __init__(self, block, n_cells):
        n_tiles = -(-n_cells // kernels.TILE)
        n_groups = -(-n_tiles // kernels.GROUP)
        self.distances = cuda.device_array((block, n_cells), dtype=np.float32)
        self.tile_keys = cuda.device_array((block, n_tiles), dtype=np.int64)
        self.group_keys = cuda.device_array((block, n_groups), dtype=np.int64)

    @staticmethod
    def bytes(block, n_cells):
        n_tiles = -(-n_cells // kernels.TILE)
        return block * (4 * n_cells + 8 * n_tiles + 8 * (-(-n_tiles // kernels.GROUP)))


def run_block(scratch, args, first, stop, threads):
    """Steps ``first`` to ``stop - 1`` of the run whose packed-kernel arguments (without
    ``record``) are ``args[:-1]`` and whose record is ``args[-1]``: three launches."""
    codebook, data, order = args[0], args[1], args[2]
    count = stop - first
    distances = scratch.distances[:count]
    tile_keys = scratch.tile_keys[:count]
    group_keys = scratch.group_keys[:count]
    # A tile must be one block's cells (gpusom.cuda.kernels.late_distances).
    tile_threads = max(kernels.TILE, threads // kernels.TILE * kernels.TILE)
    n_cells = codebook.shape[1]
    blocks = min(-(-n_cells // tile_threads), config.MAX_BLOCKS)
    kernels.late_distances[blocks, tile_threads](codebook, data, order, first, distances, tile_keys)
    pairs = group_keys.shape[0] * group_keys.shape[1]
    kernels.late_group_keys[min(-(-pairs // threads), config.MAX_BLOCKS), threads](
        tile_keys, group_keys
    )
    kernels.late_walk[1, threads](*args[:-1], first, distances, tile_keys, group_keys, args[-1])
