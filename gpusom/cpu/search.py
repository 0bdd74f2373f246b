"""The CPU engine's exact BMU search of many samples on a large map: pivots prune the product.

``gpusom._bmu_search.blocked_bmus`` multiplies every sample with every cell. On a large map a
sample's BMU lies among the cells of its own region of the data, a small share of the map;
this search finds that region with bounds and multiplies only there:

1. **Groups of cells.** ``n_groups`` pivot cells spread over the data (k-means++ seeding,
   :func:`_spread_pivots`); each cell joins its nearest pivot's group. Each group has a
   centre (its mean, rounded to the product's precision), and each cell a reach (its float64
   distance from the centre); a group's cells are kept sorted by reach. Any partition keeps
   the search exact; one compact in the data prunes the most, and needs no lattice.
2. **Bounds.** One product of the samples with the centres. By the triangle inequality the
   cells of group ``g`` within reach ``r`` are within ``|x - c_g| + r`` of sample ``x``, so
   the ``k`` best cells are within ``upper = min_g (|x - c_g| + r_g,k)``, ``r_g,k`` the
   ``k``-th smallest reach in the group; and a cell of reach ``r`` is at least
   ``| |x - c_g| - r |`` from ``x``, so only the cells whose reach is within ``upper`` of
   ``|x - c_g|`` can be among the best: a contiguous range of the group's sorted cells. The
   distances to the centres are taken at the far ends of their rounding bound
   (``_bmu_search.CentredProducts.tolerance``).
3. **Products of runs.** The samples, sorted by their nearest centre, are cut into runs of at
   least ``RUN_ROWS``; each run is multiplied with the cells any of its samples keeps, in
   index order, and :func:`gpusom.cpu.kernels.rerank` ranks them as in ``blocked_bmus``. The
   BMUs and distances are the same, ties to the lowest index.

The reach ranges matter on maps with cells far from the data (cells between clusters, or
never moved): one such cell gave its whole group a large radius, and the triangle
neighbourhood's map of the large lattice kept 70 % of the cells a sample with bounds by the
groups' radii, against 8 % by reach ranges (benchmarks/RESULTS.md).

Where the bounds of a probe of the samples keep too many cells (data spread evenly over the
map, an unordered codebook), the search takes the full product, and so does a block of
samples whose runs would multiply more than ``MAX_SHARE`` of it.

Cosine distances are Euclidean ones between unit vectors, ``|u - v|^2 = 2 (1 - cos)``: the
groups, bounds and products then work on the samples and cells scaled to unit length, the
re-rank measures the cosine of the vectors as given, and both the bound and the re-rank's
candidate test allow ``COSINE_SLACK`` for the float64 rounding between the two. A zero vector
(cosine 1 to everything) has no unit vector, and norms far from 1 (``_unit_rows``) make the
re-rank's cosines underflow or overflow: such data take the full product.

The search applies to complete data (``find_bmus``); measured in benchmarks/RESULTS.md ("The
exact BMU search of a large map: pivot bounds").
"""

import math

import numpy as np
from numba import njit

from .. import _config
from .._bmu_search import CentredProducts, blocked_bmus, euclidean_scores
from .._math import COSINE, EUCLIDEAN, MANHATTAN
from .kernels import rerank

#: Searches of fewer multiply-adds (samples x cells x features) take the full product: below
#: this the bounds and the runs cost about as much as they save.
MIN_WORK = 2e9

#: Maps from this many cells on may take the pruned products (bench.py's c, 1,600 cells, gains
#: 2x).
MIN_CELLS = 1024

#: Groups of cells per square root of the number of cells.
GROUPS_PER_ROOT = 0.75

#: Fewer samples than this many per group take the full product: forming the groups is a
#: product of every cell with every pivot, ``n_groups / n_samples`` of the full one.
MIN_SAMPLES_PER_GROUP = 4

#: A run of samples is cut at a group boundary once it holds this many: products of fewer rows
#: run far below the BLAS peak, and a run multiplies the union of its samples' groups.
RUN_ROWS = 32

#: Above this share of the full product, a block of samples takes the full product.
MAX_SHARE = 0.75

#: Samples whose bounds predict the share first: where their groups alone hold more than
#: ``PROBE_SHARE`` of the cells (a run's union holds more), the whole search takes the full
#: product, at the cost of bounds for this many samples only.
PROBE_ROWS = 1024
PROBE_SHARE = 0.5

#: Relative slack on the bounds for the float64 rounding of the radii and the re-rank's sums.
SLACK = 1e-9

#: Cosine distances: absolute slack, in squared distances between unit vectors per feature, for
#: the rounding of the unit vectors and of the re-rank's float64 cosines (each within a few
#: ``(dim + 4) eps``).
COSINE_SLACK = 16 * np.finfo(np.float64).eps


def find_bmus(data, codebook, k, metric):
    """``blocked_bmus`` for the CPU engine, by the pruned products where they pay."""
    data, codebook = _one_dtype(data, codebook)
    if metric == MANHATTAN:
        # Euclidean distances bound Manhattan ones from below (kernels._manhattan_bounds)
        return blocked_bmus(data, codebook, k, np, rerank, metric, euclidean_scores)
    n_samples, dim = data.shape
    n_cells = codebook.shape[0]
    n_groups = math.ceil(GROUPS_PER_ROOT * math.sqrt(n_cells))
    if (
        metric not in (EUCLIDEAN, COSINE)
        or n_cells < MIN_CELLS
        or n_samples * n_cells * dim < MIN_WORK
        or n_samples < MIN_SAMPLES_PER_GROUP * n_groups
        or bool(np.isnan(data).any())
    ):
        return blocked_bmus(data, codebook, k, np, rerank, metric)
    points, cells = data, codebook
    if metric == COSINE:
        points, cells = _unit_rows(data), _unit_rows(codebook)
        if points is None or cells is None:
            return blocked_bmus(data, codebook, k, np, rerank, metric)
    groups = _CellGroups(cells, points, n_groups, k, codebook, metric)
    probe = points[:: max(1, n_samples // PROBE_ROWS)]
    bounds, _ = groups.bounds(probe)
    each = np.arange(probe.shape[0] + 1, dtype=np.int64)
    first, last = groups.kept(bounds[2:], each[:-1], each)
    if (last - first).sum() > PROBE_SHARE * probe.shape[0] * n_cells:
        return blocked_bmus(data, codebook, k, np, rerank, metric)
    out_index = np.empty((n_samples, k), dtype=np.int64)
    out_distance = np.empty((n_samples, k), dtype=np.float64)
    block = max(RUN_ROWS, _config.ANALYSIS_BLOCK_BYTES // (8 * groups.count))
    for start in range(0, n_samples, block):
        rows = slice(start, min(start + block, n_samples))
        if not groups.search(points[rows], data[rows], k, out_index[rows], out_distance[rows]):
            out_index[rows], out_distance[rows] = blocked_bmus(
                data[rows], codebook, k, np, rerank, metric
            )
    return out_index, out_distance


def _one_dtype(data, codebook):
    """``data`` and ``codebook`` with their float32 ones as float64 where those copies take at
    most ``_config.ONE_DTYPE_BYTES`` together, else as they are.

    The scores centre both in float64 and the re-rank measures float64 of the values, so the
    BMUs and distances are the same bit for bit; numba compiles the re-rank once for each pair
    of dtypes it meets, 0.6-1.5 s each: the walk-through's closing step (its float32 samples on
    the float32 map), errors and closest vectors (float64 data and the map, either way round)
    compiled three (benchmarks/RESULTS.md)."""
    copies = sum(8 * a.size for a in (data, codebook) if a.dtype == np.float32)
    if copies == 0 or copies > _config.ONE_DTYPE_BYTES:
        return data, codebook
    return data.astype(np.float64, copy=False), codebook.astype(np.float64, copy=False)


def _unit_rows(vectors):
    """``vectors`` scaled to unit length in float64, or None where a squared norm is 0 or
    outside ``[1e-150, 1e150]``: there the re-rank's float64 cosines underflow or overflow
    (a sample of tiny norm has cosine 0 to every cell) and no longer follow the unit vectors.
    """
    vectors = vectors.astype(np.float64)
    with np.errstate(over="ignore", under="ignore"):
        squares = (vectors * vectors).sum(axis=1)
    if not np.all((squares >= 1e-150) & (squares <= 1e150)):
        return None
    return vectors / np.sqrt(squares)[:, None]


class _CellGroups:
    """The groups of cells of step 1, and steps 2 and 3 against them.

    ``space`` and ``points`` are the cells and samples whose Euclidean distances the bounds
    and products measure: the vectors themselves, or for cosine distances their unit vectors.
    ``codebook`` (the cells as given) and ``metric`` are what the re-rank measures.
    """

    def __init__(self, space, points, n_groups, k, codebook, metric):
        self.codebook, self.metric = codebook, metric
        # the cosine's slack in squared distances between unit vectors
        self.slack_sq = COSINE_SLACK * (space.shape[1] + 4) if metric == COSINE else 0.0
        self.products = products = CentredProducts(space, points, np, missing=False)
        self.cb_sq = products.cb_sq.astype(products.dtype)
        cells = products.codebook
        n_cells, dim = cells.shape
        pivots = cells[_spread_pivots(cells, n_groups)]
        pivot_sq = (pivots.astype(np.float64) ** 2).sum(axis=1).astype(cells.dtype)
        nearest = np.empty(n_cells, dtype=np.int64)
        step = max(1, _config.ANALYSIS_BLOCK_BYTES // (8 * n_groups))
        for start in range(0, n_cells, step):
            # rounding may move a cell to another pivot's group: any partition is exact
            part = slice(start, start + step)
            nearest[part] = (pivot_sq - 2 * (cells[part] @ pivots.T)).argmin(axis=1)
        used, self.of_cell = np.unique(nearest, return_inverse=True)
        self.count = used.size
        self.size = np.bincount(self.of_cell, minlength=self.count)
        # feature by feature, in float64: no float64 copy of the whole codebook
        sums = np.stack(
            [np.bincount(self.of_cell, column, self.count) for column in cells.T], axis=1
        )
        self.centres = (sums / self.size[:, None]).astype(cells.dtype)
        self.centre_sq = (self.centres.astype(np.float64) ** 2).sum(axis=1)
        self.centre_norm_max = math.sqrt(self.centre_sq.max())
        reach = np.empty(n_cells)
        step = max(1, _config.ANALYSIS_BLOCK_BYTES // (24 * dim))
        for start in range(0, n_cells, step):
            # the cells as given (or their float64 unit vectors), not their rounded centred
            # copies: the re-rank measures those
            part = slice(start, start + step)
            offsets = space[part] - products.centre - self.centres[self.of_cell[part]]
            reach[part] = np.sqrt((offsets**2).sum(axis=1))
        # the cells by group, then by reach: group g's are by_reach[firsts[g]:firsts[g + 1]]
        self.by_reach = np.lexsort((reach, self.of_cell))
        self.reach = reach[self.by_reach]
        self.firsts = np.concatenate(([0], np.cumsum(self.size)))
        # the k-th smallest reach of each group, infinite in groups of fewer cells
        kth = np.minimum(self.firsts[:-1] + k - 1, n_cells - 1)
        self.kth_reach = np.where(self.size >= k, self.reach[kth] * (1 + SLACK), np.inf)

    def bounds(self, data):
        """Step 2 for ``data``: its centred samples and norms, then the arguments of
        :func:`kept_ranges` up to ``order``."""
        products = self.products
        centred, x_norm = products.samples(data)
        tolerance = products.tolerance(x_norm, max(self.centre_norm_max, products.cb_norm_max))
        dots = centred @ self.centres.T
        x_sq = x_norm * x_norm
        upper = np.empty(data.shape[0])
        nearest = np.empty(data.shape[0], dtype=np.int64)
        group_bounds(dots, self.centre_sq, x_sq, tolerance, self.kth_reach, upper, nearest)
        if self.slack_sq:
            upper = np.sqrt(upper * upper + self.slack_sq)
        return (centred, x_norm, dots, self.centre_sq, x_sq, tolerance, upper), nearest

    def kept(self, bounds, order, starts):
        """Step 3's ranges for the runs of samples ``order[starts[r]:starts[r + 1]]``:
        ``by_reach[first[r, g]:last[r, g]]`` are the cells of group ``g`` the run keeps
        (:func:`kept_ranges`; ``bounds`` from :meth:`bounds`, less the centred samples and
        norms)."""
        first = np.empty((starts.size - 1, self.count), dtype=np.int64)
        last = np.empty_like(first)
        kept_ranges(*bounds, order, starts, self.reach, self.firsts, first, last)
        return first, last

    def search(self, points, data, k, out_index, out_distance):
        """Steps 2 and 3 for one block of samples (``points`` as the bounds measure them,
        ``data`` as given); False, with nothing written, where the runs would multiply more than
        ``MAX_SHARE`` of the full product."""
        products = self.products
        bounds, nearest = self.bounds(points)
        centred, x_norm = bounds[:2]
        order = np.argsort(nearest, kind="stable")
        starts = _run_starts(np.bincount(nearest, minlength=self.count))
        first, last = self.kept(bounds[2:], order, starts)
        multiplied = np.diff(starts) @ (last - first).sum(axis=1)
        if multiplied > MAX_SHARE * data.shape[0] * self.of_cell.size:
            return False
        cell_tolerance = products.tolerance(x_norm, products.cb_norm_max) + 2 * self.slack_sq
        for run in range(starts.size - 1):
            cells = np.sort(kept_cells(self.by_reach, first[run], last[run]))
            # np.take, not fancy indexing: a third of the time for these row gathers
            run_cells = np.take(products.codebook, cells, axis=0)
            cb_sq = np.take(self.cb_sq, cells)
            cell_vectors = np.take(self.codebook, cells, axis=0)
            # a run of one crowded group is cut to keep the products within the block size
            step = max(1, _config.ANALYSIS_BLOCK_BYTES // (8 * cells.size))
            for start in range(starts[run], starts[run + 1], step):
                rows = order[start : min(start + step, starts[run + 1])]
                index = np.empty((rows.size, k), dtype=np.int64)
                distance = np.empty((rows.size, k))
                rerank(
                    np.take(centred, rows, axis=0) @ run_cells.T,
                    cb_sq,
                    cell_tolerance[rows],
                    np.take(data, rows, axis=0),
                    cell_vectors,
                    k,
                    self.metric,
                    index,
                    distance,
                )
                out_index[rows] = np.where(index >= 0, cells[index], -1)
                out_distance[rows] = distance
        return True


def _spread_pivots(cells, n_groups, pool_per_group=4):
    """Indices of ``n_groups`` cells spread over the data: k-means++ seeding (each next pivot
    drawn with probability proportional to its squared distance from the nearest one so far)
    over a random pool of ``pool_per_group`` cells per group, fixed seed.

    Uniform draws leave clusters of cells without a pivot (30 draws over 20 clusters miss about
    four), and a group that takes in a second cluster prunes nothing; cells evenly spaced in
    index order line up in a few columns of the lattice.
    """
    rng = np.random.default_rng(0)
    n_cells = cells.shape[0]
    pool = rng.choice(n_cells, min(n_cells, pool_per_group * n_groups), replace=False)
    points = cells[pool].astype(np.float64)
    # scaled to at most 1, so that no squared distance overflows (or underflows) to 0 or inf
    points /= max(float(np.abs(points).max()), np.finfo(np.float64).tiny)
    chosen = np.empty(n_groups, dtype=np.int64)
    chosen[0] = rng.integers(pool.size)
    nearest_sq = ((points - points[chosen[0]]) ** 2).sum(axis=1)
    for g in range(1, n_groups):
        total = nearest_sq.sum()
        # every pooled cell is a pivot's copy: any further pivot is as good as another
        chosen[g] = (
            rng.integers(pool.size) if total == 0 else rng.choice(pool.size, p=nearest_sq / total)
        )
        nearest_sq = np.minimum(nearest_sq, ((points - points[chosen[g]]) ** 2).sum(axis=1))
    return np.sort(pool[chosen])


def _run_starts(counts):
    """Where each run of samples starts in the order of their nearest group, and the end."""
    starts = [0]
    held = 0
    for count in counts:
        held += count
        if held >= RUN_ROWS:
            starts.append(starts[-1] + held)
            held = 0
    if held:
        starts.append(starts[-1] + held)
    return np.array(starts, dtype=np.int64)


@njit(cache=True)
def group_bounds(dots, centre_sq, x_sq, tolerance, kth_reach, upper, nearest):
    """Step 2 per sample: ``upper`` bounds its ``k`` best distances, ``nearest`` is the group
    of the nearest centre.

    ``centre_sq[g] - 2 dots[i, g] + x_sq[i]`` is the squared distance to centre ``g`` within
    ``tolerance[i]``; ``kth_reach[g]`` the ``k``-th smallest reach in group ``g``.
    """
    for i in range(dots.shape[0]):
        best = np.inf
        bound = np.inf
        nearest[i] = 0
        for g in range(dots.shape[1]):
            score = centre_sq[g] - 2.0 * dots[i, g] + x_sq[i]
            if score < best:
                best = score
                nearest[i] = g
            bound = min(bound, math.sqrt(max(score + tolerance[i], 0.0)) + kth_reach[g])
        upper[i] = bound * (1.0 + SLACK)


@njit(cache=True)
def kept_ranges(dots, centre_sq, x_sq, tolerance, upper, order, starts, reach, firsts, first,
                last):  # fmt: skip
    """Step 3's union: the cells of group ``g`` some sample of run ``r`` may have among its
    best are those whose reach is within ``upper`` of its distance to the centre,
    ``reach[first[r, g]:last[r, g]]`` of the group's sorted ``reach[firsts[g]:firsts[g + 1]]``.

    The distance to the centre is taken at both ends of its rounding bound, the reach range
    widened by ``SLACK`` for the float64 rounding of the reaches and sums.
    """
    n_groups = dots.shape[1]
    radius = np.empty(n_groups)
    for g in range(n_groups):
        radius[g] = reach[firsts[g + 1] - 1] * (1.0 + SLACK)
    low, high = np.empty(n_groups), np.empty(n_groups)
    for r in range(starts.size - 1):
        low[:] = np.inf
        high[:] = -np.inf
        for p in range(starts[r], starts[r + 1]):
            i = order[p]
            for g in range(n_groups):
                score = centre_sq[g] - 2.0 * dots[i, g] + x_sq[i]
                # most samples are farther from most groups than their whole radius allows
                # (compared squared, both sides positive): no square roots for those
                outer = upper[i] + radius[g]
                if score - tolerance[i] > outer * outer:
                    continue
                near = math.sqrt(max(score - tolerance[i], 0.0))
                # the slack relative to the terms, not the difference, which may cancel
                low[g] = min(low[g], near - upper[i] - SLACK * (near + upper[i]))
                high[g] = max(high[g], math.sqrt(max(score + tolerance[i], 0.0)) + upper[i])
        for g in range(n_groups):
            cells = reach[firsts[g] : firsts[g + 1]]
            # binary searches only where the range cuts the group (most runs keep none of it)
            first[r, g], last[r, g] = firsts[g], firsts[g + 1]
            if low[g] > high[g]:
                last[r, g] = firsts[g]
                continue
            if low[g] > cells[0]:
                first[r, g] += count_below(cells, low[g], False)
            if high[g] * (1.0 + SLACK) < cells[-1]:
                last[r, g] = firsts[g] + count_below(cells, high[g] * (1.0 + SLACK), True)
            last[r, g] = max(last[r, g], first[r, g])


@njit(cache=True)
def count_below(values, value, inclusive):
    """How many of the sorted ``values`` are below ``value`` (at most ``value`` with
    ``inclusive``): numpy's ``searchsorted`` on the left (right) side, written out because
    numba's took about 1 s of a first call (benchmarks/RESULTS.md)."""
    low, high = 0, values.size
    while low < high:
        middle = (low + high) // 2
        if values[middle] < value or (inclusive and values[middle] == value):
            low = middle + 1
        else:
            high = middle
    return low


def kept_cells(by_reach, first, last):
    """The cells ``by_reach[first[g]:last[g]]`` of every group, group after group (the groups'
    ranges are disjoint: each cell is in one). Sorted by the caller, with numpy's sort: numba's
    took 1.2-1.4 s of a first call (benchmarks/RESULTS.md). numpy's index arithmetic, not a
    compiled loop: only the search of an ordered map takes this path, so a compiled loop
    compiled in the middle of a first large training (0.3 s of the large lattice's,
    benchmarks/RESULTS.md)."""
    lengths = np.maximum(last - first, 0)
    ends = np.cumsum(lengths)
    # output position t of group g's range holds by_reach[t + first[g] - (ends[g] - lengths[g])]
    shifts = np.repeat(first - ends + lengths, lengths)
    return by_reach[np.arange(shifts.size) + shifts]
