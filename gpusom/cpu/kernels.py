"""``@njit`` kernels of the CPU backend: online training and exact BMU re-ranking.

Layout: the codebook is kept as a structure of arrays, ``codebook[k, n]`` = feature ``k`` of cell
``n``, with the feature axis padded with zero rows to a multiple of four. Distances then vectorise
across cells for any ``dim`` (DESIGN.md section 6), and four features are summed per pass so the
accumulator is read and written ``dim / 4`` times instead of ``dim`` times.
"""

import numpy as np
from numba import njit, prange
from numba.core import types
from numba.extending import overload

from .._config import FASTMATH
from .._math import axis_delta, axis_weight, half_width, window_radius

#: Features summed per distance pass; the internal codebook pads ``dim`` to a multiple of this.
LANES = 4


def padded_dim(dim):
    """Rows of the internal codebook for ``dim`` features."""
    return -(-dim // LANES) * LANES


@njit(cache=True, fastmath=FASTMATH)
def squared_distances(codebook, x, out):
    """``out[n] = sum_k (codebook[k, n] - x[k])^2`` for the padded SoA codebook."""
    n_cells = codebook.shape[1]
    for k in range(0, codebook.shape[0], LANES):
        w0, w1, w2, w3 = codebook[k], codebook[k + 1], codebook[k + 2], codebook[k + 3]
        x0, x1, x2, x3 = x[k], x[k + 1], x[k + 2], x[k + 3]
        if k == 0:
            for n in range(n_cells):
                d0, d1, d2, d3 = w0[n] - x0, w1[n] - x1, w2[n] - x2, w3[n] - x3
                out[n] = (d0 * d0 + d1 * d1) + (d2 * d2 + d3 * d3)
        else:
            for n in range(n_cells):
                d0, d1, d2, d3 = w0[n] - x0, w1[n] - x1, w2[n] - x2, w3[n] - x3
                out[n] += (d0 * d0 + d1 * d1) + (d2 * d2 + d3 * d3)


def argmin_first(distances):
    """Index of the smallest non-negative distance, the lowest index on ties."""
    return int(np.argmin(distances))


@overload(argmin_first, jit_options={"cache": True})
def _argmin_first_jit(distances):
    # A non-negative float's bit pattern orders like an integer (DESIGN.md section 6), so the
    # search is an integer min that LLVM vectorises instead of a compare-and-branch loop.
    if distances.dtype == types.float32:

        def packed_key_min(distances):
            bits = distances.view(np.int32)
            best = np.int64(0x7FFFFFFFFFFFFFFF)
            for n in range(bits.size):
                best = min(best, (np.int64(bits[n]) << 32) | n)
            return best & 0xFFFFFFFF

        return packed_key_min

    def two_pass_min(distances):
        bits = distances.view(np.int64)
        best = bits[0]
        for n in range(bits.size):
            best = min(best, bits[n])
        for n in range(bits.size):
            if bits[n] == best:
                return n
        return 0

    return two_pass_min


@njit(cache=True, fastmath=FASTMATH)
def _axis_window(centre, reach, size, is_torus, starts, stops):
    """Runs of positions within ``reach`` of ``centre`` on one axis; returns how many (0-2)."""
    if reach < 0:
        return 0
    if is_torus:
        if 2 * reach + 1 >= size:
            starts[0], stops[0] = 0, size
            return 1
        lo, hi = centre - reach, centre + reach + 1
        if lo < 0:
            starts[0], stops[0], starts[1], stops[1] = lo + size, size, 0, hi
            return 2
        if hi > size:
            starts[0], stops[0], starts[1], stops[1] = lo, size, 0, hi - size
            return 2
        starts[0], stops[0] = lo, hi
        return 1
    starts[0], stops[0] = max(centre - reach, 0), min(centre + reach + 1, size)
    return 1


@njit(cache=True, fastmath=FASTMATH)
def update_window(
    codebook,
    x,
    dim,
    bmu,
    sigma,
    lr,
    rows,
    cols,
    is_torus,
    neighborhood,
    truncate,
    weight_by_delta,
    col_weight,
    runs,
):
    """One online update: ``w_n += lr * h(d(bmu, n)) * (x - w_n)`` over the truncated disk.

    Scratch: ``weight_by_delta`` (``max(rows, cols) + 1``) and ``col_weight`` (``cols``) in the
    codebook's dtype, ``runs`` a ``(4, 2)`` int64 array.
    """
    b_row, b_col = bmu // cols, bmu % cols
    radius = window_radius(neighborhood, sigma, truncate)
    radius_sq = radius * radius
    limit = max(rows, cols)
    widest = half_width(radius_sq, 0.0, limit)
    # One exp per grid distance; rows and columns share the table (separable weight).
    for delta in range(widest + 1):
        weight_by_delta[delta] = axis_weight(neighborhood, delta, sigma)
    col_starts, col_stops, row_starts, row_stops = runs[0], runs[1], runs[2], runs[3]
    for run in range(_axis_window(b_col, widest, cols, is_torus, col_starts, col_stops)):
        for c in range(col_starts[run], col_stops[run]):
            col_weight[c] = weight_by_delta[axis_delta(c, b_col, cols, is_torus)]
    for row_run in range(_axis_window(b_row, widest, rows, is_torus, row_starts, row_stops)):
        for r in range(row_starts[row_run], row_stops[row_run]):
            d_row = axis_delta(r, b_row, rows, is_torus)
            reach = half_width(radius_sq, float(d_row * d_row), limit)
            row_gain = codebook.dtype.type(lr) * weight_by_delta[d_row]
            base = r * cols
            for run in range(_axis_window(b_col, reach, cols, is_torus, col_starts, col_stops)):
                lo, hi = col_starts[run], col_stops[run]
                weights = col_weight[lo:hi]
                for k in range(dim):
                    w = codebook[k, base + lo : base + hi]
                    xk = x[k]
                    for c in range(hi - lo):
                        w[c] += row_gain * weights[c] * (xk - w[c])


@njit(cache=True, fastmath=FASTMATH)
def train_online(
    codebook, data, order, sigmas, lrs, rows, cols, is_torus, neighborhood, truncate, bmus
):
    """Run ``order.size`` online steps in place; record each step's BMU in ``bmus``.

    ``codebook`` is the padded SoA codebook ``(padded_dim, rows * cols)``; ``data`` is
    ``(n_samples, dim)`` in the codebook's dtype.
    """
    dim = data.shape[1]
    dtype = codebook.dtype
    x = np.zeros(codebook.shape[0], dtype)
    distances = np.empty(codebook.shape[1], dtype)
    weight_by_delta = np.empty(max(rows, cols) + 1, dtype)
    col_weight = np.empty(cols, dtype)
    runs = np.empty((4, 2), np.int64)
    for t in range(order.size):
        x[:dim] = data[order[t]]
        squared_distances(codebook, x, distances)
        bmu = argmin_first(distances)
        bmus[t] = bmu
        update_window(
            codebook,
            x,
            dim,
            bmu,
            sigmas[t],
            lrs[t],
            rows,
            cols,
            is_torus,
            neighborhood,
            truncate,
            weight_by_delta,
            col_weight,
            runs,
        )


@njit(cache=True, parallel=True)
def rerank(scores, tolerance, data, codebook, k, out_index, out_distance):
    """Exact top-``k`` (1 or 2) BMUs from approximate scores.

    ``scores[i, j]`` approximates ``||data[i] - codebook[j]||^2`` up to a per-row constant and an
    error below ``tolerance[i] / 2``. Every ``j`` whose score is within ``tolerance[i]`` of the
    ``k``-th smallest score is a candidate; candidates are ranked by the squared distance computed
    in float64 from direct differences, ties to the lowest index.
    """
    n_cells = scores.shape[1]
    dim = data.shape[1]
    for i in prange(scores.shape[0]):
        row = scores[i]
        first = second = np.inf
        for j in range(n_cells):
            s = row[j]
            if s < second:
                if s < first:
                    first, second = s, first
                else:
                    second = s
        threshold = (first if k == 1 else second) + tolerance[i]
        best_d, second_d = np.inf, np.inf
        best_j, second_j = -1, -1
        for j in range(n_cells):
            if row[j] > threshold:
                continue
            d = 0.0
            for f in range(dim):
                diff = np.float64(data[i, f]) - np.float64(codebook[j, f])
                d += diff * diff
            if d < best_d:
                second_d, second_j = best_d, best_j
                best_d, best_j = d, j
            elif d < second_d:
                second_d, second_j = d, j
        out_index[i, 0], out_distance[i, 0] = best_j, best_d
        if k == 2:
            out_index[i, 1], out_distance[i, 1] = second_j, second_d
