"""The batch SOM algorithm: the host driver every engine shares.

One epoch at radius ``sigma``:

1. the exact BMU of every sample against the current codebook (``engine.find_bmus``, ties to
   the lowest index);
2. per cell ``b``, the sum ``S_b`` of the samples whose BMU is ``b`` and their count ``C_b``,
   in float64 and in sample order (:func:`bmu_sums`);
3. smoothing over the lattice (:func:`smooth`): ``w_n = sum_b h(d(b, n)) S_b / sum_b
   h(d(b, n)) C_b`` with the online neighbourhood ``h`` of ``gpusom._math``. A cell whose
   denominator is not positive keeps its vector: no sample in its window, or, with the Mexican
   hat, negative weights outweighing the positive ones. The closing step of an online run
   (``SOM``'s ``finish="batch"``) is one such epoch where each cell's own vector counts as one
   more sample: a ``prior`` of 1 in both sums.

The sums of step 2 are plain sums over samples, so a data set split into chunks gives the same
``(S, C)`` as the whole, up to float64 rounding: :func:`bmu_sums` runs per chunk and the partial
sums are added before :func:`smooth` (dask-ml's ``KMeans`` has the same map-reduce shape).

The window of the smoothing is the online step's disk, ``d(b, n) <= radius`` with ``radius =
gpusom._math.window_radius(neighborhood, sigma, truncate)``, except for the separable
neighbourhoods (Gaussian, bubble) on the rectangular lattice: those run as a pass along the
columns of every row, then one along the rows of every column, each axis truncated at ``|delta|
<= radius``, so their window is the *square* ``|dr|, |dc| <= radius``. Two passes cost
``O(cells * (rows + cols) * dim)``; a disk would need the direct sum, ``O(cells * window *
dim)``. Everything else (the hexagonal lattice; the Mexican hat and the triangle) is the direct
sum over the disk ``quadrance <= 4 radius^2``, visiting only the cells with samples. No
``n_samples x n_cells`` weight matrix is ever built.

Each engine carries its kernels as the attribute ``batch`` (``gpusom.cpu.batch``,
``gpusom.cuda.batch``): three functions of the same names and signatures, which see only arrays
of the engine and scalars.
"""

import numpy as np
from numba.extending import register_jitable

from ._math import EUCLIDEAN, RECTANGULAR, is_separable


def train_epochs(
    engine,
    codebook,
    data,
    sigmas,
    rows,
    cols,
    is_torus,
    neighborhood,
    truncate,
    topology=0,
    metric=EUCLIDEAN,
    prior=0.0,
):
    """Run ``len(sigmas)`` batch epochs; the ``train_batch`` of every engine.

    Parameters
    ----------
    engine : gpusom._engine.Engine
    codebook : array of the engine, shape (rows * cols, dim)
        float32 or float64, the training dtype.
    data : array of the engine, shape (n_samples, dim)
        Same dtype as ``codebook``.
    sigmas : sequence of float
        The neighbourhood radius of each epoch.
    rows, cols : int
        The lattice.
    is_torus : bool
    neighborhood, topology : int
        Codes of ``gpusom._math.NEIGHBORHOODS`` and ``TOPOLOGIES``.
    truncate : float
        Window radius in units of ``sigma`` (``gpusom._math.window_radius``).
    metric : int
        Code of ``gpusom._math.METRICS``: the distance of the BMU search. The update is the
        weighted mean under every metric.
    prior : float
        Pseudo-count of each cell's own vector in every epoch (:func:`smooth`); 0, the batch
        SOM, unless this is the closing step of an online run (``SOM``'s ``finish``).

    Returns
    -------
    array of the engine, shape (rows * cols, dim)
        The codebook after the last epoch, in ``codebook``'s dtype (``codebook`` itself when
        ``sigmas`` is empty).
    """
    per_feature = bool(engine.xp.isnan(data).any())
    for sigma in np.asarray(sigmas, dtype=np.float64).tolist():
        sums, counts = bmu_sums(engine, data, codebook, metric, per_feature)
        codebook = smooth(
            engine,
            sums,
            counts,
            codebook,
            sigma,
            rows,
            cols,
            is_torus,
            neighborhood,
            truncate,
            topology,
            prior,
        )
    return codebook


def bmu_sums(engine, data, codebook, metric=EUCLIDEAN, per_feature=False):
    """Per-cell sums and counts of the samples by their exact BMU: the map step of an epoch.

    Parameters
    ----------
    engine : gpusom._engine.Engine
    data : array of the engine, shape (n_samples, dim)
        NaN marks a missing value: it adds to neither the sums nor the counts of its feature.
    codebook : array of the engine, shape (n_cells, dim)
        Same dtype as ``data``.
    metric : int
        Code of ``gpusom._math.METRICS`` for the BMU search.
    per_feature : bool
        Count the present values of each feature (needed, and implied, when ``data`` has NaN;
        chunks of one data set must agree on it so their counts add up).

    Returns
    -------
    sums : float64 array of the engine, shape (n_cells, dim)
        ``sums[b]``: the sum of the samples whose BMU is ``b``, added in sample order.
    counts : float64 array of the engine, shape (n_cells,) or (n_cells, dim)
        How many samples have BMU ``b`` (per feature: how many present values).

    Notes
    -----
    Sums and counts of disjoint chunks of ``data`` add up to those of the whole, up to float64
    rounding (exactly for the counts).
    """
    xp = engine.xp
    n_samples = data.shape[0]
    n_cells, dim = codebook.shape
    missing = xp.isnan(data)
    per_feature = per_feature or bool(missing.any())
    count_shape = (n_cells, dim) if per_feature else (n_cells,)
    if n_samples == 0:
        return xp.zeros((n_cells, dim), dtype=np.float64), xp.zeros(count_shape, dtype=np.float64)
    index, _ = engine.find_bmus(data, codebook, 1, metric)
    bmus = index[:, 0]
    counts = xp.bincount(bmus, minlength=n_cells)
    # Samples grouped by BMU, in sample order within a cell. The keys are unique, so any sort
    # is stable: the engines need no stable-sort option.
    keys = xp.sort(bmus * n_samples + xp.arange(n_samples, dtype=np.int64))
    order = keys % n_samples
    starts = xp.zeros(n_cells + 1, dtype=np.int64)
    starts[1:] = xp.cumsum(counts)
    sums = xp.empty((n_cells, dim), dtype=np.float64)
    if not per_feature:
        engine.batch.cell_sums(data, order, starts, sums)
        return sums, counts.astype(np.float64)
    engine.batch.cell_sums(xp.where(missing, 0, data), order, starts, sums)
    present = xp.empty((n_cells, dim), dtype=np.float64)
    engine.batch.cell_sums((~missing).astype(data.dtype), order, starts, present)
    return sums, present


def smooth(
    engine,
    sums,
    counts,
    codebook,
    sigma,
    rows,
    cols,
    is_torus,
    neighborhood,
    truncate,
    topology,
    prior=0.0,
):
    """The new codebook from the per-cell sums of an epoch: the reduce step.

    ``w_n = (sum_b h(d(b, n)) sums_b + prior * codebook_n) / (sum_b h(d(b, n)) counts_b +
    prior)``, accumulated in float64: with ``prior`` 0 the batch SOM's weighted mean; with a
    positive ``prior`` each cell's own vector counts as that many extra samples, so a cell with
    little weight in its window moves only part of the way to its samples' mean. On
    the rectangular lattice the Gaussian and the bubble are applied as a row pass then a column
    pass, each axis truncated at ``|delta| <= radius``: a square window, not the online step's
    disk, which keeps the cost at ``O(cells * (rows + cols) * dim)``. Other neighbourhoods, and
    every neighbourhood on the hexagonal lattice, sum directly over the disk ``d <= radius``. A
    cell whose denominator is not positive keeps its vector from ``codebook``: no samples in its
    window or, with the Mexican hat, negative weights outweighing the positive ones.

    Parameters
    ----------
    engine : gpusom._engine.Engine
    sums : float64 array of the engine, shape (n_cells, dim)
    counts : float64 array of the engine, shape (n_cells,) or (n_cells, dim)
        As returned by :func:`bmu_sums`, or the totals of several chunks; per feature, each
        feature of a cell is the mean of its present values (the others keep their value).
    codebook : array of the engine, shape (n_cells, dim)
        The codebook of the epoch; float32 or float64.
    sigma : float
        The neighbourhood radius of the epoch.
    rows, cols : int
        The lattice, ``rows * cols == n_cells``.
    is_torus : bool
        Minimum-image distances; each cell counts once even when the window is wider than
        the map.
    neighborhood, topology : int
        Codes of ``gpusom._math.NEIGHBORHOODS`` and ``TOPOLOGIES``.
    truncate : float
        Window radius in units of ``sigma`` (``gpusom._math.window_radius``).
    prior : float, default 0.0
        Pseudo-count of each cell's vector in ``codebook``, added to every feature's count (per
        feature counts too). The denominator with it must still be positive, else the cell keeps
        its vector, as without it.

    Returns
    -------
    array of the engine, shape (n_cells, dim)
        The new codebook, in ``codebook``'s dtype.
    """
    xp = engine.xp
    n_cells, dim = codebook.shape
    sigma, truncate, is_torus = float(sigma), float(truncate), bool(is_torus)
    # Sums and counts travel together: the columns from ``dim`` on hold the counts.
    counts = counts.reshape(n_cells, -1)
    src = xp.empty((n_cells, dim + counts.shape[1]), dtype=np.float64)
    src[:, :dim] = sums
    src[:, dim:] = counts
    dst = xp.empty_like(src)
    kernels = engine.batch
    if topology == RECTANGULAR and is_separable(neighborhood):
        kernels.smooth_axis(src, dst, sigma, cols, 1, is_torus, neighborhood, truncate)
        kernels.smooth_axis(dst, src, sigma, rows, cols, is_torus, neighborhood, truncate)
        total = src
    else:
        sources = xp.flatnonzero(counts.max(axis=1) > 0).astype(np.int64)
        kernels.smooth_direct(
            src, dst, sources, sigma, rows, cols, is_torus, neighborhood, truncate, topology
        )
        total = dst
    num, den = total[:, :dim], total[:, dim:]
    if prior:
        # only when asked for: the batch SOM's epochs (prior 0) skip two codebook-sized passes
        num = num + prior * codebook.astype(np.float64)
        den = den + prior
    keep = ~(den > 0)
    means = num / xp.where(keep, 1.0, den)
    return xp.where(keep, codebook, means).astype(codebook.dtype)


@register_jitable
def axis_reach(radius, size):
    """Largest axis offset ``|delta| <= radius`` worth visiting on an axis of ``size`` cells."""
    if radius >= size:
        return size
    return int(radius)  # truncation is the floor: radius >= 0


@register_jitable
def row_reach(radius, rows, topology):
    """Rows within which the disk of ``radius`` can hold a cell: at least ``|dr| <= radius``
    (rectangular) or ``|dr| <= 2 radius / sqrt(3)`` (hexagonal, rows ``sqrt(3) / 2`` apart),
    one more for rounding; the quadrance test settles each cell exactly."""
    scale = 1.0 if topology == RECTANGULAR else 1.1547006
    return min(int(radius * scale) + 1, rows)


@register_jitable
def first_at_least(values, target):
    """Index of the first entry of the ascending ``values`` that is ``>= target`` (its size when
    none is): a binary search both engines compile."""
    lo, hi = 0, values.size
    while lo < hi:
        mid = (lo + hi) // 2
        if values[mid] < target:
            lo = mid + 1
        else:
            hi = mid
    return lo


@register_jitable
def window_runs(position, reach, size, is_torus):
    """Positions within ``reach`` of ``position`` on one axis, as two ascending half-open runs
    ``(lo0, hi0, lo1, hi1)`` (the second may be empty): wrapped on a torus, each position once,
    clipped on the plane. Ascending, so both engines add a cell's terms in the same order."""
    lo, hi = position - reach, position + reach + 1
    if is_torus:
        if 2 * reach + 1 >= size:
            return 0, size, 0, 0
        if lo < 0:
            return 0, hi, lo + size, size
        if hi > size:
            return 0, hi - size, lo, size
        return lo, hi, 0, 0
    return max(lo, 0), min(hi, size), 0, 0
