"""``@njit`` kernels of the batch SOM on the CPU (driver: ``gpusom._batch``).

Mirrors ``gpusom.cuda.batch``: the same functions and signatures, the same order of every
float64 sum, so the two engines agree to rounding (fused multiply-adds aside). Smoothing arrays
are ``(n_cells, width)`` float64: a cell's sums followed by its count.
"""

import numpy as np
from numba import njit

from .._batch import axis_reach, first_at_least, row_reach, window_runs
from .._config import FASTMATH
from .._math import axis_delta, axis_weight, quadrance, radial_weight, window_radius


@njit(cache=True, fastmath=FASTMATH)
def cell_sums(data, order, starts, sums):
    """``sums[b] = sum of data[order[j]]`` for ``j`` in ``starts[b]:starts[b + 1]``, in float64.

    ``data`` (n_samples, dim) float32/float64; ``order`` (n_samples,) int64 the samples grouped
    by BMU, in sample order within a cell; ``starts`` (n_cells + 1,) int64; ``sums``
    (n_cells, dim) float64, overwritten. Terms are added in ``order``, from zero.
    """
    n_cells, dim = sums.shape
    for b in range(n_cells):
        out = sums[b]
        out[:] = 0.0
        for j in range(starts[b], starts[b + 1]):
            x = data[order[j]]
            for f in range(dim):
                out[f] += np.float64(x[f])


@njit(cache=True, fastmath=FASTMATH)
def smooth_axis(src, dst, sigma, size, stride, is_torus, neighborhood, truncate):
    """One separable pass: ``dst[n] = sum_m a(delta) src[m]`` along one lattice axis.

    The axis has ``size`` positions ``stride`` cells apart (``(cols, 1)`` within a row,
    ``(rows, cols)`` within a column); ``a = axis_weight(neighborhood, delta, sigma)`` over
    ``|delta| <= window_radius(neighborhood, sigma, truncate)``, minimum images on a torus, each
    cell once. ``src``, ``dst``: (n_cells, width) float64; terms in ascending position.
    """
    n_cells, width = src.shape
    reach = axis_reach(window_radius(neighborhood, sigma, truncate), size)
    weight_by_delta = np.empty(reach + 1)
    for delta in range(reach + 1):
        weight_by_delta[delta] = axis_weight(neighborhood, delta, sigma)
    for n in range(n_cells):
        position = (n // stride) % size
        base = n - position * stride
        out = dst[n]
        out[:] = 0.0
        lo0, hi0, lo1, hi1 = window_runs(position, reach, size, is_torus)
        for run in range(2):
            lo, hi = (lo0, hi0) if run == 0 else (lo1, hi1)
            for other in range(lo, hi):
                weight = weight_by_delta[axis_delta(position, other, size, is_torus)]
                row = src[base + other * stride]
                for f in range(width):
                    out[f] += weight * row[f]


@njit(cache=True, fastmath=FASTMATH)
def smooth_direct(src, dst, sources, sigma, rows, cols, is_torus, neighborhood, truncate, topology):
    """Direct sum over the disk: ``dst[n] = sum_b h(d(b, n)) src[b]`` for ``b`` in ``sources``.

    ``h = radial_weight(neighborhood, quadrance / 4, sigma)`` over ``quadrance <= 4 radius^2``
    (``gpusom._math``, exact integers, either topology). ``sources`` (int64, ascending) are the
    cells with samples: the others add nothing; only those in the rows the disk reaches
    (``row_reach``, found by binary search) are visited. ``src``, ``dst``: (n_cells, width)
    float64; terms in the order of ``sources`` (the row runs are ascending).
    """
    n_cells, width = src.shape
    radius = window_radius(neighborhood, sigma, truncate)
    q_max = 4.0 * radius * radius
    reach = row_reach(radius, rows, topology)
    for n in range(n_cells):
        row, col = n // cols, n % cols
        out = dst[n]
        out[:] = 0.0
        runs = window_runs(row, reach, rows, is_torus)
        for run in range(2):
            lo, hi = runs[2 * run], runs[2 * run + 1]
            first = first_at_least(sources, lo * cols)
            stop = first_at_least(sources, hi * cols) if hi > lo else first
            for s in range(first, stop):
                b = sources[s]
                q = quadrance(row, col, b // cols, b % cols, rows, cols, is_torus, topology)
                if q > q_max:
                    continue
                weight = radial_weight(neighborhood, 0.25 * q, sigma)
                vector = src[b]
                for f in range(width):
                    out[f] += weight * vector[f]
