"""``@cuda.jit`` kernels of the CUDA backend: online training and exact BMU re-ranking.

Layout: the codebook is a structure of arrays, ``codebook[k, n]`` = feature ``k`` of cell ``n``,
so the threads of a warp read consecutive cells (coalesced). Its feature axis is padded with zero
rows to a multiple of ``LANES``: distances are summed four features per pass (the CPU kernel's
grouping), and zero lanes add exactly nothing. Cells outside the step's window, nearly all of a
large map, are only read, two passes at a time: eight independent loads in flight per thread.
The training data is ``(n_samples, padded_dim)``, zero-padded alike.

One online step needs the whole grid to agree on one thing only: the BMU. Training therefore
runs in *phases*; phase ``t`` of a slice of ``T`` steps

1. resolves the BMU of step ``t - 1`` from what every block published in phase ``t - 1``;
2. lets each thread, for the cells it owns, apply the update of step ``t - 1`` and compute the
   distance of the updated vector (still in registers) to the sample of step ``t``;
3. reduces (distance, index) over the block and publishes the block's best for step ``t``.

A thread owns the same cells (a grid-stride loop) in every phase, so nobody reads a vector that
another thread is updating, and one grid-wide barrier per step is enough: a kernel boundary in
the per-step driver (:func:`train_phase`), ``grid.sync()`` in the persistent one
(:func:`train_persistent`). The codebook is read once per step and, inside the window, written
once.

Within a phase, each block first copies the two data rows of its steps (the update's and the
search's) into shared memory when they fit (:func:`_sample_rows`), and each thread walks its
cells as (row, column) pairs stepped in 32-bit integers. The separable neighbourhoods on the
rectangular lattice take their weight factors from per-axis tables that the grid writes one
phase ahead (:func:`_fill_axis_weights`).

Global BMU stage: float32 distances are non-negative, so their bit patterns order like integers and
``key = bits << 32 | index`` (``gpusom._math.packed_key``) orders by distance, then by index: one
64-bit ``atomic.min`` per block and step gives the lowest-index BMU. A float64 distance fills a key
on its own, so float64 takes two stages: each block writes its best (distance, index) pair, and
after the barrier every block reduces those pairs itself. The device functions tell the two apart by
``part_d is None`` (the ``*_packed`` kernels pass None): numba prunes that branch when compiling, so
each variant carries only its own code (fewer registers, more resident threads).

Block reductions use shared memory only (no warp shuffles), which numba's simulator can run.
Kernels are compiled without fastmath: its flush-to-zero and approximate division would change
results against the CPU path; multiply-adds are contracted into FMAs regardless.
"""

import math

import numpy as np
from numba import cuda
from numba.extending import register_jitable

from .._math import (
    COSINE,
    EUCLIDEAN,
    INDEX_MASK,
    LANES,
    MANHATTAN,
    NO_INDEX,
    RECTANGULAR,
    axis_delta,
    axis_weight,
    axis_weight_sq,
    cosine_distance,
    exact_distance,
    hex_offsets,
    is_separable,
    packed_key,
    quadrance,
    radial_weight,
    ranks_before,
    window_radius,
)

#: Largest block the kernels support: the size of their static shared-memory buffers.
MAX_THREADS = 256

INF = math.inf


def padded_dim(dim):
    """Rows of the device codebook (and columns of the device data) for ``dim`` features."""
    return -(-dim // LANES) * LANES


@cuda.jit(device=True)
def _merge_top2(a1d, a1i, a2d, a2i, b1d, b1i, b2d, b2i):
    """The two best of two sorted pairs of (distance, index) pairs, sorted."""
    if ranks_before(b1d, b1i, a1d, a1i):
        if ranks_before(a1d, a1i, b2d, b2i):
            return b1d, b1i, a1d, a1i
        return b1d, b1i, b2d, b2i
    if ranks_before(b1d, b1i, a2d, a2i):
        return a1d, a1i, b1d, b1i
    return a1d, a1i, a2d, a2i


@cuda.jit(device=True)
def _block_top2(shared_d, shared_i, a1d, a1i, a2d, a2i):
    """The two best (distance, index) pairs over the block; every thread receives them.

    Tree reduction in shared memory (``shared_d``/``shared_i`` of shape ``(2, MAX_THREADS)``);
    any block size works. All threads of the block must call it.
    """
    tid = cuda.threadIdx.x
    size = cuda.blockDim.x
    shared_d[0, tid], shared_i[0, tid] = a1d, a1i
    shared_d[1, tid], shared_i[1, tid] = a2d, a2i
    half = 1
    while half < size:
        half *= 2
    half //= 2
    cuda.syncthreads()
    while half > 0:
        other = tid + half
        if tid < half and other < size:
            m1d, m1i, m2d, m2i = _merge_top2(
                shared_d[0, tid],
                shared_i[0, tid],
                shared_d[1, tid],
                shared_i[1, tid],
                shared_d[0, other],
                shared_i[0, other],
                shared_d[1, other],
                shared_i[1, other],
            )
            shared_d[0, tid], shared_i[0, tid] = m1d, m1i
            shared_d[1, tid], shared_i[1, tid] = m2d, m2i
        cuda.syncthreads()
        half //= 2
    r1d, r1i, r2d, r2i = shared_d[0, 0], shared_i[0, 0], shared_d[1, 0], shared_i[1, 0]
    # The buffers are reused by the next reduction: nobody may write before all have read.
    cuda.syncthreads()
    return r1d, r1i, r2d, r2i


@cuda.jit(device=True)
def _packed_key(distance, index):
    """``float32 bits of distance << 32 | index``: orders by distance, then by index."""
    box = cuda.local.array(1, np.float32)
    box[0] = distance
    return packed_key(box.view(np.int32)[0], index)


@cuda.jit(device=True)
def _lane_sum(d0, d1, d2, d3):
    """Sum of squares of one pass of ``LANES`` differences, grouped as the CPU kernel groups it."""
    return (d0 * d0 + d1 * d1) + (d2 * d2 + d3 * d3)


@cuda.jit(device=True)
def _sample_rows(data, previous, sample):
    """Rows ``previous`` and ``sample`` of ``data``, read by every cell of a phase.

    In the launch's dynamic shared memory when it holds both (the drivers size it with
    ``gpusom.cuda.config.SHARED_ROWS_BYTES``): each row is then read from global memory once per
    block, not once per cell. Wider rows are read where they are. All threads of the block must
    call it; the caller's grid barrier (or the launch boundary) orders the next phase's writes
    after this phase's reads.
    """
    buffer = cuda.shared.array(0, data.dtype)
    width = data.shape[1]
    if buffer.size < 2 * width:
        return data[previous], data[sample]
    for k in range(cuda.threadIdx.x, width, cuda.blockDim.x):
        buffer[k] = data[previous, k]
        buffer[width + k] = data[sample, k]
    cuda.syncthreads()
    return buffer[:width], buffer[width : 2 * width]


@cuda.jit(device=True)
def _measure(codebook, n, x):
    """Squared distance of cell ``n`` to the sample ``x`` (the cell is not updated this step).

    Two passes per iteration: with no store in between, a thread has eight codebook loads in
    flight at once, which is what a search over a codebook far larger than the caches needs to
    approach the memory bandwidth. The sum is the same sequence of passes as
    :func:`_update_and_measure`.
    """
    total = codebook.dtype.type(0)
    width = codebook.shape[0]
    # An unsigned feature index, in every feature loop here, for the reason the cell's is
    # (see _visit): numba would guard each signed index against negative values.
    k = np.uint32(0)
    while k + 2 * LANES <= width:
        w0, w1 = codebook[k, n], codebook[k + 1, n]
        w2, w3 = codebook[k + 2, n], codebook[k + 3, n]
        w4, w5 = codebook[k + 4, n], codebook[k + 5, n]
        w6, w7 = codebook[k + 6, n], codebook[k + 7, n]
        total += _lane_sum(w0 - x[k], w1 - x[k + 1], w2 - x[k + 2], w3 - x[k + 3])
        total += _lane_sum(w4 - x[k + 4], w5 - x[k + 5], w6 - x[k + 6], w7 - x[k + 7])
        k = np.uint32(k + 2 * LANES)
    if k < width:
        total += _lane_sum(
            codebook[k, n] - x[k],
            codebook[k + 1, n] - x[k + 1],
            codebook[k + 2, n] - x[k + 2],
            codebook[k + 3, n] - x[k + 3],
        )
    return total


@cuda.jit(device=True)
def _update_and_measure(codebook, n, gain, source, x):
    """Update cell ``n`` towards the row ``source``; the distance of the result to ``x``.

    One pass of ``LANES`` features at a time. Every load of a pass comes before its stores: the
    compiler cannot tell the codebook and the data apart, so a load written after a store would
    wait for it.
    """
    total = codebook.dtype.type(0)
    k = np.uint32(0)
    while k < codebook.shape[0]:
        w0, w1 = codebook[k, n], codebook[k + 1, n]
        w2, w3 = codebook[k + 2, n], codebook[k + 3, n]
        s0, s1, s2, s3 = source[k], source[k + 1], source[k + 2], source[k + 3]
        x0, x1, x2, x3 = x[k], x[k + 1], x[k + 2], x[k + 3]
        w0 += gain * (s0 - w0)
        w1 += gain * (s1 - w1)
        w2 += gain * (s2 - w2)
        w3 += gain * (s3 - w3)
        codebook[k, n], codebook[k + 1, n] = w0, w1
        codebook[k + 2, n], codebook[k + 3, n] = w2, w3
        total += _lane_sum(w0 - x0, w1 - x1, w2 - x2, w3 - x3)
        k = np.uint32(k + LANES)
    return total


@cuda.jit(device=True)
def _update_and_measure_any(codebook, n, gain, source, x, update, metric):
    """:func:`_update_and_measure` for any metric and missing (NaN) features, one feature at a
    time: the update (when ``update``) skips features missing from ``source``, the distance
    those missing from ``x``. Features are summed in order, as
    ``gpusom.cpu.kernels.metric_distances`` sums them; the result is in the codebook's dtype.
    """
    total = norm_w = norm_x = codebook.dtype.type(0)
    k = np.uint32(0)
    while k < codebook.shape[0]:
        w = codebook[k, n]
        if update:
            s = source[k]
            if s == s:
                w += gain * (s - w)
                codebook[k, n] = w
        xk = x[k]
        if xk == xk:
            if metric == EUCLIDEAN:
                total += (w - xk) * (w - xk)
            elif metric == MANHATTAN:
                total += abs(w - xk)
            else:
                total += w * xk
                norm_w += w * w
                norm_x += xk * xk
        k = np.uint32(k + 1)
    if metric == COSINE:
        return codebook.dtype.type(cosine_distance(total, norm_x, norm_w))
    return total


@cuda.jit(device=True)
def _resolve(record, part_d, part_i, step, shared_d, shared_i):
    """The global BMU of ``step`` from the block results published in the previous phase."""
    if part_d is None:
        return record[step] & INDEX_MASK
    slot = step % 2
    best_d, best_i = INF, NO_INDEX
    for block in range(cuda.threadIdx.x, cuda.gridDim.x, cuda.blockDim.x):
        if ranks_before(part_d[slot, block], part_i[slot, block], best_d, best_i):
            best_d, best_i = part_d[slot, block], part_i[slot, block]
    _, bmu, _, _ = _block_top2(shared_d, shared_i, best_d, best_i, INF, NO_INDEX)
    if cuda.blockIdx.x == 0 and cuda.threadIdx.x == 0:
        record[step] = bmu
    return bmu


@cuda.jit(device=True)
def _publish(best_key, best_d, best_i, record, part_d, part_i, step, shared_d, shared_i):
    """Reduce the threads' best cells over the block and publish the result for ``step``."""
    if part_d is None:
        # Keys ride in the index slot of the pair reduction (distance 0 for all): one tree.
        _, key, _, _ = _block_top2(shared_d, shared_i, 0.0, best_key, INF, NO_INDEX)
        if cuda.threadIdx.x == 0:
            cuda.atomic.min(record, step, key)
    else:
        # Two slots, by step parity: phase t writes slot t % 2 while every block may still be
        # reading slot (t - 1) % 2, which is overwritten only after the next barrier.
        d, i, _, _ = _block_top2(shared_d, shared_i, best_d, best_i, INF, NO_INDEX)
        if cuda.threadIdx.x == 0:
            part_d[step % 2, cuda.blockIdx.x] = d
            part_i[step % 2, cuda.blockIdx.x] = i


@cuda.jit(device=True)
def _fill_axis_weights(table, sigma, truncate, rows, cols, neighborhood):
    """The two factors of a separable weight on the rectangular lattice, by axis distance:
    ``table[d]`` for ``d`` rows, ``table[rows + d]`` for ``d`` columns, each rounded to the
    codebook's dtype as the CPU's weight tables round them. Only distances the window reaches
    are written; the whole grid shares the work.
    """
    # The window takes distances d with 4 d^2 <= 4 radius^2 (_visit), all below radius + 2.
    reach = min(window_radius(neighborhood, sigma, truncate) + 2.0, float(rows + cols))
    n_rows = min(rows, int(reach))
    n_cols = min(cols, int(reach))
    for i in range(cuda.grid(1), n_rows + n_cols, cuda.gridsize(1)):
        d = i if i < n_rows else i - n_rows
        at = i if i < n_rows else rows + d
        table[at] = table.dtype.type(axis_weight(neighborhood, d, sigma))


@cuda.jit(device=True)
def _gain(
    row, col, bmu_row, bmu_col, q, rows, cols, is_torus, neighborhood, topology, sigmas, step,
    rate, weights,
):  # fmt: skip
    """The update's gain (``rate`` times the neighbourhood weight) of cell ``(row, col)`` in the
    window of ``step``, whose BMU is ``(bmu_row, bmu_col)`` (all int64) and whose quadrance to the
    cell is ``q``; in the codebook's dtype (that of ``rate`` and ``weights``)."""
    dtype = weights.dtype.type
    # Read per cell in the window rather than held through the loop over the cells, as the
    # step's table: fewer registers (benchmarks/RESULTS.md).
    sigma = sigmas[step]
    # Rounded to the codebook's dtype factor by factor, as the CPU's weight tables.
    if topology == RECTANGULAR and is_separable(neighborhood):
        # Two loads from the step's table (_fill_axis_weights) instead of two float64 exps and
        # divisions per cell; the same factors, so the same gain.
        d_row = axis_delta(row, bmu_row, rows, is_torus)
        d_col = axis_delta(col, bmu_col, cols, is_torus)
        table = weights[step % 2]
        return rate * table[np.uint64(d_row)] * table[np.uint64(rows + d_col)]
    if is_separable(neighborhood):
        d_row, twice_dx = hex_offsets(row, col, bmu_row, bmu_col, rows, cols, is_torus)
        row_sq, col_sq = 0.75 * d_row * d_row, 0.25 * twice_dx * twice_dx
        return (
            rate
            * dtype(axis_weight_sq(neighborhood, row_sq, sigma))
            * dtype(axis_weight_sq(neighborhood, col_sq, sigma))
        )
    return rate * dtype(radial_weight(neighborhood, 0.25 * float(q), sigma))


@cuda.jit(device=True)
def _visit(
    codebook, source, x, row, col, bmu_row, bmu_col, rows, cols, is_torus, neighborhood,
    topology, metric, plain, sigmas, step, radius_sq, rate, weights, best_key, best_d, best_i,
    part_d,
):  # fmt: skip
    """Cell ``(row, col)`` in a phase of :func:`_phase`: its update towards ``source`` (inside
    the window) and distance to ``x``; the thread's best (packed key, or distance and index),
    with the cell taken in."""
    # 64-bit from here: the lattice arithmetic below squares offsets.
    row, col = np.int64(row), np.int64(col)
    bmu_row, bmu_col = np.int64(bmu_row), np.int64(bmu_col)
    n = row * cols + col
    # The cell's codebook column by an unsigned index: numba adds the axis length to a
    # negative signed index, in every address; skipping that saves registers
    # (benchmarks/kernel_resources.py).
    cell = np.uint64(n)
    q = quadrance(row, col, bmu_row, bmu_col, rows, cols, is_torus, topology)
    # The CPU walks the disk as runs of columns (gpusom._math.half_width); this integer test
    # selects the same cells, since both settle the same inequality exactly.
    if float(q) <= 4.0 * radius_sq:
        gain = _gain(
            row, col, bmu_row, bmu_col, q, rows, cols, is_torus, neighborhood, topology, sigmas,
            step, rate, weights,
        )  # fmt: skip
        if plain:
            distance = _update_and_measure(codebook, cell, gain, source, x)
        else:
            distance = _update_and_measure_any(codebook, cell, gain, source, x, True, metric)
    elif plain:
        distance = _measure(codebook, cell, x)
    else:
        distance = _update_and_measure_any(codebook, cell, rate, source, x, False, metric)
    if part_d is None:
        best_key = min(best_key, _packed_key(distance, n))
    elif ranks_before(np.float64(distance), n, best_d, best_i):
        best_d, best_i = np.float64(distance), n
    return best_key, best_d, best_i


@cuda.jit(device=True)
def _phase(
    codebook,
    data,
    order,
    sigmas,
    lrs,
    weights,
    rows,
    cols,
    is_torus,
    neighborhood,
    truncate,
    topology,
    metric,
    missing,
    record,
    part_d,
    part_i,
    t,
    shared_d,
    shared_i,
):
    """Phase ``t`` (0 to ``order.size``): update of step ``t - 1``, BMU search of step ``t``.

    Plain Euclidean steps on complete samples take the two-pass loads of :func:`_measure` and
    :func:`_update_and_measure`; other metrics, and samples with missing features
    (``missing[i]``), :func:`_update_and_measure_any`.
    """
    n_steps = order.size
    searching = t < n_steps
    # Phases without an update (t = 0) or a search (t = T) use a valid row and ignore it.
    previous = order[max(t - 1, 0)]
    sample = order[min(t, n_steps - 1)]
    bmu_row = bmu_col = np.uint32(0)
    radius_sq = -1.0  # no cell is inside a window of negative squared radius
    rate = codebook.dtype.type(0)
    if t > 0:
        bmu = _resolve(record, part_d, part_i, t - 1, shared_d, shared_i)
        # Held in 32 bits through the loop over the cells (one register each, not two).
        bmu_row, bmu_col = np.uint32(bmu // cols), np.uint32(bmu % cols)
        radius = window_radius(neighborhood, sigmas[t - 1], truncate)
        radius_sq = radius * radius
        rate = codebook.dtype.type(lrs[t - 1])
    # The plain kernels pass missing=None: numba prunes the else branch, and with plain a
    # constant the general path below is compiled out of them.
    if missing is None:
        plain = True
    else:
        plain = metric == EUCLIDEAN and not missing[sample] and not missing[previous]
    source, x = _sample_rows(data, previous, sample)
    best_key = NO_INDEX
    best_d, best_i = INF, NO_INDEX
    # The thread's cells (a grid-stride loop) as (row, column), stepped in 32-bit integers:
    # one 32-bit division per phase instead of a 64-bit one per cell (a long subroutine on a
    # GPU). A launch has fewer than 2^31 threads and train_online refuses lattices of 2^31
    # rows or columns, so no value here wraps.
    first, stride = np.uint32(cuda.grid(1)), np.uint32(cuda.gridsize(1))
    width = np.uint32(cols)
    row, col = np.uint32(first // width), np.uint32(first % width)
    step_rows, step_cols = np.uint32(stride // width), np.uint32(stride % width)
    while row < rows:
        best_key, best_d, best_i = _visit(
            codebook, source, x, row, col, bmu_row, bmu_col, rows, cols, is_torus,
            neighborhood, topology, metric, plain, sigmas, t - 1, radius_sq, rate, weights,
            best_key, best_d, best_i, part_d,
        )  # fmt: skip
        row, col = np.uint32(row + step_rows), np.uint32(col + step_cols)
        if col >= width:
            row, col = np.uint32(row + 1), np.uint32(col - width)
    # The table of step t, for phase t + 1, in slot t % 2: phase t - 1 read that slot before
    # the barrier, phase t + 1 reads it after the next one. Written after the loop over the
    # cells, whose registers are free by then (benchmarks/RESULTS.md).
    if searching and topology == RECTANGULAR and is_separable(neighborhood):
        _fill_axis_weights(weights[t % 2], sigmas[t], truncate, rows, cols, neighborhood)
    if searching:
        _publish(best_key, best_d, best_i, record, part_d, part_i, t, shared_d, shared_i)


@cuda.jit(device=True)
def _one_phase(
    codebook, data, order, sigmas, lrs, weights, rows, cols, is_torus, neighborhood, truncate,
    topology, metric, missing, record, part_d, part_i, t,
):  # fmt: skip
    shared_d = cuda.shared.array((2, MAX_THREADS), np.float64)
    shared_i = cuda.shared.array((2, MAX_THREADS), np.int64)
    _phase(
        codebook, data, order, sigmas, lrs, weights, rows, cols, is_torus, neighborhood, truncate,
        topology, metric, missing, record, part_d, part_i, t, shared_d, shared_i,
    )  # fmt: skip


@cuda.jit(device=True)
def _all_phases(
    codebook, data, order, sigmas, lrs, weights, rows, cols, is_torus, neighborhood, truncate,
    topology, metric, missing, record, part_d, part_i,
):  # fmt: skip
    shared_d = cuda.shared.array((2, MAX_THREADS), np.float64)
    shared_i = cuda.shared.array((2, MAX_THREADS), np.int64)
    n_steps = order.size
    for t in range(n_steps + 1):
        _phase(
            codebook, data, order, sigmas, lrs, weights, rows, cols, is_torus, neighborhood,
            truncate, topology, metric, missing, record, part_d, part_i, t, shared_d, shared_i,
        )  # fmt: skip
        if t < n_steps:
            # The grid's handle is fetched per step: held through the phases, it kept two
            # registers busy in the loop over the cells (benchmarks/RESULTS.md).
            cuda.cg.this_grid().sync()


# The entry points. A kernel launch cannot pass None (numba-cuda 0.30 rejects it on a device;
# only the simulator accepts it), so the kernels hand None to the shared device functions
# themselves, which numba then compiles without that branch: the packed float32 kernels take
# no pair arrays, and all but the ``*_any`` kernels no metric and no missing-value flags, so
# the default path carries none of their code (registers: benchmarks/RESULTS.md).


@cuda.jit(cache=True)
def train_phase(
    codebook, data, order, sigmas, lrs, weights, rows, cols, is_torus, neighborhood, truncate,
    topology, record, part_d, part_i, t,
):  # fmt: skip
    """One phase per launch: the per-step reference driver launches phases 0 to ``order.size``.

    Euclidean distances on complete samples. ``codebook`` ``(padded_dim, n_cells)`` and
    ``data`` ``(n_samples, padded_dim)`` in one dtype; ``order`` int64, ``sigmas`` and ``lrs``
    float64 per step; ``weights`` ``(2, rows + cols)`` in the codebook's dtype, scratch for the
    per-axis weight tables. ``part_d``/``part_i`` ``(2, >= blocks)`` hold the block results and
    ``record`` (int64 per step) receives the BMU indices. For float32,
    :func:`train_phase_packed` is the faster variant; :func:`train_phase_any` takes any metric
    and missing values.
    """
    _one_phase(
        codebook, data, order, sigmas, lrs, weights, rows, cols, is_torus, neighborhood, truncate,
        topology, EUCLIDEAN, None, record, part_d, part_i, t,
    )  # fmt: skip


@cuda.jit(cache=True)
def train_phase_packed(
    codebook, data, order, sigmas, lrs, weights, rows, cols, is_torus, neighborhood, truncate,
    topology, record, t,
):  # fmt: skip
    """:func:`train_phase` for float32: ``record`` (starting at ``NO_INDEX``) collects packed
    keys through one 64-bit ``atomic.min`` per block; no pair arrays."""
    _one_phase(
        codebook, data, order, sigmas, lrs, weights, rows, cols, is_torus, neighborhood, truncate,
        topology, EUCLIDEAN, None, record, None, None, t,
    )  # fmt: skip


@cuda.jit(cache=True)
def train_phase_any(
    codebook, data, order, sigmas, lrs, weights, rows, cols, is_torus, neighborhood, truncate,
    topology, metric, missing, record, part_d, part_i, t,
):  # fmt: skip
    """:func:`train_phase` under ``metric`` (a code of ``gpusom._math.METRICS``), with
    ``missing`` (bool per sample) marking the samples with NaN (missing) features."""
    _one_phase(
        codebook, data, order, sigmas, lrs, weights, rows, cols, is_torus, neighborhood, truncate,
        topology, metric, missing, record, part_d, part_i, t,
    )  # fmt: skip


@cuda.jit(cache=True)
def train_persistent(
    codebook, data, order, sigmas, lrs, weights, rows, cols, is_torus, neighborhood, truncate,
    topology, record, part_d, part_i,
):  # fmt: skip
    """All phases of a slice in one cooperative launch, ``grid.sync()`` between phases.

    Arguments as :func:`train_phase` without ``t``. The grid must not exceed the device's
    cooperative limit (every block resident at once), or the barrier deadlocks.
    """
    _all_phases(
        codebook, data, order, sigmas, lrs, weights, rows, cols, is_torus, neighborhood, truncate,
        topology, EUCLIDEAN, None, record, part_d, part_i,
    )  # fmt: skip


@cuda.jit(cache=True)
def train_persistent_packed(
    codebook, data, order, sigmas, lrs, weights, rows, cols, is_torus, neighborhood, truncate,
    topology, record,
):  # fmt: skip
    """:func:`train_persistent` for float32, with packed keys as :func:`train_phase_packed`."""
    _all_phases(
        codebook, data, order, sigmas, lrs, weights, rows, cols, is_torus, neighborhood, truncate,
        topology, EUCLIDEAN, None, record, None, None,
    )  # fmt: skip


@cuda.jit(cache=True)
def train_persistent_any(
    codebook, data, order, sigmas, lrs, weights, rows, cols, is_torus, neighborhood, truncate,
    topology, metric, missing, record, part_d, part_i,
):  # fmt: skip
    """:func:`train_persistent` with the metric and missing-value flags of
    :func:`train_phase_any`."""
    _all_phases(
        codebook, data, order, sigmas, lrs, weights, rows, cols, is_torus, neighborhood, truncate,
        topology, metric, missing, record, part_d, part_i,
    )  # fmt: skip


@cuda.jit(cache=True)
def rerank(dots, cb_sq, tolerance, data, codebook, k, metric, out_index, out_distance):
    """Exact top-``k`` (1 or 2) BMUs from a block's matrix product; one block per sample row.

    As ``gpusom.cpu.kernels.rerank``: the score ``cb_sq[j] - 2 * dots[i, j]`` approximates
    ``||data[i] - codebook[j]||^2`` up to a per-row constant and an error below
    ``tolerance[i] / 2``; every ``j`` whose score is within ``tolerance[i]`` of the ``k``-th
    smallest is ranked by its float64 distance under ``metric`` from direct differences
    (``gpusom._math.exact_distance``), ties to the lowest index. A missing second unit is
    ``(-1, inf)``.
    """
    shared_d = cuda.shared.array((2, MAX_THREADS), np.float64)
    shared_i = cuda.shared.array((2, MAX_THREADS), np.int64)
    n_cells = dots.shape[1]
    tid, size = cuda.threadIdx.x, cuda.blockDim.x
    for i in range(cuda.blockIdx.x, dots.shape[0], cuda.gridDim.x):
        s1, s1i, s2, s2i = INF, NO_INDEX, INF, NO_INDEX
        for j in range(tid, n_cells, size):
            score = np.float64(cb_sq[j]) - 2.0 * np.float64(dots[i, j])
            s1, s1i, s2, s2i = _merge_top2(s1, s1i, s2, s2i, score, j, INF, NO_INDEX)
        s1, _, s2, _ = _block_top2(shared_d, shared_i, s1, s1i, s2, s2i)
        threshold = (s1 if k == 1 else s2) + tolerance[i]
        b1, b1i, b2, b2i = INF, NO_INDEX, INF, NO_INDEX
        for j in range(tid, n_cells, size):
            if np.float64(cb_sq[j]) - 2.0 * np.float64(dots[i, j]) <= threshold:
                d = exact_distance(data, i, codebook, j, metric)
                b1, b1i, b2, b2i = _merge_top2(b1, b1i, b2, b2i, d, j, INF, NO_INDEX)
        b1, b1i, b2, b2i = _block_top2(shared_d, shared_i, b1, b1i, b2, b2i)
        if tid == 0:
            out_index[i, 0], out_distance[i, 0] = b1i, b1
            if k == 2:
                out_index[i, 1] = -1 if b2i == NO_INDEX else b2i
                out_distance[i, 1] = b2


# Batched late steps. Late in training a step's window covers a few cells of a large map, yet
# a plain step reads the whole codebook to find its BMU. For a block of B steps,
# :func:`late_distances` computes every distance the block's searches could need against the
# codebook as it stands, with the plain search's own arithmetic (:func:`_measure_four`), and the
# minimum packed key of every tile of ``TILE`` cells; :func:`late_group_keys` the minima of groups
# of ``GROUP`` tiles. :func:`late_walk` then runs the B steps in order in one block: a BMU is the
# minimum of the group minima, and an update refreshes, for the block's later samples, the
# distances of the cells it moved and the minima of their tiles and groups. Each step's BMU is
# thus the minimum over the same distances, computed the same way, as the plain step's: the same
# BMUs and the same codebook. No grid-wide barrier per step: three launches per block of steps.

#: Cells per tile, and tiles per group, of the batched late steps' minima.
TILE = 32
GROUP = 32


@cuda.jit(device=True)
def _tile_key(distances, j, tile):
    """The smallest packed key of sample ``j`` over the cells of ``tile``."""
    best = NO_INDEX
    for n in range(tile * TILE, min((tile + 1) * TILE, distances.shape[1])):
        best = min(best, _packed_key(distances[j, n], n))
    return best


@cuda.jit(device=True)
def _group_key(tile_keys, j, group):
    """The smallest packed key of sample ``j`` over the tiles of ``group``."""
    best = NO_INDEX
    for tile in range(group * GROUP, min((group + 1) * GROUP, tile_keys.shape[1])):
        best = min(best, tile_keys[j, tile])
    return best


@cuda.jit(device=True)
def _measure_four(codebook, n, x0, x1, x2, x3):
    """:func:`_measure` of cell ``n`` to four samples: each codebook value is read once for all
    four. The same passes of ``LANES`` features, summed in the same order: the same totals."""
    t0 = t1 = t2 = t3 = codebook.dtype.type(0)
    k = np.uint32(0)
    while k < codebook.shape[0]:
        w0, w1 = codebook[k, n], codebook[k + 1, n]
        w2, w3 = codebook[k + 2, n], codebook[k + 3, n]
        t0 += _lane_sum(w0 - x0[k], w1 - x0[k + 1], w2 - x0[k + 2], w3 - x0[k + 3])
        t1 += _lane_sum(w0 - x1[k], w1 - x1[k + 1], w2 - x1[k + 2], w3 - x1[k + 3])
        t2 += _lane_sum(w0 - x2[k], w1 - x2[k + 1], w2 - x2[k + 2], w3 - x2[k + 3])
        t3 += _lane_sum(w0 - x3[k], w1 - x3[k + 1], w2 - x3[k + 2], w3 - x3[k + 3])
        k = np.uint32(k + LANES)
    return t0, t1, t2, t3


@cuda.jit(cache=True)
def late_distances(codebook, data, order, first, distances, tile_keys):
    """``distances[j, n]``: :func:`_measure` of cell ``n`` to sample ``data[order[first + j]]``,
    for each ``j`` below ``distances.shape[0]``; ``tile_keys[j, t]``: their smallest packed key
    over tile ``t``. Blocks of a multiple of ``TILE`` threads, so that a tile is one block's.

    Four samples per pass over a cell's vector (:func:`_measure_four`): the block's samples
    read the codebook from memory once, and a cell's vector from the caches a quarter as often.
    """
    n_cells = codebook.shape[1]
    count = distances.shape[0]
    tid = cuda.threadIdx.x
    # Every thread of a block takes the same turns (the barrier below): cells past the map idle.
    for base in range(cuda.blockIdx.x * cuda.blockDim.x, n_cells, cuda.gridsize(1)):
        n = base + tid
        for j in range(0, count, 4):
            # Past the block's last sample the rows repeat it; those totals are not stored.
            x0 = data[order[first + j]]
            x1 = data[order[first + min(j + 1, count - 1)]]
            x2 = data[order[first + min(j + 2, count - 1)]]
            x3 = data[order[first + min(j + 3, count - 1)]]
            if n < n_cells:
                d0, d1, d2, d3 = _measure_four(codebook, np.uint64(n), x0, x1, x2, x3)
                distances[j, n] = d0
                if j + 1 < count:
                    distances[j + 1, n] = d1
                if j + 2 < count:
                    distances[j + 2, n] = d2
                if j + 3 < count:
                    distances[j + 3, n] = d3
            # The block's writes are visible to the block after the barrier.
            cuda.syncthreads()
            if n < n_cells and n % TILE == 0:
                for sample in range(j, min(j + 4, count)):
                    tile_keys[sample, n // TILE] = _tile_key(distances, sample, n // TILE)


@cuda.jit(cache=True)
def late_group_keys(tile_keys, group_keys):
    """``group_keys[j, g]``: the smallest of the tile keys ``tile_keys[j]`` of group ``g``."""
    count, n_groups = group_keys.shape
    for i in range(cuda.grid(1), count * n_groups, cuda.gridsize(1)):
        group_keys[i // n_groups, i % n_groups] = _group_key(tile_keys, i // n_groups, i % n_groups)


@cuda.jit(device=True)
def _update(codebook, n, gain, source):
    """Cell ``n`` towards the row ``source``, each feature as :func:`_update_and_measure` moves
    it."""
    k = np.uint32(0)
    while k < codebook.shape[0]:
        w = codebook[k, n]
        w += gain * (source[k] - w)
        codebook[k, n] = w
        k = np.uint32(k + 1)


@register_jitable
def window_box(radius, topology, rows, cols):
    """``(rows, cols)`` of the box around a window of ``radius`` that :func:`late_walk` visits.

    Cells in the window are at most ``radius`` rows and ``radius`` columns from the BMU on the
    rectangular lattice, ``2 radius / sqrt(3)`` rows and ``radius + 1/2`` columns on the
    hexagonal one (``gpusom._math.quadrance``); one more each way covers any rounding. Clipped
    to the lattice before the conversion to an integer (the radius may be huge).
    """
    reach_rows = radius if topology == RECTANGULAR else radius * 1.1547005383792517
    box_rows = min(2 * int(min(reach_rows, float(rows)) + 1.0) + 1, rows)
    box_cols = min(2 * int(min(radius, float(cols)) + 1.5) + 1, cols)
    return box_rows, box_cols


@cuda.jit(device=True)
def _box_cell(i, box_rows, box_cols, bmu_row, bmu_col, rows, cols, is_torus):
    """Cell ``i`` of the box of ``box_rows x box_cols`` cells centred on the BMU, as
    ``(row, col)``; ``(-1, -1)`` where it falls off a plane. A box as wide as an axis covers that
    axis once, from its first cell."""
    row = i // box_cols
    col = i % box_cols
    if box_rows < rows:
        row += bmu_row - box_rows // 2
    if box_cols < cols:
        col += bmu_col - box_cols // 2
    if is_torus:
        return row % rows, col % cols
    if row < 0 or row >= rows or col < 0 or col >= cols:
        return -1, -1
    return row, col


@cuda.jit(device=True)
def _in_window(row, col, bmu_row, bmu_col, rows, cols, is_torus, topology, radius_sq):
    """Whether cell ``(row, col)`` is in the window (the test of :func:`_visit`); False for
    ``row = -1``."""
    if row < 0:
        return False
    q = quadrance(row, col, bmu_row, bmu_col, rows, cols, is_torus, topology)
    return float(q) <= 4.0 * radius_sq


@cuda.jit(device=True)
def _first_in_window(n, span, bmu_row, bmu_col, rows, cols, is_torus, topology, radius_sq):
    """Whether window cell ``n`` starts a run of window cells, or a span of ``span`` cells.

    The lowest window cell of any span starts one or the other (the cell before it is in the same
    span and outside the window), so refreshing every span at such cells refreshes all the spans
    that hold window cells.
    """
    if n % span == 0:
        return True
    return not _in_window(
        (n - 1) // cols, (n - 1) % cols, bmu_row, bmu_col, rows, cols, is_torus, topology,
        radius_sq,
    )  # fmt: skip


@cuda.jit(cache=True)
def late_walk(
    codebook, data, order, sigmas, lrs, weights, rows, cols, is_torus, neighborhood, truncate,
    topology, first, distances, tile_keys, group_keys, record,
):  # fmt: skip
    """Steps ``first`` to ``first + distances.shape[0] - 1`` in order, in one block.

    Arguments as :func:`train_phase_packed` (Euclidean distances on complete samples, float32),
    with what :func:`late_distances` and :func:`late_group_keys` left for these steps; ``record``
    receives each step's packed key.
    """
    shared_d = cuda.shared.array((2, MAX_THREADS), np.float64)
    shared_i = cuda.shared.array((2, MAX_THREADS), np.int64)
    count, n_groups = group_keys.shape
    tid, size = cuda.threadIdx.x, cuda.blockDim.x
    for j in range(count):
        step = first + j
        best = NO_INDEX
        for g in range(tid, n_groups, size):
            best = min(best, group_keys[j, g])
        # Keys ride in the index slot of the pair reduction, as in _publish.
        _, key, _, _ = _block_top2(shared_d, shared_i, 0.0, best, INF, NO_INDEX)
        if tid == 0:
            record[step] = key
        bmu = key & INDEX_MASK
        bmu_row, bmu_col = bmu // cols, bmu % cols
        sigma = sigmas[step]
        radius = window_radius(neighborhood, sigma, truncate)
        radius_sq = radius * radius
        rate = codebook.dtype.type(lrs[step])
        if topology == RECTANGULAR and is_separable(neighborhood):
            _fill_axis_weights(weights[step % 2], sigma, truncate, rows, cols, neighborhood)
        box_rows, box_cols = window_box(radius, topology, rows, cols)
        box = box_rows * box_cols
        cuda.syncthreads()  # the weight table is written
        source = data[order[step]]
        for i in range(tid, box, size):
            row, col = _box_cell(i, box_rows, box_cols, bmu_row, bmu_col, rows, cols, is_torus)
            if _in_window(row, col, bmu_row, bmu_col, rows, cols, is_torus, topology, radius_sq):
                q = quadrance(row, col, bmu_row, bmu_col, rows, cols, is_torus, topology)
                gain = _gain(
                    row, col, bmu_row, bmu_col, q, rows, cols, is_torus, neighborhood, topology,
                    sigmas, step, rate, weights,
                )  # fmt: skip
                _update(codebook, np.uint64(row * cols + col), gain, source)
        cuda.syncthreads()
        # Then, for every later sample of the block: the moved cells' distances, the minima of
        # their tiles, and of their groups, each stage after the one it reads.
        later = count - j - 1
        for stage in range(3):
            for i in range(tid, box * later, size):
                row, col = _box_cell(
                    i // later, box_rows, box_cols, bmu_row, bmu_col, rows, cols, is_torus
                )
                if not _in_window(
                    row, col, bmu_row, bmu_col, rows, cols, is_torus, topology, radius_sq
                ):
                    continue
                n = row * cols + col
                sample = j + 1 + i % later
                if stage == 0:
                    distances[sample, n] = _measure(
                        codebook, np.uint64(n), data[order[first + sample]]
                    )
                elif stage == 1:
                    if _first_in_window(
                        n, TILE, bmu_row, bmu_col, rows, cols, is_torus, topology, radius_sq
                    ):
                        tile_keys[sample, n // TILE] = _tile_key(distances, sample, n // TILE)
                elif _first_in_window(
                    n, TILE * GROUP, bmu_row, bmu_col, rows, cols, is_torus, topology, radius_sq
                ):
                    group = n // (TILE * GROUP)
                    group_keys[sample, group] = _group_key(tile_keys, sample, group)
            cuda.syncthreads()
