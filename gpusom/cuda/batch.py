"""``@cuda.jit`` kernels of the batch SOM on a GPU (driver: ``gpusom._batch``).

Mirrors ``gpusom.cpu.batch``: host functions of the same names and signatures, each launching
one kernel with the sizes of ``gpusom.cuda.config`` read at call time (grid-stride loops, so any
size is correct). One thread owns one output element ``(cell, feature)`` and adds its terms in
the CPU kernel's order, in float64: no atomics, so results do not depend on scheduling, and
equal the CPU's to rounding (fused multiply-adds aside). Arrays are the engine's (cupy, or
numpy under numba's simulator).
"""

import numpy as np
from numba import cuda

from .._batch import axis_reach, first_at_least, row_reach, window_runs
from .._math import axis_delta, axis_weight, quadrance, radial_weight, window_radius
from . import config


def _launch(kernel, work):
    """``kernel`` configured for ``work`` elements: one per thread, up to ``MAX_BLOCKS``."""
    threads = config.THREADS_PER_BLOCK
    return kernel[max(1, min(-(-work // threads), config.MAX_BLOCKS)), threads]


def cell_sums(data, order, starts, sums):
    """As ``gpusom.cpu.batch.cell_sums``: one thread per ``(cell, feature)``."""
    _launch(_cell_sums, sums.size)(data, order, starts, sums)


def smooth_axis(src, dst, sigma, size, stride, is_torus, neighborhood, truncate):
    """As ``gpusom.cpu.batch.smooth_axis``: one thread per ``(cell, column)`` of ``dst``."""
    _launch(_smooth_axis, dst.size)(src, dst, sigma, size, stride, is_torus, neighborhood, truncate)


def smooth_direct(src, dst, sources, sigma, rows, cols, is_torus, neighborhood, truncate, topology):
    """As ``gpusom.cpu.batch.smooth_direct``: one thread per ``(cell, column)`` of ``dst``."""
    _launch(_smooth_direct, dst.size)(
        src, dst, sources, sigma, rows, cols, is_torus, neighborhood, truncate, topology
    )


@cuda.jit(cache=True)
def _cell_sums(data, order, starts, sums):
    n_cells, dim = sums.shape
    for i in range(cuda.grid(1), n_cells * dim, cuda.gridsize(1)):
        b, f = i // dim, i % dim
        total = 0.0
        for j in range(starts[b], starts[b + 1]):
            total += np.float64(data[order[j], f])
        sums[b, f] = total


@cuda.jit(cache=True)
def _smooth_axis(src, dst, sigma, size, stride, is_torus, neighborhood, truncate):
    n_cells, width = src.shape
    reach = axis_reach(window_radius(neighborhood, sigma, truncate), size)
    for i in range(cuda.grid(1), n_cells * width, cuda.gridsize(1)):
        n, f = i // width, i % width
        position = (n // stride) % size
        base = n - position * stride
        lo0, hi0, lo1, hi1 = window_runs(position, reach, size, is_torus)
        total = 0.0
        for run in range(2):
            lo, hi = (lo0, hi0) if run == 0 else (lo1, hi1)
            for other in range(lo, hi):
                weight = axis_weight(
                    neighborhood, axis_delta(position, other, size, is_torus), sigma
                )
                total += weight * src[base + other * stride, f]
        dst[n, f] = total


@cuda.jit(cache=True)
def _smooth_direct(
    src, dst, sources, sigma, rows, cols, is_torus, neighborhood, truncate, topology
):
    n_cells, width = src.shape
    radius = window_radius(neighborhood, sigma, truncate)
    q_max = 4.0 * radius * radius
    reach = row_reach(radius, rows, topology)
    for i in range(cuda.grid(1), n_cells * width, cuda.gridsize(1)):
        n, f = i // width, i % width
        row, col = n // cols, n % cols
        total = 0.0
        runs = window_runs(row, reach, rows, is_torus)
        for run in range(2):
            lo, hi = runs[2 * run], runs[2 * run + 1]
            first = first_at_least(sources, lo * cols)
            stop = first_at_least(sources, hi * cols) if hi > lo else first
            for s in range(first, stop):
                b = sources[s]
                q = quadrance(row, col, b // cols, b % cols, rows, cols, is_torus, topology)
                if q <= q_max:
                    total += radial_weight(neighborhood, 0.25 * q, sigma) * src[b, f]
        dst[n, f] = total
