"""``@njit`` kernels of the CPU backend: online training and exact BMU re-ranking.

Layout. The codebook is split by feature at ``split`` (see ``split_dim``):

- ``head[k, n]``, features ``k < split`` as a structure of arrays, so distances vectorise across
  cells; four features are summed per pass, so the accumulator is read and
  written ``split / 4`` times instead of ``split`` times. Its rows may be longer than the map
  (padding to whole cache lines, ``gpusom.cpu.Codebook``): the cell count is ``tail``'s rows.
- ``tail[n, k]``, features ``split + k`` as an array of structures (one contiguous row per cell,
  zero-padded to a multiple of ``TAIL_LANES``), so updating a small window is a few long vector
  loops per cell instead of ``dim`` short loops per grid row.

Small ``dim`` keeps every feature in ``head`` (``tail`` has no columns) and the BMU is a plain
argmin over all cells. Large ``dim`` uses a partial distance search: ``head`` gives every cell's
partial distance in one vectorised pass; only cells whose partial distance is not above the best
full distance found so far read their ``tail``. Floating-point addition of non-negative terms
never decreases a sum, so a cell whose partial distance already exceeds some cell's full distance
cannot be (or tie) the argmin: the search is exact, the BMU the same as without pruning. On
clustered data a handful of head features already rule out the cells of the other clusters. On
large maps, bounding boxes of chunks of cells (``ChunkBoxes``) rule out most chunks before their
head is read (:func:`boxed_argmin`), with a tail or with every feature in the head.
"""

import numpy as np
from numba import njit
from numba.core import errors, types
from numba.extending import intrinsic, overload, register_jitable, typeof_impl

from .._config import FASTMATH, FINITE_FASTMATH, PDS_HEAD_DIM, PDS_MIN_DIM
from .._math import (
    COSINE,
    EUCLIDEAN,
    HEXAGONAL,
    LANES,
    MANHATTAN,
    RECTANGULAR,
    axis_delta,
    axis_weight,
    axis_weight_sq,
    cosine_distance,
    exact_distance,
    half_width,
    hex_offsets,
    is_separable,
    quadrance,
    radial_weight,
    underflow_slack,
    window_radius,
)

#: The tail is padded with zero features to a multiple of this: LLVM vectorises its loops 32
#: floats at a time, and a scalar remainder would cost more than the zeros.
TAIL_LANES = 32

#: The tail's distance is a per-cell reduction: reassociation lets LLVM vectorise it. It is
#: deterministic for a compiled kernel, which is all the exactness argument needs.
TAIL_FASTMATH = FASTMATH | {"reassoc"}


# head_distances and eight_head_distances are written for a head of eight features.
assert PDS_HEAD_DIM == 2 * LANES, "the partial distance search's head passes take 8 features"


def split_dim(dim):
    """How many leading features the structure-of-arrays ``head`` holds for ``dim`` features."""
    return dim if dim < PDS_MIN_DIM else PDS_HEAD_DIM


@njit(cache=True, fastmath=FASTMATH)
def squared_distances(head, x, out):
    """``out[n] = sum_k (head[k, n] - x[k])^2`` over the ``head`` features, for the
    ``out.size`` cells (the head's columns past them are padding)."""
    cell_distances(head, x, out, None, out.size)


def _cell_index(base, n):
    """Cell ``n`` from ``base`` (:func:`cell_distances`)."""
    return n if base is None else base + np.uint64(n)


@overload(_cell_index, inline="always")
def _cell_index_jit(base, n):
    if base is None or isinstance(base, types.NoneType):
        return lambda base, n: n
    return lambda base, n: base + np.uint64(n)


# The sums of one pass of cell_distances over one, two, three or four features, also those of
# nearest_cell's last pass, so that the two agree bit for bit. Inlined (numba IR), so that
# their loops vectorise. head_distances and eight_head_distances write out the two passes of
# a head of eight features themselves (tested bit for bit against cell_distances): with the
# rows as views, the boxed search of L took 11 % longer (benchmarks/RESULTS.md).
@register_jitable(inline="always")
def _sum1(w0, x0, i):
    d0 = w0[i] - x0
    return d0 * d0


@register_jitable(inline="always")
def _sum2(w0, w1, x0, x1, i):
    d0, d1 = w0[i] - x0, w1[i] - x1
    return d0 * d0 + d1 * d1


@register_jitable(inline="always")
def _sum3(w0, w1, w2, x0, x1, x2, i):
    d0, d1, d2 = w0[i] - x0, w1[i] - x1, w2[i] - x2
    return (d0 * d0 + d1 * d1) + d2 * d2


@register_jitable(inline="always")
def _sum4(w0, w1, w2, w3, x0, x1, x2, x3, i):
    d0, d1, d2, d3 = w0[i] - x0, w1[i] - x1, w2[i] - x2, w3[i] - x3
    return (d0 * d0 + d1 * d1) + (d2 * d2 + d3 * d3)


@njit(cache=True, fastmath=FASTMATH)
def cell_distances(head, x, out, base, count):
    """:func:`squared_distances` of the ``count`` cells from ``base`` on: a ``np.uint64``, or
    None for the whole map from cell 0.

    A chunk's indices are unsigned and nothing is sliced: numba guards a signed index against
    negative values and builds each slice with its own checks, which on a chunk of 32 cells cost
    more than the arithmetic (benchmarks/RESULTS.md). The whole map's pass counts from zero
    instead (numba prunes the branch on ``base=None``): unsigned indices made a small map's
    search 15 % slower. Every cell's sum is the same expression in the same order either way,
    and :func:`nearest_cell`'s last pass the same sums.
    """
    n_rows = head.shape[0]
    first = n_rows % LANES
    # The first pass covers the leftover 1-3 features (no zero padding to read) or, when there
    # are none, the first group of four; it initialises ``out``.
    if first == 1:
        w0, x0 = head[0], x[0]
        for n in range(count):
            i = _cell_index(base, n)
            out[i] = _sum1(w0, x0, i)
    elif first == 2:
        w0, w1, x0, x1 = head[0], head[1], x[0], x[1]
        for n in range(count):
            i = _cell_index(base, n)
            out[i] = _sum2(w0, w1, x0, x1, i)
    elif first == 3:
        w0, w1, w2, x0, x1, x2 = head[0], head[1], head[2], x[0], x[1], x[2]
        for n in range(count):
            i = _cell_index(base, n)
            out[i] = _sum3(w0, w1, w2, x0, x1, x2, i)
    for k in range(first, n_rows, LANES):
        w0, w1, w2, w3 = head[k], head[k + 1], head[k + 2], head[k + 3]
        x0, x1, x2, x3 = x[k], x[k + 1], x[k + 2], x[k + 3]
        if k == 0:
            for n in range(count):
                i = _cell_index(base, n)
                out[i] = _sum4(w0, w1, w2, w3, x0, x1, x2, x3, i)
        else:
            for n in range(count):
                i = _cell_index(base, n)
                out[i] += _sum4(w0, w1, w2, w3, x0, x1, x2, x3, i)


@njit(cache=True, fastmath=FASTMATH)
def head_distances(head, x, out, start, stop):
    """``squared_distances`` of cells ``start`` to ``stop`` for the partial distance search.

    Its eight features (``PDS_HEAD_DIM``) take one pass with the same sums in the same order,
    so the distances are written once instead of written, read and written again: 18.4 -> 16.7
    us a step on the large lattice (benchmarks/RESULTS.md).
    """
    # slices, so the loop counts from zero and vectorises (see ``_chunk_argmin``)
    w0, w1, w2, w3 = (
        head[0, start:stop],
        head[1, start:stop],
        head[2, start:stop],
        head[3, start:stop],
    )
    w4, w5, w6, w7 = (
        head[4, start:stop],
        head[5, start:stop],
        head[6, start:stop],
        head[7, start:stop],
    )
    x0, x1, x2, x3, x4, x5, x6, x7 = x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7]
    cells = out[start:stop]
    for n in range(cells.size):
        d0, d1, d2, d3 = w0[n] - x0, w1[n] - x1, w2[n] - x2, w3[n] - x3
        d4, d5, d6, d7 = w4[n] - x4, w5[n] - x5, w6[n] - x6, w7[n] - x7
        low = (d0 * d0 + d1 * d1) + (d2 * d2 + d3 * d3)
        cells[n] = low + ((d4 * d4 + d5 * d5) + (d6 * d6 + d7 * d7))


@njit(cache=True, fastmath=FASTMATH)
def eight_head_distances(head, x, out, start, stop):
    """:func:`squared_distances` of the cells ``start`` to ``stop`` (at most ``PRUNE_CHUNK``)
    over a head of eight features (``PDS_HEAD_DIM``), for one chunk of the boxed search
    (:func:`boxed_argmin`): one pass like :func:`head_distances`, the same sums in the same
    order. Other heads take :func:`cell_distances` (``_chunk_partials``).

    Indexed without slices: numba guards a signed index against negative values and builds each
    slice with its own checks; over a chunk of 32 cells that cost 60 ns, three times the
    arithmetic (benchmarks/RESULTS.md). The count is the chunk's, 32 but on a short last chunk:
    as fast as a constant 32 (benchmarks/RESULTS.md), and one loop to compile.
    """
    base = np.uint64(start)
    x0, x1, x2, x3, x4, x5, x6, x7 = x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7]
    for n in range(stop - start):
        i = base + np.uint64(n)
        d0, d1, d2, d3 = head[0, i] - x0, head[1, i] - x1, head[2, i] - x2, head[3, i] - x3
        d4, d5, d6, d7 = head[4, i] - x4, head[5, i] - x5, head[6, i] - x6, head[7, i] - x7
        low = (d0 * d0 + d1 * d1) + (d2 * d2 + d3 * d3)
        out[i] = low + ((d4 * d4 + d5 * d5) + (d6 * d6 + d7 * d7))


#: The largest int32: no float32 distance's bit pattern is above it (:func:`argmin_first`).
KEY32_MAX = np.int32(np.iinfo(np.int32).max)


@intrinsic
def float_bits(typingctx, value):
    """The bit pattern of a float32 (an int32) or float64 (an int64): non-negative floats'
    patterns order as the floats do (:func:`argmin_first`)."""
    if value not in (types.float32, types.float64):
        return None
    bits_type = types.int32 if value == types.float32 else types.int64

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(bits_type))

    return bits_type(value), codegen


#: The small-map search takes the minimum of each chunk of this many cells and sums the
#: distances again only in the first chunk that holds the smallest (:func:`nearest_cell`).
SEARCH_CHUNK = 256


class CompiledInt(int):
    """An ``int`` that numba types as its value (an ``IntegerLiteral``): a kernel taking one
    compiles once per value, and an overload chooses its loops by it (:func:`head_rows`)."""


@typeof_impl.register(CompiledInt)
def _typeof_compiled_int(value, context):
    return types.IntegerLiteral(int(value))


def head_rows(split):
    """:func:`train_online`'s ``nearest`` for a head of every feature, ``split`` rows: the rows
    as :func:`nearest_cell` compiles them, 1-4 or 5 for more than four, but eight
    (``PDS_HEAD_DIM``) as itself, for the boxed search's chunks (:func:`plain_argmin`).

    A constant of the compiled kernel, so that a run compiles only its own width's loops: with
    the width a run-time value, every map compiled all five, about 3 s of the walk-through's
    first training (benchmarks/RESULTS.md).
    """
    return CompiledInt(split if split == PDS_HEAD_DIM else min(split, LANES + 1))


def nearest_cell(head, x, out, rows):
    """The lowest-index argmin of :func:`squared_distances` of ``head``; ``out`` is scratch,
    ``rows`` the head's :func:`head_rows`.

    The passes of :func:`cell_distances` but the last write their sums to ``out``; the last
    one, the same sums (``_sum1`` to ``_sum4``), keeps only each chunk's minimum (as
    :func:`argmin_first`, an integer minimum of the distances' bit patterns) and writes
    nothing. Only the first chunk with the smallest minimum is summed again, for its first
    index: a 5,000-cell map of three features, as (a)'s, is searched 1.3-1.55x as fast as with
    every distance stored and read again (benchmarks/RESULTS.md).
    """
    squared_distances(head, x, out)
    return int(np.argmin(out))


@overload(nearest_cell, prefer_literal=True, jit_options={"cache": True, "fastmath": FASTMATH})
def _nearest_cell_jit(head, x, out, rows):
    if not isinstance(rows, types.IntegerLiteral):
        return None  # head_rows gives a constant
    top = KEY32_MAX if out.dtype == types.float32 else np.int64(np.iinfo(np.int64).max)
    last_sum = _LAST_SUMS[min(rows.literal_value, LANES + 1)]
    leading = rows.literal_value > LANES  # passes before the last, into ``out``

    def nearest(head, x, out, rows):
        n_rows, count = head.shape[0], out.size  # the head's columns past count are padding
        k = max(n_rows - LANES, 0)  # the last pass's first feature, of four or of n_rows
        if leading:
            cell_distances(head[:k], x, out, None, count)
        # heads of 1-3 features: the rows past the last are not read
        r1, r2, r3 = min(k + 1, n_rows - 1), min(k + 2, n_rows - 1), min(k + 3, n_rows - 1)
        w0, w1, w2, w3 = head[k], head[r1], head[r2], head[r3]
        x0, x1, x2, x3 = x[k], x[r1], x[r2], x[r3]
        best, best_start = top, 0
        for start in range(0, count, SEARCH_CHUNK):
            base, size = np.uint64(start), min(SEARCH_CHUNK, count - start)
            low = top
            for n in range(size):
                i = base + np.uint64(n)
                low = min(low, float_bits(last_sum(w0, w1, w2, w3, x0, x1, x2, x3, out, i)))
            if low < best:
                best, best_start = low, start
        # The same sums again in that chunk, for the first cell that holds the minimum.
        base, size = np.uint64(best_start), min(SEARCH_CHUNK, count - best_start)
        none = np.int32(size)
        found = none
        for n in range(size):
            i = base + np.uint64(n)
            bits = float_bits(last_sum(w0, w1, w2, w3, x0, x1, x2, x3, out, i))
            found = min(found, np.int32(n) if bits == best else none)
        return best_start + np.int64(found)

    return nearest


# nearest_cell's last pass by head_rows: cell_distances' last sums, added to the earlier
# passes' in ``out`` for more than four rows.
@register_jitable(inline="always")
def _last_sum1(w0, w1, w2, w3, x0, x1, x2, x3, out, i):
    return _sum1(w0, x0, i)


@register_jitable(inline="always")
def _last_sum2(w0, w1, w2, w3, x0, x1, x2, x3, out, i):
    return _sum2(w0, w1, x0, x1, i)


@register_jitable(inline="always")
def _last_sum3(w0, w1, w2, w3, x0, x1, x2, x3, out, i):
    return _sum3(w0, w1, w2, x0, x1, x2, i)


@register_jitable(inline="always")
def _last_sum4(w0, w1, w2, w3, x0, x1, x2, x3, out, i):
    return _sum4(w0, w1, w2, w3, x0, x1, x2, x3, i)


@register_jitable(inline="always")
def _last_sum_after(w0, w1, w2, w3, x0, x1, x2, x3, out, i):
    return out[i] + _sum4(w0, w1, w2, w3, x0, x1, x2, x3, i)


_LAST_SUMS = {1: _last_sum1, 2: _last_sum2, 3: _last_sum3, 4: _last_sum4, 5: _last_sum_after}


def argmin_first(distances):
    """Index of the smallest non-negative distance, the lowest index on ties."""
    return int(np.argmin(distances))


@overload(argmin_first, jit_options={"cache": True})
def _argmin_first_jit(distances):
    # A non-negative float's bit pattern orders like an integer of its width, so the minimum is
    # an integer min that LLVM vectorises instead of a compare-and-branch loop, and its lowest
    # index a second vectorised pass (first_index_of). float32 patterns and 32-bit indices fill
    # twice the lanes of packed 64-bit (distance, index) keys: a 5,000-cell map's search took
    # half the time (benchmarks/RESULTS.md).
    bits_type = np.int32 if distances.dtype == types.float32 else np.int64

    def bits_min(distances):
        bits = distances.view(bits_type)
        best = bits[0]
        for n in range(bits.size):
            best = min(best, bits[n])
        return first_index_of(bits, best)

    return bits_min


@register_jitable(inline="always")
def first_index_of(values, value):
    """The lowest ``n`` with ``values[n] == value``, ``values.size`` if there is none.

    A minimum over a select, which LLVM vectorises where a loop that stops at the first match
    would not; with 32-bit indices below 2**31 values, twice the lanes of 64-bit ones.
    """
    if values.size < KEY32_MAX:
        none = np.int32(values.size)
        found = none
        for n in range(values.size):
            found = min(found, np.int32(n) if values[n] == value else none)
        return np.int64(found)
    found = values.size
    for n in range(values.size):
        found = min(found, n if values[n] == value else values.size)
    return found


@njit(cache=True, fastmath=TAIL_FASTMATH)
def tail_distance(cell, x):
    """``sum_k (cell[k] - x[k])^2`` for one cell's ``tail`` row."""
    total = cell.dtype.type(0.0)
    for k in range(cell.size):
        d = cell[k] - x[k]
        total += d * d
    return total


@njit(cache=True, fastmath=TAIL_FASTMATH)
def present_squares(cell, x, present):
    """``sum_k ((cell[k] - x[k]) present[k])^2``: a ``tail`` row's part of the squared
    Euclidean distance over the present features (:func:`sum_distances`)."""
    total = cell.dtype.type(0.0)
    for k in range(cell.size):
        d = (cell[k] - x[k]) * present[k]
        total += d * d
    return total


@njit(cache=True, fastmath=TAIL_FASTMATH)
def present_absolutes(cell, x, present):
    """``sum_k |(cell[k] - x[k]) present[k]|``: a ``tail`` row's part of the Manhattan
    distance over the present features (:func:`sum_distances`)."""
    total = cell.dtype.type(0.0)
    for k in range(cell.size):
        total += abs((cell[k] - x[k]) * present[k])
    return total


def _tail_cost(cell, x, present, manhattan):
    """A cell's tail distance: :func:`tail_distance` when ``present`` is None (the plain
    Euclidean step), else its part of :func:`sum_distances`, :func:`present_squares` when
    ``manhattan`` is None and :func:`present_absolutes` when it is True."""


# Chosen when the caller is typed, so the plain step's loops do not test a flag and a run
# compiles only its metric's sum. Two functions, not one with a flag: with both loops in one
# function neither vectorised (a 64-feature row took 90 ns instead of 7-12,
# benchmarks/RESULTS.md).
@overload(_tail_cost, inline="always")
def _tail_cost_jit(cell, x, present, manhattan):
    if isinstance(present, types.NoneType):
        return lambda cell, x, present, manhattan: tail_distance(cell, x)
    if isinstance(manhattan, types.NoneType):
        return lambda cell, x, present, manhattan: present_squares(cell, x, present)
    return lambda cell, x, present, manhattan: present_absolutes(cell, x, present)


def sums_marker(metric):
    """The ``manhattan`` argument of the sums' kernels for ``metric``, a compile-time constant
    (:class:`CompiledInt`) there: True for Manhattan, None for squared Euclidean, so that a run
    compiles only its own sums (overloads choose by its type). A numpy True: typed ``bool``
    wherever it is passed on, where a Python True is a literal in some calls and not in
    others, and each type compiled the callee again."""
    return np.True_ if metric == MANHATTAN else None


def _typed_sums_marker(metric):
    """:func:`sums_marker` of ``metric``'s numba type, when an overload is typed."""
    if not isinstance(metric, types.IntegerLiteral):
        raise errors.TypingError("metric must be a compile-time constant (CompiledInt)")
    return sums_marker(metric.literal_value)


#: The partial distance search takes the cells in chunks of this many consecutive indices: a
#: chunk whose bounding box is farther from the sample than the best full distance so far is
#: skipped unread, and a vectorised count of a chunk's candidates skips it when it has none
#: (benchmarks/RESULTS.md, "The large lattice: bounding boxes of chunks").
PRUNE_CHUNK = 32


#: Boxes are first built after the first step whose window (its bounding square) covers at most
#: ``1 / BOX_BUILD_SHARE`` of the map: before, each update moves a large part of the map and the
#: boxes would be loose.
BOX_BUILD_SHARE = 32

#: The boxes of cosine and Manhattan steps are first built sooner, once a window covers at most
#: ``1 / SCAN_BOX_BUILD_SHARE`` of the map: their plain search reads every feature of every
#: cell, not a head of eight, so loose boxes already save more than they cost. Cosine on L's
#: data (200x200, 32 features): its first 10,000 steps took 2.9 s at 32, 2.55 s at 8, 1.9 s at 4
#: and 2.5 s at 2, where the first trial paused the boxes for 5,000 steps
#: (benchmarks/RESULTS.md).
SCAN_BOX_BUILD_SHARE = 4

#: Then they are rebuilt exact every ``n_cells / BOX_REBUILD_RATE`` steps: a build reads every
#: feature of every cell, so that is ``BOX_REBUILD_RATE * dim`` features a step, a small share of
#: the box pass (``n_cells * dim / PRUNE_CHUNK``) on any map that takes boxes. Rebuilt every
#: 1,250 to 16,000 steps the large lattice measured alike, never rebuilt no faster
#: (benchmarks/RESULTS.md).
BOX_REBUILD_RATE = 8

#: Every build starts a trial of ``n_cells / BOX_TRIAL_RATE`` steps (at least
#: ``BOX_MIN_TRIAL_STEPS``). Boxes that let so many chunks through in it that visiting them
#: costs more than one pass over the map's head pause until the next rebuild, which starts a
#: new trial: where the map cannot order the data (uniform features in 8 to 31 dimensions)
#: most boxes are near every sample. A visited chunk costs about as much as reading
#: ``BOX_VISIT_COST`` features more than its cells' head: its distances and argmin take 60-90 ns
#: for 32 cells of 3-8 features, against 6-15 ns for the same cells within one pass over the
#: map, and the boxes' upkeep comes on top; at this value the trial pauses the boxes on the
#: uniform maps where they lost (benchmarks/RESULTS.md). A trial costs at most a 32nd of the
#: steps between rebuilds.
BOX_TRIAL_RATE = 256
BOX_MIN_TRIAL_STEPS = 16
BOX_VISIT_COST = 1000

#: Boxes need a head pass of at least this many bytes: one that sits in the first caches costs
#: too little to save (a 60x60 map on 32 features ran 15 % slower with boxes).
BOX_MIN_HEAD_BYTES = 256 * 1024


def boxes_pay(n_cells, dim, itemsize, scanned):
    """Whether ``ChunkBoxes`` should serve the BMU search of a map whose plain search reads
    ``scanned`` features of every cell.

    Without boxes, a Euclidean step reads the ``split_dim(dim)`` head features of every cell
    (all features below ``PDS_MIN_DIM``, else the partial distance search's head) and a cosine
    or Manhattan step all ``dim``; with them, ``dim`` features of every chunk's box, then the
    cells of the few chunks whose box is near (about 7 % of them on the large lattice). Boxes
    are taken when that pass is large enough to be worth saving (``BOX_MIN_HEAD_BYTES``) and
    the box pass reads at most a quarter of its features (always so without a tail; ``dim`` at
    most 64 for chunks of 32 cells and a head of 8).
    """
    head_features = scanned * n_cells
    box_features = -(-n_cells // PRUNE_CHUNK) * dim
    return head_features * itemsize >= BOX_MIN_HEAD_BYTES and 4 * box_features <= head_features


class ChunkBoxes:
    """Per-chunk bounding boxes of a split codebook, kept with it during online training.

    ``bounds[0, k, c]``/``bounds[1, k, c]``: the smallest and largest feature ``k`` over the
    cells of chunk ``c`` (cells ``c * PRUNE_CHUNK`` on), ``dim`` features by ``n_chunks``, so a
    sample's distance to every box is a pass vectorised across chunks. Each metric has its own
    (``metric``): the boxes of cosine steps (``unit`` True, else None) bound the cells' unit
    vectors (:func:`_grow_boxes`). ``state``: whether the boxes serve the search
    (``state[0]``: 0 until first built, 1 while they hold, 2 while a trial has paused them,
    ``BOX_TRIAL_RATE``), the steps since they were last built, the chunks the search has
    visited since, what a visit costs in features read (``BOX_VISIT_COST`` plus a chunk's
    scan), how many features of each cell the plain search reads and the ``BOX_BUILD_SHARE``
    or ``SCAN_BOX_BUILD_SHARE`` of the first build. While they hold, they grow after every
    update to take in the cells it moved (:func:`refresh_window`), so they keep holding but
    loosen, and :func:`build_boxes` makes them exact again. ``scratch`` serves
    :func:`_grow_boxes`.
    """

    def __init__(self, n_cells, dim, dtype, metric=EUCLIDEAN):
        n_chunks = -(-n_cells // PRUNE_CHUNK)
        self.bounds = np.empty((2, dim, n_chunks), dtype)
        self.scratch = np.empty((3, max(dim, PRUNE_CHUNK)), dtype)
        # None: numba compiles no unit-vector code for the other metrics' boxes
        self.unit = True if metric == COSINE else None
        scanned = self.scanned(dim, metric)
        visit_cost = BOX_VISIT_COST + PRUNE_CHUNK * scanned
        share = BOX_BUILD_SHARE if metric == EUCLIDEAN else SCAN_BOX_BUILD_SHARE
        self.state = np.array([0, 0, 0, visit_cost, scanned, share], np.int64)

    @staticmethod
    def scanned(dim, metric):
        """How many features of each cell a step's plain search reads (:func:`boxes_pay`)."""
        return split_dim(dim) if metric == EUCLIDEAN else dim

    @classmethod
    def where_they_pay(cls, head, tail, dim, metric=EUCLIDEAN):
        """The boxes of a split codebook for steps under ``metric``; None where they do not pay
        (:func:`boxes_pay`)."""
        n_cells = tail.shape[0]
        # without boxes, a cosine step takes its bound: a pass over the head and two norms
        # (pruned_cosine_argmin); with them, a pause or a sample they do not serve the full scan
        scanned = split_dim(dim) + 2 if metric == COSINE else cls.scanned(dim, metric)
        if boxes_pay(n_cells, dim, head.itemsize, scanned):
            return cls(n_cells, dim, head.dtype, metric)
        return None

    def arrays(self):
        """``(bounds, scratch, state, unit)``, as :func:`train_online` takes the boxes."""
        return self.bounds, self.scratch, self.state, self.unit


@njit(cache=True, fastmath=FASTMATH)
def box_distances(low, high, x, present, manhattan, out):
    """``out[c]``: squared Euclidean (Manhattan where ``manhattan`` is True, not None)
    distance of ``x`` to the box ``low[:, c]``-``high[:, c]``, over the features where
    ``present`` is 1 (every feature with ``present=None``); numba compiles out the branches of
    the arguments that are None."""
    zero = out.dtype.type(0.0)
    out[:] = zero
    for k in range(low.shape[0]):
        if present is not None and present[k] == 0:
            continue
        lo, hi, xk = low[k], high[k], x[k]
        if manhattan is not None:
            for c in range(out.size):
                out[c] += max(lo[c] - xk, xk - hi[c], zero)
        else:
            for c in range(out.size):
                gap = max(lo[c] - xk, xk - hi[c], zero)
                out[c] += gap * gap


@njit(cache=True, fastmath=FASTMATH)
def build_boxes(head, tail, boxes, scratch, state, unit):
    """Every chunk's exact box (``ChunkBoxes``, of unit vectors where ``unit`` is not None);
    they hold from here on."""
    inf = boxes.dtype.type(np.inf)
    for c in range(boxes.shape[2]):
        start, stop = c * PRUNE_CHUNK, min((c + 1) * PRUNE_CHUNK, tail.shape[0])
        for k in range(boxes.shape[1]):  # empty: the first cell sets them
            boxes[0, k, c], boxes[1, k, c] = inf, -inf
        _grow_boxes(head, tail, start, stop, boxes, scratch, unit)
    state[0], state[1], state[2] = 1, 0, 0


@njit(cache=True, fastmath=FASTMATH)
def unit_scales(head, tail, start, stop, scales):
    """``scales[n - start] = 1 / |w_n|`` for the cells ``start`` to ``stop``, in the codebook's
    dtype; False (``scales`` unfinished) where a squared norm is outside :func:`unit_norms_sq`.

    Outside that range the cosine steps' sums (:func:`cosine_distances`) can overflow or lose
    the cell to underflow, and its distance is no longer the unit vectors' (a zero cell is 1
    from everything): such a chunk's box takes in everything.
    """
    split = head.shape[0]
    low, high = unit_norms_sq(head.dtype)
    for n in range(stop - start):
        norm_sq = 0.0
        for k in range(split):
            w = np.float64(head[k, start + n])
            norm_sq += w * w
        cell = tail[start + n]
        for k in range(cell.size):
            w = np.float64(cell[k])
            norm_sq += w * w
        if not low <= norm_sq <= high:
            return False
        scales[n] = 1.0 / np.sqrt(norm_sq)
    return True


@register_jitable
def unit_norms_sq(dtype):
    """The squared norms, ``[sqrt(tiny), sqrt(max)]`` of ``dtype``, within which a vector's
    cosine distances follow its unit vector (:func:`unit_scales`)."""
    info = np.finfo(dtype)
    return np.sqrt(np.float64(info.tiny)), np.sqrt(np.float64(info.max))


# Compiled once and called: inlined into both callers it doubled their compile time (2-3 s
# each, benchmarks/RESULTS.md).
@njit(cache=True, fastmath=FASTMATH)
def _grow_boxes(head, tail, first, stop, boxes, scratch, unit):
    """Grow the boxes of cells ``first`` to ``stop`` to take in their vectors, or where
    ``unit`` is not None (True) their unit vectors (``scratch``: ``(3, max(dim,
    PRUNE_CHUNK))``, the tail's minima and maxima of one chunk and its cells' ``unit_scales``).
    With ``unit`` None numba compiles none of the unit vectors' code: 1-1.5 s of a first call
    with boxes (benchmarks/RESULTS.md).

    A unit vector's features are rounded products ``w_k * s``, ``s`` the rounded ``1 / |w|``:
    each within two roundings of the exact one (:func:`boxed_metric_argmin` allows for it).
    """
    split = head.shape[0]
    width = boxes.shape[1] - split
    low, high = boxes[0], boxes[1]
    tail_low, tail_high = scratch[0, :width], scratch[1, :width]
    inf = boxes.dtype.type(np.inf)
    end = first
    while end < stop:
        start, c = end, end // PRUNE_CHUNK
        end = min(stop, (c + 1) * PRUNE_CHUNK)
        scales = scratch[2, : end - start]
        if unit is not None and not unit_scales(head, tail, start, end, scales):
            for k in range(boxes.shape[1]):
                low[k, c], high[k, c] = -inf, inf
            continue
        for k in range(split):
            cells = head[k, start:end]
            lo, hi = low[k, c], high[k, c]
            for n in range(cells.size):
                w = cells[n] * scales[n] if unit is not None else cells[n]
                lo, hi = min(lo, w), max(hi, w)
            low[k, c], high[k, c] = lo, hi
        if width == 0:
            continue  # every feature in the head: no row slices to build
        # tail rows are contiguous per cell: the minima and maxima run across features
        # (element loops: numba compiles strided slice assignments slowly)
        for k in range(width):
            tail_low[k], tail_high[k] = low[split + k, c], high[split + k, c]
        for n in range(start, end):
            row = tail[n, :width]
            scale = scales[n - start] if unit is not None else tail.dtype.type(1.0)
            for k in range(width):
                w = row[k] * scale if unit is not None else row[k]
                tail_low[k], tail_high[k] = min(tail_low[k], w), max(tail_high[k], w)
        for k in range(width):
            low[split + k, c], high[split + k, c] = tail_low[k], tail_high[k]


@njit(fastmath=FASTMATH, inline="always")
def _chunk_argmin(chunk, tail, x_tail, start, best, best_n, present_tail, manhattan):
    """``(best, best_n)`` after the cells ``start`` on, whose partial distances are ``chunk``:
    the tails of those not above ``best`` are read (see :func:`pruned_argmin`)."""
    # Loops over a slice count from zero: numba's negative-index wraparound then folds away and
    # the count vectorises; indexing ``partial`` from ``start`` would not.
    candidates = 0
    for n in range(chunk.size):
        candidates += chunk[n] <= best
    if candidates == 0:
        return best, best_n
    for n in range(chunk.size):
        p = chunk[n]
        if p <= best:
            cell = start + n
            d = p + _tail_cost(tail[cell], x_tail, present_tail, manhattan)
            if d < best or (d == best and cell < best_n):
                best, best_n = d, cell
    return best, best_n


@njit(cache=True, fastmath=FASTMATH)
def pruned_argmin(partial, tail, x_tail, guess, present_tail, manhattan):
    """Exact BMU from ``head`` partial distances, reading ``tail`` only where it can matter.

    The full distance of a cell is ``partial[n] + tail_distance(tail[n], x_tail)``, the same
    expression for every cell, and never less than ``partial[n]``. So once some cell's full
    distance ``best`` is known, a cell whose partial distance is strictly greater cannot be (or
    tie) the argmin. The first bound is ``guess`` (any cell; the sample's last BMU, which late
    in training is nearly always the answer). The cells are tested in chunks of
    ``PRUNE_CHUNK``: a vectorised count skips a chunk without candidates. Returns the lowest
    index among the smallest full distances.

    ``present_tail`` (and ``manhattan``) is None on the plain Euclidean step. Otherwise the
    distances are :func:`sum_distances`' (squared Euclidean, or Manhattan where ``manhattan``
    is True, over the present features): ``partial`` from :func:`head_sums`, the tails by
    ``_tail_cost``. Their terms are not negative either, so the same argument
    holds, and the BMU is the full scan's bit for bit.
    """
    best_n = guess
    best = partial[guess] + _tail_cost(tail[guess], x_tail, present_tail, manhattan)
    for start in range(0, partial.size, PRUNE_CHUNK):
        chunk = partial[start : start + PRUNE_CHUNK]
        best, best_n = _chunk_argmin(
            chunk, tail, x_tail, start, best, best_n, present_tail, manhattan
        )
    return best_n


@njit(cache=True, fastmath=FASTMATH)
def boxed_argmin(head, tail, x, boxes, bounds, partial, guess, present, manhattan, eight_rows):
    """:func:`pruned_argmin` of ``x`` (zero-padded) that also skips whole chunks by their
    bounding boxes (``ChunkBoxes``, which must hold), computing partial distances only for
    the chunks it visits (into ``partial``; ``bounds`` is scratch, one per chunk).

    Every cell lies in its chunk's box, so in exact arithmetic its full distance is at least
    the box's. Both sums are of ``dim`` non-negative rounded terms, each within a relative
    ``(dim + 4) eps`` of its exact value (plus underflow, below ``dim`` times the smallest
    normal), so a chunk is skipped only when its box distance exceeds ``best`` by more than
    that: the search stays exact. The first bound is the sample's last BMU ``guess`` or, when
    it is ``-1``, the cell with the smallest partial distance in the nearest box. Without a
    tail every feature is in the head: the partial distances are the full ones.

    ``present`` and ``manhattan`` are None on the plain Euclidean step; otherwise the
    distances are :func:`sum_distances`' over the present features (Manhattan where
    ``manhattan`` is True), as in :func:`pruned_argmin`. ``eight_rows`` is True where the
    plain step's head has eight rows (``PDS_HEAD_DIM``), else None: numba then compiles only
    that head's chunk distances (``_chunk_partials``). Returns ``(bmu, visited)``, ``visited``
    the chunks whose box did not rule them out.
    """
    split, n_cells = head.shape[0], tail.shape[0]  # the head's columns past n_cells: padding
    x_tail = x[split:]
    present_tail = None if present is None else present[split:]
    dim = boxes.shape[1]
    margin = partial.dtype.type(1.0 - 4.0 * (dim + 4) * np.finfo(partial.dtype).eps)
    floor = partial.dtype.type(dim * np.finfo(partial.dtype).tiny)
    box_distances(boxes[0], boxes[1], x, present, manhattan, bounds)
    if guess < 0:
        start = argmin_first(bounds) * PRUNE_CHUNK
        stop = min(start + PRUNE_CHUNK, n_cells)
        _chunk_partials(head, x, present, manhattan, eight_rows, partial, start, stop)
        guess = start + argmin_first(partial[start:stop])
    else:
        start = guess - guess % PRUNE_CHUNK
        stop = min(start + PRUNE_CHUNK, n_cells)
        _chunk_partials(head, x, present, manhattan, eight_rows, partial, start, stop)
    best_n = guess
    best = partial[guess] + _tail_cost(tail[guess], x_tail, present_tail, manhattan)
    visited = 0
    for c in range(bounds.size):
        if bounds[c] * margin > best + floor:
            continue
        visited += 1
        start = c * PRUNE_CHUNK
        stop = min(start + PRUNE_CHUNK, n_cells)
        _chunk_partials(head, x, present, manhattan, eight_rows, partial, start, stop)
        best, best_n = _chunk_argmin(
            partial[start:stop], tail, x_tail, start, best, best_n, present_tail, manhattan
        )
    return best_n, visited


def _chunk_partials(head, x, present, manhattan, eight_rows, out, start, stop):
    """One chunk's partial distances in the boxed search. The plain Euclidean step
    (``present`` None): :func:`eight_head_distances` for a head of eight rows (``eight_rows``
    True), else :func:`cell_distances`; chosen when typed, so that a run of eight head rows
    does not compile :func:`cell_distances` (1.3 s of the large lattice's first call,
    benchmarks/RESULTS.md). Other steps: :func:`head_sums`."""


@overload(_chunk_partials, inline="always")
def _chunk_partials_jit(head, x, present, manhattan, eight_rows, out, start, stop):
    if not isinstance(present, types.NoneType):
        return lambda head, x, present, manhattan, eight_rows, out, start, stop: head_sums(
            head, x, present, manhattan, out, start, stop
        )
    if not isinstance(eight_rows, types.NoneType):
        return lambda head, x, present, manhattan, eight_rows, out, start, stop: (
            eight_head_distances(head, x, out, start, stop)
        )
    return lambda head, x, present, manhattan, eight_rows, out, start, stop: cell_distances(
        head, x, out, np.uint64(start), stop - start
    )


#: Cosine steps' boxes: the absolute slack, per ``(dim + 4) eps`` of the codebook's dtype, in
#: squared distances between unit vectors, for the rounding of the cells' and the sample's unit
#: vectors and of the cosines the search compares (:func:`boxed_metric_argmin`).
COSINE_BOX_SLACK = 16.0


@njit(cache=True, fastmath=FASTMATH)
def boxed_metric_argmin(head, tail, x, x_box, norm_x, present, metric, boxes, bounds,
                        distances, norms, guess):  # fmt: skip
    """The lowest-index argmin of :func:`metric_distances`, skipping chunks by their boxes
    (``ChunkBoxes`` of ``metric``, which must hold). ``x_box``: the sample as the boxes see it,
    ``x`` itself or, for cosine distances (complete samples only), its unit vector;
    ``norm_x``: :func:`sample_norm_sq` (cosine). ``bounds`` is scratch, one per chunk;
    ``distances`` and ``norms`` are :func:`chunk_distances`' for the chunks it visits
    (``norms`` None for the sums: their search then compiles without the cosine's code).

    Sums of squares or of absolute differences over the present features take
    :func:`boxed_argmin`, which also skips the tails of cells whose head is already too far.
    Cosine distances are bounded by half the squared distance of the unit vectors, ``1 - cos =
    |x/|x| - w/|w||^2 / 2``: every cell lies in its chunk's box, so in exact arithmetic that
    bound holds; the rounding of the unit vectors (two roundings a feature,
    :func:`_grow_boxes`) and of the cosine's sums (about ``2 (dim + 4) eps``) are in
    ``COSINE_BOX_SLACK (dim + 4) eps``. A chunk is skipped only when its bound exceeds the best
    distance so far by more than that, so every skipped cell is strictly farther than the best:
    the search is exact, and as :func:`metric_distances` computes every distance with the same
    code on the same chunks, its BMU is the full scan's. The first bound is the sample's last
    BMU ``guess`` or, when it is ``-1``, the nearest cell in the nearest box. Returns ``(bmu,
    visited)``, ``visited`` the chunks whose box did not rule them out.
    """
    return _boxed_metric_search(
        head, tail, x, x_box, norm_x, present, metric, boxes, bounds, distances, norms, guess
    )


def _boxed_metric_search(head, tail, x, x_box, norm_x, present, metric, boxes, bounds,
                         distances, norms, guess):  # fmt: skip
    """:func:`boxed_metric_argmin` of the sums (``norms`` None) or of cosine distances."""


# chosen by the type of ``norms`` when typed: numba prunes a branch on an argument typed None
# only, so a cosine run (``norms`` an array) compiled the sums' search too
@overload(_boxed_metric_search, inline="always")
def _boxed_metric_search_jit(head, tail, x, x_box, norm_x, present, metric, boxes, bounds,
                             distances, norms, guess):  # fmt: skip
    if isinstance(norms, types.NoneType):
        manhattan = _typed_sums_marker(metric)

        def sums(head, tail, x, x_box, norm_x, present, metric, boxes, bounds, distances,
                 norms, guess):  # fmt: skip
            return boxed_argmin(
                head, tail, x, boxes, bounds, distances, guess, present, manhattan, None
            )

        return sums

    def cosine(head, tail, x, x_box, norm_x, present, metric, boxes, bounds, distances, norms,
               guess):  # fmt: skip
        return _boxed_cosine_argmin(
            head, tail, x, x_box, norm_x, present, boxes, bounds, distances, norms, guess
        )

    return cosine


@njit(cache=True, fastmath=FASTMATH)
def _boxed_cosine_argmin(head, tail, x, x_box, norm_x, present, boxes, bounds, distances,
                         norms, guess):  # fmt: skip
    """:func:`boxed_metric_argmin` of cosine distances."""
    n_cells = tail.shape[0]
    dim = boxes.shape[1]
    info = np.finfo(distances.dtype)
    margin = distances.dtype.type(1.0 - 4.0 * (dim + 4) * info.eps)
    slack = cosine_slack(dim, distances.dtype)
    box_distances(boxes[0], boxes[1], x_box, present, None, bounds)
    if guess < 0:
        start = argmin_first(bounds) * PRUNE_CHUNK
        stop = min(start + PRUNE_CHUNK, n_cells)
        chunk_distances(head, tail, x, present, COSINE, norm_x, norms, distances, start, stop)
        guess = start + argmin_first(distances[start:stop])
    else:
        start = guess - guess % PRUNE_CHUNK
        stop = min(start + PRUNE_CHUNK, n_cells)
        chunk_distances(head, tail, x, present, COSINE, norm_x, norms, distances, start, stop)
    best_n, best = guess, distances[guess]
    visited = 0
    for c in range(bounds.size):
        if bounds[c] * margin > 2.0 * best + slack:
            continue
        visited += 1
        best, best_n = _visit_chunk(
            head, tail, x, present, COSINE, norm_x, norms, distances, c * PRUNE_CHUNK, best,
            best_n,
        )  # fmt: skip
    return best_n, visited


@njit(fastmath=FASTMATH, inline="always")
def _visit_chunk(head, tail, x, present, metric, norm_x, norms, distances, start, best, best_n):
    """``(best, best_n)`` after the chunk of cells from ``start``, whose distances it computes
    (:func:`chunk_distances`): the lowest index among the smallest distances."""
    stop = min(start + PRUNE_CHUNK, tail.shape[0])
    chunk_distances(head, tail, x, present, metric, norm_x, norms, distances, start, stop)
    for n in range(start, stop):
        d = distances[n]
        if d < best or (d == best and n < best_n):
            best, best_n = d, n
    return best, best_n


@njit(cache=True, fastmath=FASTMATH)
def metric_distances(head, tail, x, present, metric, norms, out):
    """``out[n]``: the distance of every cell to ``x`` under ``metric``, present features only.

    The full scan of every step that is not plain Euclidean on a complete sample: squared
    Euclidean, Manhattan or cosine, over the features where ``present`` is 1 (``x`` holds 0
    where it is 0, so products with it vanish), a chunk at a time (:func:`chunk_distances`).
    The boxed search (:func:`boxed_metric_argmin`) skips chunks of it. ``norms`` (``n_cells``)
    is the cosine distances' scratch, None for the sums (:func:`chunk_distances`).
    """
    n_cells = tail.shape[0]
    norm_x = sample_norm_sq(x) if norms is not None else 0.0
    for start in range(0, n_cells, PRUNE_CHUNK):
        stop = min(start + PRUNE_CHUNK, n_cells)
        chunk_distances(head, tail, x, present, metric, norm_x, norms, out, start, stop)


def chunk_distances(head, tail, x, present, metric, norm_x, norms, out, start, stop):
    """``out[n]`` for the cells ``start`` to ``stop``: :func:`cosine_distances` (``metric``
    cosine, ``norms`` its scratch) or :func:`sum_distances` (``norms`` None). Every step off the
    plain Euclidean path computes its distances here, a chunk of ``PRUNE_CHUNK`` cells at a
    time: the full scan (:func:`metric_distances`) and the boxed search
    (:func:`boxed_metric_argmin`) run the same code on the same chunks, so they compare the
    same distances bit for bit."""


# chosen by the type of ``norms`` when typed, so that a run compiles only its own distances'
# code (benchmarks/RESULTS.md)
@overload(chunk_distances, inline="always")
def _chunk_distances_jit(head, tail, x, present, metric, norm_x, norms, out, start, stop):
    if isinstance(norms, types.NoneType):
        manhattan = _typed_sums_marker(metric)
        return lambda head, tail, x, present, metric, norm_x, norms, out, start, stop: (
            sum_distances(head, tail, x, present, manhattan, out, start, stop)
        )
    return lambda head, tail, x, present, metric, norm_x, norms, out, start, stop: cosine_distances(
        head, tail, x, present, norm_x, norms, out, start, stop
    )


@njit(cache=True, fastmath=TAIL_FASTMATH)
def sum_distances(head, tail, x, present, manhattan, out, start, stop):
    """``out[n]``, cells ``start`` to ``stop``: the squared Euclidean (``manhattan`` None) or
    the Manhattan distance (True; :func:`sums_marker`) of cell ``n`` to ``x`` over the features
    where ``present`` is 1.

    The head's sums by :func:`head_sums`, the tail's by ``_tail_cost``, whose sums
    are reassociated (``TAIL_FASTMATH``) so that they vectorise: a scan of the large lattice
    took 0.98 ms before, 0.31 ms after (benchmarks/RESULTS.md). The partial distance searches
    add the same two parts (:func:`pruned_argmin`). Indices are unsigned from ``start``, as in
    :func:`cell_distances`.
    """
    head_sums(head, x, present, manhattan, out, start, stop)
    if tail.shape[1] > 0:
        split = head.shape[0]
        x_tail, present_tail = x[split:], present[split:]
        base = np.uint64(start)
        for n in range(stop - start):
            i = base + np.uint64(n)
            out[i] += _tail_cost(tail[i], x_tail, present_tail, manhattan)


@njit(cache=True, fastmath=TAIL_FASTMATH)
def head_sums(head, x, present, manhattan, out, start, stop):
    """``out[n]``, cells ``start`` to ``stop``: :func:`sum_distances` over the ``head``
    features only, a feature at a time across the cells (the partial distances of
    :func:`pruned_argmin` off the plain Euclidean step)."""
    base = np.uint64(start)
    count = stop - start
    zero = out.dtype.type(0.0)
    for n in range(count):
        out[base + np.uint64(n)] = zero
    for k in range(head.shape[0]):
        if present[k] == 0:
            continue
        xk = x[k]
        if manhattan is None:
            for n in range(count):
                i = base + np.uint64(n)
                d = head[k, i] - xk
                out[i] += d * d
        else:
            for n in range(count):
                i = base + np.uint64(n)
                out[i] += abs(head[k, i] - xk)


@njit(cache=True, fastmath=FASTMATH)
def unit_vector(x, dim, out):
    """``out[:dim]``: the unit vector of ``x[:dim]``, each feature rounded once from float64;
    False where its squared norm is outside ``unit_norms_sq`` (:func:`unit_scales`)."""
    norm_sq = 0.0
    for k in range(dim):
        norm_sq += np.float64(x[k]) * np.float64(x[k])
    low, high = unit_norms_sq(x.dtype)
    if not low <= norm_sq <= high:
        return False
    scale = 1.0 / np.sqrt(norm_sq)
    for k in range(dim):
        out[k] = np.float64(x[k]) * scale
    return True


@njit(cache=True, fastmath=FASTMATH)
def sample_norm_sq(x):
    """The squared norm of a (zero-padded) sample as :func:`cosine_distances` takes it."""
    norm_x = 0.0
    for k in range(x.size):
        norm_x += x[k] * x[k]
    return norm_x


@njit(cache=True, fastmath=TAIL_FASTMATH)
def cosine_distances(head, tail, x, present, norm_x, norms, out, start, stop):
    """``out[n]``, cells ``start`` to ``stop``: ``gpusom._math.cosine_distance`` of cell ``n``
    and ``x`` over the features where ``present`` is 1; ``norm_x`` from :func:`sample_norm_sq`,
    ``norms`` scratch.

    One of :func:`chunk_distances`' two. The tail's sums are reassociated (``TAIL_FASTMATH``)
    so that they vectorise; the head's run across cells, feature by feature.
    """
    split = head.shape[0]
    base = np.uint64(start)
    count = stop - start
    zero = out.dtype.type(0.0)
    for n in range(count):
        i = base + np.uint64(n)
        out[i], norms[i] = zero, zero
    for k in range(split):
        if present[k] == 0:
            continue
        xk = x[k]
        for n in range(count):
            i = base + np.uint64(n)
            w = head[k, i]
            out[i] += w * xk
            norms[i] += w * w
    if tail.shape[1] > 0:
        x_tail, present_tail = x[split:], present[split:]
        for n in range(count):
            i = base + np.uint64(n)
            cell = tail[i]
            dot, norm = zero, zero
            for k in range(cell.size):
                w = cell[k] * present_tail[k]
                dot += w * x_tail[k]
                norm += w * w
            out[i] += dot
            norms[i] += norm
    for n in range(count):
        i = base + np.uint64(n)
        out[i] = cosine_distance(out[i], norm_x, norms[i])


#: The cosine steps' bound (:func:`pruned_cosine_argmin`) is judged over trials of this many
#: steps: where it left more than ``COSINE_MAX_SHARE`` of the chunks to compute, its pass and
#: the upkeep of the norms cost more than it saves (uniform 64-d data on 30x30 leaves every
#: chunk: a search took 1.15x the full scan's, and a run without the trial 1.28x), and the full
#: scan serves the next ``COSINE_PAUSE_STEPS`` steps (benchmarks/RESULTS.md).
COSINE_TRIAL_STEPS = 128
COSINE_PAUSE_STEPS = 1024
COSINE_MAX_SHARE = 0.75


@njit(cache=True, fastmath=TAIL_FASTMATH)
def refresh_cosine_norms(head, tail, first, stop, cosine_norms):
    """``cosine_norms[0, n] = 1 / |w_n|`` and ``cosine_norms[1, n] = |tail_n|`` for the cells
    ``first`` to ``stop``, the terms of :func:`cosine_scores`; NaN in both where ``|w_n|^2``
    is outside :func:`unit_norms_sq`, where the cosine's sums can overflow or lose the cell to
    underflow (:func:`unit_scales`): such a cell is always a candidate.

    Sums of squares in the codebook's dtype, each within a relative ``(dim + 2) eps`` of its
    exact value (reassociated, so that they vectorise): :func:`pruned_cosine_argmin` allows for
    it.
    """
    scale, tail_norm = cosine_norms[0, first:stop], cosine_norms[1, first:stop]
    zero = scale.dtype.type(0.0)
    for n in range(scale.size):
        scale[n] = zero
    for k in range(head.shape[0]):
        cells = head[k, first:stop]
        for n in range(scale.size):
            scale[n] += cells[n] * cells[n]
    for n in range(scale.size):
        row = tail[first + n]
        tail_sq = zero
        for k in range(row.size):
            tail_sq += row[k] * row[k]
        tail_norm[n] = tail_sq
    # square roots and quotients in a loop of their own, where they vectorise
    low, high = unit_norms_sq(head.dtype)
    low, high = scale.dtype.type(low), scale.dtype.type(high)
    nan, one = scale.dtype.type(np.nan), scale.dtype.type(1.0)
    for n in range(scale.size):
        norm_sq = scale[n] + tail_norm[n]
        bounded = low <= norm_sq and norm_sq <= high
        scale[n] = one / np.sqrt(norm_sq) if bounded else nan
        tail_norm[n] = np.sqrt(tail_norm[n]) if bounded else nan


@njit(cache=True, fastmath=FASTMATH)
def cosine_scores(head, x, x_tail_norm, cosine_norms, out, start, stop):
    """``out[n]`` for the cells ``start`` to ``stop``: ``(sum_{k < split} w_k x_k + |x_tail|
    |w_tail|) / |w|``, from the head and :func:`refresh_cosine_norms`' terms; NaN where those
    are. By Cauchy-Schwarz on the tail it is at least ``x . w / |w|``, so ``1 - out[n] / |x|``
    is at most the cell's cosine distance (:func:`pruned_cosine_argmin`)."""
    scores = out[start:stop]
    scale, tail_norm = cosine_norms[0, start:stop], cosine_norms[1, start:stop]
    for n in range(scores.size):
        scores[n] = x_tail_norm * tail_norm[n]
    for k in range(head.shape[0]):
        cells = head[k, start:stop]
        xk = x[k]
        for n in range(scores.size):
            scores[n] += cells[n] * xk
    for n in range(scores.size):
        scores[n] *= scale[n]


@njit(cache=True, fastmath=FASTMATH)
def sample_tail_norm(x, split):
    """``|x_tail|``, the sample's norm over the features ``split`` on, for
    :func:`cosine_scores`."""
    tail_sq = 0.0
    for k in range(split, x.size):
        tail_sq += np.float64(x[k]) * np.float64(x[k])
    return x.dtype.type(np.sqrt(tail_sq))


@register_jitable
def cosine_slack(dim, dtype):
    """``COSINE_BOX_SLACK (dim + 4) eps`` of ``dtype``: the absolute slack of the cosine
    searches over ``dim`` features (:func:`boxed_metric_argmin`,
    :func:`pruned_cosine_argmin`)."""
    return COSINE_BOX_SLACK * (dim + 4) * np.finfo(dtype).eps


@register_jitable(inline="always")
def cosine_floor(best, slack, x_norm, dtype):
    """The :func:`cosine_scores` below which a cell is strictly farther than ``best`` from a
    sample of norm ``x_norm`` (:func:`pruned_cosine_argmin`)."""
    return dtype((1.0 - best - slack) * x_norm)


@register_jitable(inline="always")
def cosine_candidates(scores, floor):
    """How many of ``scores`` are not below ``floor``: NaN (a cell of :func:`unit_norms_sq`'s
    outside) counts."""
    candidates = 0
    for n in range(scores.size):
        candidates += not scores[n] < floor
    return candidates


@njit(cache=True, fastmath=FASTMATH)
def pruned_cosine_argmin(head, tail, x, present, norm_x, cosine_norms, scores, distances,
                         norms, guess):  # fmt: skip
    """The lowest-index argmin of :func:`metric_distances`' cosine distances (a complete
    sample whose squared norm ``norm_x``, :func:`sample_norm_sq`, is within
    :func:`unit_norms_sq`), computing them only in chunks that hold a cell that can win.

    A cell's cosine distance is at least ``1 - s_n / |x|``, ``s_n`` its :func:`cosine_scores`
    (Cauchy-Schwarz on the tail). All the sums are of at most ``dim`` rounded terms whose
    sizes are bounded by ``|x| |w|`` (Cauchy-Schwarz again): the bound and the distance
    :func:`cosine_distances` computes are each within a few ``dim eps`` of their exact values,
    well inside :func:`cosine_slack`. A chunk whose scores are all below
    :func:`cosine_floor` of the best distance so far (its cells strictly farther) is skipped;
    the others are computed by :func:`chunk_distances`, the full scan's code, so the BMU is
    the full scan's bit for bit. The first bound is the sample's last BMU ``guess`` or, when
    it is ``-1``, the cell with the highest score. ``scores``, ``distances`` and ``norms``
    (``n_cells``) are scratch. Returns ``(bmu, visited)``, ``visited`` the chunks computed.
    """
    split, n_cells = head.shape[0], tail.shape[0]  # the head's columns past n_cells: padding
    dtype = distances.dtype.type
    slack, x_norm = cosine_slack(x.size, distances.dtype), np.sqrt(norm_x)
    cosine_scores(head, x, sample_tail_norm(x, split), cosine_norms, scores, 0, n_cells)
    if guess < 0:
        guess = min(first_index_of(scores, np.nanmax(scores)), n_cells - 1)
    start = guess - guess % PRUNE_CHUNK
    stop = min(start + PRUNE_CHUNK, n_cells)
    chunk_distances(head, tail, x, present, COSINE, norm_x, norms, distances, start, stop)
    best_n, best = guess, distances[guess]
    visited = 0
    for start in range(0, n_cells, PRUNE_CHUNK):
        floor = cosine_floor(best, slack, x_norm, dtype)
        if cosine_candidates(scores[start : start + PRUNE_CHUNK], floor) == 0:
            continue
        visited += 1
        best, best_n = _visit_chunk(
            head, tail, x, present, COSINE, norm_x, norms, distances, start, best, best_n
        )
    return best_n, visited


def plain_argmin(head, tail, x, boxes, bounds, distances, guess, nearest, pruned):
    """The BMU of a plain step (Euclidean, a complete sample ``x``, zero-padded) from the
    sample's last BMU ``guess``: :func:`boxed_argmin` while the boxes (``ChunkBoxes.arrays()``,
    or None) hold, else :func:`nearest_cell` where ``nearest`` is not None (a head of every
    feature, its :func:`head_rows`) or the partial distance search (:func:`pruned_argmin`)
    where ``pruned`` is not None (a head and a tail). Both None: ``guess`` (never taken: runs of
    other metrics make no plain step). ``bounds`` and ``distances`` are the searches'
    scratch."""


# prefer_literal: typed with ``nearest``'s value (head_rows), which _unboxed_argmin passes on
@overload(plain_argmin, inline="always", prefer_literal=True)
def _plain_argmin_jit(head, tail, x, boxes, bounds, distances, guess, nearest, pruned):
    # Chosen when train_online is typed, so that a run compiles only its own search: every run
    # compiled both nearest_cell and the partial distance search, and runs of other metrics the
    # plain step's too, 1-4 s of a first call (benchmarks/RESULTS.md).
    if isinstance(nearest, types.NoneType) and isinstance(pruned, types.NoneType):
        return lambda head, tail, x, boxes, bounds, distances, guess, nearest, pruned: guess
    if isinstance(boxes, types.NoneType):
        return lambda head, tail, x, boxes, bounds, distances, guess, nearest, pruned: (
            _unboxed_argmin(head, tail, x, distances, guess, nearest)
        )

    # the partial distance search's head, or a head of every feature that has eight rows
    eight = not isinstance(pruned, types.NoneType) or (
        isinstance(nearest, types.IntegerLiteral) and nearest.literal_value == PDS_HEAD_DIM
    )
    eight_rows = True if eight else None

    def argmin(head, tail, x, boxes, bounds, distances, guess, nearest, pruned):
        if boxes[2][0] != 1:
            return _unboxed_argmin(head, tail, x, distances, guess, nearest)
        bmu, visited = boxed_argmin(
            head, tail, x, boxes[0], bounds, distances, guess, None, None, eight_rows
        )
        boxes[2][2] += visited
        return bmu

    return argmin


def _unboxed_argmin(head, tail, x, distances, guess, nearest):
    """:func:`plain_argmin`'s search where no boxes serve: :func:`nearest_cell` where
    ``nearest`` is not None, else the partial distance search."""


@overload(_unboxed_argmin, inline="always", prefer_literal=True)
def _unboxed_argmin_jit(head, tail, x, distances, guess, nearest):
    if not isinstance(nearest, types.NoneType):
        return lambda head, tail, x, distances, guess, nearest: nearest_cell(
            head, x, distances, nearest
        )

    def partial(head, tail, x, distances, guess, nearest):
        head_distances(head, x, distances, 0, distances.size)
        if guess < 0:
            guess = argmin_first(distances)
        return pruned_argmin(distances, tail, x[head.shape[0] :], guess, None, None)

    return partial


def _partial_sums_argmin(head, tail, x, present, metric, distances, guess, cosine_scratch):
    """The partial distance search of a sum metric's step (``cosine_scratch`` None):
    :func:`head_sums`, then :func:`pruned_argmin` from ``guess`` (or, when it is ``-1``, the
    cell of the smallest partial distance). Runs of cosine steps never take it."""


# chosen by the type of ``cosine_scratch`` when typed: numba prunes the branch that leads here
# only where that is None, so a cosine run compiled this search too (benchmarks/RESULTS.md)
@overload(_partial_sums_argmin, inline="always")
def _partial_sums_argmin_jit(head, tail, x, present, metric, distances, guess, cosine_scratch):
    if not isinstance(cosine_scratch, types.NoneType):
        return lambda head, tail, x, present, metric, distances, guess, cosine_scratch: -1

    manhattan = _typed_sums_marker(metric)

    def partial(head, tail, x, present, metric, distances, guess, cosine_scratch):
        split = head.shape[0]
        head_sums(head, x, present, manhattan, distances, 0, distances.size)
        if guess < 0:
            guess = argmin_first(distances)
        return pruned_argmin(distances, tail, x[split:], guess, present[split:], manhattan)

    return partial


# The runs come back as a tuple of integers: compiled apart and passed two arrays to fill, each
# grid row of the window paid about 50 ns, and (a)'s whole-map update took 4.3 us a step instead
# of 3.3 (benchmarks/RESULTS.md).
@njit(cache=True, fastmath=FASTMATH)
def _offset_runs(centre, first, last, size, is_torus):
    """Runs of positions ``centre + first`` to ``centre + last`` on one axis (wrapped on a
    torus, clipped on the plane), each position once: ``(n_runs, ((start, stop), (start,
    stop)))``, ``n_runs`` 0-2 and the runs past it zeros."""
    none = (0, 0)
    if last < first:
        return 0, (none, none)
    if is_torus:
        if last - first + 1 >= size:
            return 1, ((0, size), none)
        lo = (centre + first) % size
        hi = lo + last - first + 1
        if hi > size:
            return 2, ((lo, size), (0, hi - size))
        return 1, ((lo, hi), none)
    lo, hi = max(centre + first, 0), min(centre + last + 1, size)
    return (1 if lo < hi else 0), ((lo, hi), none)


@njit(cache=True, fastmath=FASTMATH)
def _axis_window(centre, reach, size, is_torus):
    """Runs of positions within ``reach`` of ``centre`` on one axis (:func:`_offset_runs`)."""
    return _offset_runs(centre, -reach, reach, size, is_torus)


@njit(fastmath=FASTMATH, inline="always")
def _apply_run(head, tail, x, base, lo, g, present, masked):
    """``w += g[c] * (x - w)`` for the cells ``base + lo + c`` of one run, all features, or
    (``masked``) the features where ``present`` is 1 only."""
    split = head.shape[0]
    x_tail, present_tail = x[split:], present[split:]
    for k in range(split):
        if masked and present[k] == 0:
            continue
        w = head[k, base + lo : base + lo + g.size]
        xk = x[k]
        for c in range(g.size):
            w[c] += g[c] * (xk - w[c])
    if tail.shape[1] > 0:
        # Written out per cell here, not called: a per-cell call was not inlined and cost ~25%.
        for c in range(g.size):
            gc = g[c]
            cell = tail[base + lo + c]
            if masked:
                # A missing feature has present 0 and x 0: its move is exactly zero.
                for k in range(cell.size):
                    cell[k] += gc * present_tail[k] * (x_tail[k] - cell[k])
            else:
                for k in range(cell.size):
                    cell[k] += gc * (x_tail[k] - cell[k])


@njit(cache=True, fastmath=FASTMATH)
def refresh_window(head, tail, bmu, sigma, rows, cols, is_torus, neighborhood, truncate,
                   topology, boxes, cosine_norms):  # fmt: skip
    """After a step's update (:func:`update_window` at ``bmu`` and ``sigma``), for every cell
    it can have moved: grow the ``ChunkBoxes`` to take in its vector (``boxes``: ``(bounds,
    scratch, unit)``, its unit vector where ``unit`` is not None; or None) and refresh its
    :func:`refresh_cosine_norms` (``cosine_norms``, or None).

    Apart from the update, so that its loops stay as they were (growing inside them made maps
    without boxes 3-12 % slower, benchmarks/RESULTS.md). Each grid row of the window is taken
    by the same exact integer test as the update's (rectangular) or with one column more on
    either side (hexagonal, whose rows shift by half a cell).
    """
    radius = window_radius(neighborhood, sigma, truncate)
    radius_sq = radius * radius
    b_row, b_col = bmu // cols, bmu % cols
    hexagonal = topology == HEXAGONAL
    # a hexagonal row is 0.87 cells high
    row_reach = min(int(radius / 0.8660254037844386) + 1 if hexagonal else int(radius), rows)
    n_row_runs, row_runs = _axis_window(b_row, row_reach, rows, is_torus)
    for row_run in range(n_row_runs):
        for r in range(*row_runs[row_run]):
            d_row = axis_delta(r, b_row, rows, is_torus)
            if hexagonal:
                reach = half_width(4.0 * radius_sq, 3.0 * d_row * d_row, 2 * cols) // 2 + 1
            else:
                reach = half_width(radius_sq, float(d_row * d_row), max(rows, cols))
            n_runs, runs = _axis_window(b_col, reach, cols, is_torus)
            for run in range(n_runs):
                lo, hi = runs[run]
                first, stop = r * cols + lo, r * cols + hi
                if boxes is not None:
                    _grow_boxes(head, tail, first, stop, *boxes)
                if cosine_norms is not None:
                    refresh_cosine_norms(head, tail, first, stop, cosine_norms)


@njit(cache=True, fastmath=FASTMATH)
def _update_hexagonal(head, tail, x, bmu, sigma, lr, rows, cols, is_torus, neighborhood,
                      radius_sq, weight_by_offset, col_weight, gain, present, masked):  # fmt: skip
    """The update of :func:`update_window` on the hexagonal lattice.

    The window ``quadrance <= 4 radius^2`` (``gpusom._math.quadrance``, exact integers) is, per
    row at ``dr``, the columns whose doubled offset ``2 (c - b_col) + s`` (``s`` the rows'
    parity shift) is at most ``m`` in size, ``m^2 <= 4 radius^2 - 3 dr^2``. Separable weights
    are a row factor times a column factor: one ``exp`` per doubled offset (``weight_by_offset``,
    ``2 cols + 1``), then the factor of every column of the window for the rows of the BMU's
    parity and of the other (``col_weight``, ``2 cols``), as the rectangular lattice's tables; a
    row's gains are then one vectorised product: wide updates 12-21 % faster than with a doubled
    offset looked up per cell (benchmarks/RESULTS.md). The others take one weight per cell.
    """
    b_row, b_col = bmu // cols, bmu % cols
    q_max = 4.0 * radius_sq
    rate = head.dtype.type(lr)
    separable = is_separable(neighborhood)
    if separable:
        widest = half_width(q_max, 0.0, 2 * cols)
        for twice_dx in range(widest + 1):
            weight_by_offset[twice_dx] = axis_weight_sq(neighborhood, 0.25 * twice_dx**2, sigma)
        # every column a row's run can reach, |2 (c - b_col) + shift| <= widest; a column past
        # that for one parity is never used with it (its entry is clipped, not read past the
        # offsets filled)
        n_runs, runs = _axis_window(b_col, (widest + 1) // 2, cols, is_torus)
        for parity in range(2):
            for run in range(n_runs):
                for c in range(*runs[run]):
                    _, twice_dx = hex_offsets(b_row + parity, c, b_row, b_col, rows, cols, is_torus)
                    col_weight[parity * cols + c] = weight_by_offset[min(twice_dx, widest)]
    reach = 0
    while reach < rows and 3.0 * (reach + 1) * (reach + 1) <= q_max:
        reach += 1
    n_row_runs, row_runs = _axis_window(b_row, reach, rows, is_torus)
    for row_run in range(n_row_runs):
        for r in range(*row_runs[row_run]):
            d_row = axis_delta(r, b_row, rows, is_torus)
            m = half_width(q_max, 3.0 * d_row * d_row, 2 * cols)
            shift = r % 2 - b_row % 2
            first, last = -((m + shift) // 2), (m - shift) // 2
            base = r * cols
            n_runs, runs = _offset_runs(b_col, first, last, cols, is_torus)
            for run in range(n_runs):
                lo, hi = runs[run]
                g = gain[: hi - lo]
                if separable:
                    row_weight = axis_weight_sq(neighborhood, 0.75 * d_row * d_row, sigma)
                    row_gain = rate * head.dtype.type(row_weight)
                    first_col = lo + (cols if r % 2 != b_row % 2 else 0)
                    weights = col_weight[first_col : first_col + hi - lo]
                    for c in range(hi - lo):
                        g[c] = row_gain * weights[c]
                else:
                    for c in range(hi - lo):
                        q = quadrance(r, lo + c, b_row, b_col, rows, cols, is_torus, HEXAGONAL)
                        weight = radial_weight(neighborhood, 0.25 * q, sigma)
                        g[c] = rate * head.dtype.type(weight)
                _apply_run(head, tail, x, base, lo, g, present, masked)


# Inlined (numba IR) into its one caller, as is _update_rectangular: a call passing their ~20
# arguments, arrays among them, took about 0.17 us a step, a third of a late update on (a);
# inlined, (a) and (b) trained 7-10 % faster (benchmarks/RESULTS.md).
@njit(cache=True, fastmath=FASTMATH, inline="always")
def update_window(
    head,
    tail,
    x,
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
    col_delta,
    gain,
    topology,
    present,
    masked,
):
    """One online update: ``w_n += lr * h(d(bmu, n)) * (x - w_n)`` over the truncated disk.

    ``x`` is the sample, zero-padded to the codebook's ``split + tail.shape[1]`` features.
    Scratch: ``weight_by_delta`` (``max(rows, 2 * cols) + 1``), ``col_weight`` (``2 * cols``, one
    row of the lattice's column factors per row parity on the hexagonal one) and ``gain``
    (``cols``) in the codebook's dtype, ``col_delta`` (``cols``) int64. With ``masked``, only
    the features where ``present`` (the sample's mask, 0 or 1, in the codebook's dtype, ``x``
    0 where it is 0) is 1 move. Separable neighbourhoods take one weight per grid distance
    from a table; the others one per cell, from the squared distance. ``topology`` is None on
    the rectangular lattice and ``HEXAGONAL`` on the hexagonal one: numba prunes the branch on
    an argument that is or is not None, so a run compiles only its lattice's update (2-3 s of
    a first call, benchmarks/RESULTS.md).
    """
    radius = window_radius(neighborhood, sigma, truncate)
    radius_sq = radius * radius
    if topology is None:
        _update_rectangular(
            head, tail, x, bmu, sigma, lr, rows, cols, is_torus, neighborhood, radius_sq,
            weight_by_delta, col_weight, col_delta, gain, present, masked,
        )  # fmt: skip
    else:
        assert topology == HEXAGONAL  # the rectangular lattice is None, never RECTANGULAR
        _update_hexagonal(
            head, tail, x, bmu, sigma, lr, rows, cols, is_torus, neighborhood, radius_sq,
            weight_by_delta, col_weight, gain, present, masked,
        )  # fmt: skip


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _update_rectangular(head, tail, x, bmu, sigma, lr, rows, cols, is_torus, neighborhood,
                        radius_sq, weight_by_delta, col_weight, col_delta, gain, present,
                        masked):  # fmt: skip
    """The update of :func:`update_window` on the rectangular lattice."""
    b_row, b_col = bmu // cols, bmu % cols
    limit = max(rows, cols)
    widest = half_width(radius_sq, 0.0, limit)
    separable = is_separable(neighborhood)
    rate = head.dtype.type(lr)
    if separable:
        # One exp per grid distance; rows and columns share the table.
        for delta in range(widest + 1):
            weight_by_delta[delta] = axis_weight(neighborhood, delta, sigma)
    n_runs, runs = _axis_window(b_col, widest, cols, is_torus)
    for run in range(n_runs):
        for c in range(*runs[run]):
            delta = axis_delta(c, b_col, cols, is_torus)
            if separable:
                col_weight[c] = weight_by_delta[delta]
            else:
                col_delta[c] = delta
    n_row_runs, row_runs = _axis_window(b_row, widest, rows, is_torus)
    for row_run in range(n_row_runs):
        for r in range(*row_runs[row_run]):
            d_row = axis_delta(r, b_row, rows, is_torus)
            reach = half_width(radius_sq, float(d_row * d_row), limit)
            base = r * cols
            n_runs, runs = _axis_window(b_col, reach, cols, is_torus)
            for run in range(n_runs):
                lo, hi = runs[run]
                g = gain[: hi - lo]
                if separable:
                    row_gain = rate * weight_by_delta[d_row]
                    weights = col_weight[lo:hi]
                    for c in range(hi - lo):
                        g[c] = row_gain * weights[c]
                else:
                    for c in range(hi - lo):
                        dist_sq = float(d_row * d_row + col_delta[lo + c] * col_delta[lo + c])
                        g[c] = rate * head.dtype.type(radial_weight(neighborhood, dist_sq, sigma))
                _apply_run(head, tail, x, base, lo, g, present, masked)


@njit(cache=True, fastmath=FASTMATH)
def train_online(
    head,
    tail,
    data,
    guesses,
    order,
    sigmas,
    lrs,
    rows,
    cols,
    is_torus,
    neighborhood,
    truncate,
    topology,
    metric,
    missing,
    bmus,
    boxes,
    cosine_norms,
    cosine_scratch,
    nearest,
    pruned,
):
    """Run ``order.size`` online steps in place; record each step's BMU in ``bmus``.

    ``head`` ``(split, n_cells`` or more: padding) and ``tail`` ``(n_cells, dim - split`` rounded
    up to a multiple of ``TAIL_LANES``) are the split codebook (module docstring), ``boxes`` its
    ``ChunkBoxes.arrays()``; ``data`` is ``(n_samples, dim)`` in their dtype, ``missing[i]``
    whether sample ``i`` has NaN features. ``guesses[i]`` is the BMU sample ``i`` had when last
    drawn: the first bound of the partial distance search, updated here. Any value in
    ``[0, n_cells)`` is correct; better is faster. ``-1`` (not drawn yet) starts from the cell
    with the smallest partial distance, of all cells or, once the boxes hold, in the nearest
    box (:func:`boxed_argmin`): on the large lattice nearly as good as the true BMU and twice as
    fast as cell 0 (benchmarks/RESULTS.md). A sample's first draw is a third of the steps when
    there are few steps per sample.

    ``cosine_norms`` (``(2, n_cells)`` scratch, or None) serves the cosine steps' bound
    (:func:`pruned_cosine_argmin`): filled here, then refreshed after every update.
    ``cosine_scratch`` (``n_cells``) is the cosine distances' scratch (:func:`chunk_distances`'
    ``norms``) on cosine runs, None on the others.

    ``metric`` is a :class:`CompiledInt`: the sums' searches compile for its own sum only
    (:func:`sums_marker`).

    ``nearest`` (a head of every feature: its :func:`head_rows`, or None) and ``pruned`` (True
    or None) choose the search of a plain step, Euclidean on a complete sample
    (:func:`plain_argmin`): one of them is not None on Euclidean runs, both are None on runs of
    other metrics, whose steps all take the metric path.

    ``missing=None`` (Euclidean steps on complete data), ``boxes=None`` (no boxes),
    ``cosine_norms=None`` and ``cosine_scratch=None`` (other metrics), ``topology=None`` (the
    rectangular lattice) and ``nearest`` or ``pruned`` None compile the other paths out: numba
    prunes a branch on an argument that is None, and a first call compiles only what the run
    uses (benchmarks/RESULTS.md).
    """
    # topology=None: the rectangular lattice, without the hexagonal update (update_window)
    lattice = RECTANGULAR if topology is None else topology
    dim = data.shape[1]
    split = head.shape[0]
    dtype = head.dtype
    x = np.zeros(split + tail.shape[1], dtype)
    distances = np.empty(tail.shape[0], dtype)
    # by grid distance (rectangular) or doubled horizontal offset (hexagonal)
    weight_by_delta = np.empty(max(rows, 2 * cols) + 1, dtype)
    col_weight = np.empty(2 * cols, dtype)
    col_delta = np.empty(cols, np.int64)
    gain = np.empty(cols, dtype)
    present = np.zeros(x.size, dtype)
    present[:dim] = 1.0
    # cosine steps' boxes bound unit vectors (ChunkBoxes.unit)
    unit = boxes is not None and boxes[3] is not None
    x_unit = np.zeros(x.size, dtype)
    # each chunk's box distance; allocated here, not with the boxes: LLVM then knows it
    # aliases no codebook array (passed in, it made the large lattice 4 % slower)
    if boxes is not None:
        chunk_gaps = np.empty(boxes[0].shape[2], dtype)
    else:
        chunk_gaps = np.empty(0, dtype)
    n_cells = tail.shape[0]
    trial_steps = max(BOX_MIN_TRIAL_STEPS, n_cells // BOX_TRIAL_RATE)
    # the cosine bound: whether it serves, the steps of its trial or pause so far, the steps it
    # served and the chunks it computed in the trial (COSINE_TRIAL_STEPS)
    bound_on, bound_steps, bound_served, bound_visits = cosine_norms is not None, 0, 0, 0
    if cosine_norms is not None:
        # the codebook may have changed since the last call (a batch step, a loaded model)
        refresh_cosine_norms(head, tail, 0, n_cells, cosine_norms)
        scores = np.empty(n_cells, dtype)
    else:
        scores = np.empty(0, dtype)
    for t in range(order.size):
        sample = order[t]
        # Element by element: an array slice assignment compiles numba's shape-mismatch error
        # message, about 1.8 s of a first call.
        for k in range(dim):
            x[k] = data[sample, k]
        masked = False
        if missing is not None:
            masked = missing[sample]
            if masked:
                for k in range(dim):
                    present[k] = 0.0 if np.isnan(x[k]) else 1.0
                    if present[k] == 0.0:
                        x[k] = 0.0
        if missing is not None and (masked or metric != EUCLIDEAN):
            # Boxes that hold serve every sample but a cosine step's with missing values or a
            # norm the unit boxes do not bound (unit_vector): those take the full scan.
            if (
                boxes is not None
                and boxes[2][0] == 1
                and (not unit or (not masked and unit_vector(x, dim, x_unit)))
            ):
                x_box = x_unit if unit else x
                norm_x = sample_norm_sq(x) if unit else 0.0
                bmu, visited = boxed_metric_argmin(
                    head, tail, x, x_box, norm_x, present, metric, boxes[0], chunk_gaps,
                    distances, cosine_scratch, guesses[sample],
                )  # fmt: skip
                boxes[2][2] += visited
            elif cosine_scratch is None and tail.shape[1] > 0:
                # sums of non-negative terms: the partial distance search, as on the plain step
                bmu = _partial_sums_argmin(
                    head, tail, x, present, metric, distances, guesses[sample], cosine_scratch
                )
            elif (
                cosine_norms is not None and bound_on and not masked and unit_vector(x, dim, x_unit)
            ):
                bmu, visited = pruned_cosine_argmin(
                    head, tail, x, present, sample_norm_sq(x), cosine_norms, scores,
                    distances, cosine_scratch, guesses[sample],
                )  # fmt: skip
                bound_served += 1
                bound_visits += visited
            else:
                metric_distances(head, tail, x, present, metric, cosine_scratch, distances)
                bmu = argmin_first(distances)
            guesses[sample] = bmu
        else:
            bmu = plain_argmin(
                head, tail, x, boxes, chunk_gaps, distances, guesses[sample], nearest, pruned
            )
            guesses[sample] = bmu
        bmus[t] = bmu
        update_window(
            head,
            tail,
            x,
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
            col_delta,
            gain,
            topology,
            present,
            masked,
        )
        if masked:
            for k in range(dim):
                present[k] = 1.0
        grow = False
        if boxes is not None:
            bounds, scratch, state = boxes[0], boxes[1], boxes[2]
            state[1] += 1
            if state[0] == 0:
                reach = 2.0 * window_radius(neighborhood, sigmas[t], truncate) + 1.0
                # the share of the map (BOX_BUILD_SHARE or SCAN_BOX_BUILD_SHARE)
                if state[5] * reach * reach <= n_cells:
                    build_boxes(head, tail, bounds, scratch, state, boxes[3])
            elif state[1] * BOX_REBUILD_RATE >= n_cells:
                # takes in the moved cells itself, and ends a pause with a new trial
                build_boxes(head, tail, bounds, scratch, state, boxes[3])
            elif state[0] == 1:
                scan = n_cells * state[4]  # features the plain search reads
                if state[1] == trial_steps and state[2] * state[3] > trial_steps * scan:
                    state[0] = 2  # paused: not grown, rebuilt before the next use
                else:
                    grow = True
        # two calls, so that numba compiles each with its arguments typed None or not (cosine
        # steps take their bound where no boxes serve them, Codebook.cosine_norms)
        window = (bmu, sigmas[t], rows, cols, is_torus, neighborhood, truncate, lattice)
        if cosine_norms is not None:
            bound_steps += 1
            if not bound_on:
                if bound_steps == COSINE_PAUSE_STEPS:
                    refresh_cosine_norms(head, tail, 0, n_cells, cosine_norms)
                    bound_on, bound_steps, bound_served, bound_visits = True, 0, 0, 0
            else:
                refresh_window(head, tail, *window, None, cosine_norms)
                if bound_steps == COSINE_TRIAL_STEPS:
                    n_chunks = -(-n_cells // PRUNE_CHUNK)
                    # paused: not kept, refreshed whole when the pause ends
                    bound_on = bound_visits <= COSINE_MAX_SHARE * bound_served * n_chunks
                    bound_steps, bound_served, bound_visits = 0, 0, 0
        elif boxes is not None and grow:
            refresh_window(head, tail, *window, (boxes[0], boxes[1], boxes[3]), None)


#: Scores are scanned in chunks of this many cells: a chunk whose smallest score is above the
#: threshold is skipped whole, so the candidate search is a vectorised pass plus a few chunks.
SCORE_CHUNK = 64


def score_chunk_minima(dots, cb_sq, out):
    """``out[c] = min of cb_sq[j] - 2 * dots[j]`` over chunk ``c`` (finite inputs).

    ``2 * dots[j]`` is exact, so fused or not, every score is the same value as in
    :func:`rerank`'s candidate test.
    """
    scores = cb_sq - 2 * dots
    for c in range(out.size):
        out[c] = scores[c * SCORE_CHUNK : (c + 1) * SCORE_CHUNK].min()


@overload(score_chunk_minima, jit_options={"cache": True, "fastmath": FINITE_FASTMATH})
def _score_chunk_minima_jit(dots, cb_sq, out):
    # A float min reduction does not vectorise in numba; an integer one does. A float's bit
    # pattern with the low bits flipped where the sign is set orders like the float (negative
    # scores included), and the same flip maps the smallest key back to its float.
    bits = np.int32 if dots.dtype == types.float32 else np.int64
    flip = bits(np.iinfo(bits).max)
    shift = bits(8 * np.dtype(bits).itemsize - 1)

    def chunk_minima(dots, cb_sq, out):
        two = dots.dtype.type(2.0)
        scores = np.empty(SCORE_CHUNK, dots.dtype)
        keys = scores.view(bits)
        out_keys = out.view(bits)
        for c in range(out.size):
            # slices, so the loops count from zero and vectorise (see ``pruned_argmin``)
            d = dots[c * SCORE_CHUNK : (c + 1) * SCORE_CHUNK]
            q = cb_sq[c * SCORE_CHUNK : (c + 1) * SCORE_CHUNK]
            for j in range(d.size):
                scores[j] = q[j] - two * d[j]
            smallest = flip
            for j in range(d.size):
                key = keys[j]
                smallest = min(smallest, key ^ ((key >> shift) & flip))
            out_keys[c] = smallest ^ ((smallest >> shift) & flip)

    return chunk_minima


#: Relative slack on the Manhattan search's bounds, for the float64 rounding of the distances
#: it compares (each within ``dim`` float64 eps of exact, far below this for any ``dim``).
MANHATTAN_SLACK = 1e-9


@njit(cache=True, fastmath=TAIL_FASTMATH)
def manhattan_estimate(x, present, cell):
    """``sum_f |x[f] - cell[f]| present[f]`` in float64, summed in any order (so that it
    vectorises): within ``dim`` float64 eps of ``exact_distance``'s in-order sum."""
    total = 0.0
    for f in range(x.size):
        total += abs((x[f] - np.float64(cell[f])) * present[f])
    return total


@njit(cache=True)
def _manhattan_bounds(row, cb_sq, minima, tolerance, data, i, codebook, k, x_row, present):
    """``(upper, threshold)`` for :func:`rerank`'s Manhattan row ``i``, whose scores are
    Euclidean (``gpusom._bmu_search.euclidean_scores``); fills ``x_row`` and ``present`` with
    the sample (missing features 0) and its mask for :func:`manhattan_estimate`.

    No cell's Euclidean distance exceeds its Manhattan one. The cell of the smallest score (and
    for ``k = 2`` another) is measured: the largest of their Manhattan distances, ``upper``,
    bounds the ``k``-th smallest, and the first one's squared distance gives the row's constant
    (within ``tolerance / 2``, as is each score). A cell whose score is above ``threshold``
    is farther than ``upper`` in Euclidean distance, rounding and underflow allowed for, and
    cannot be among the ``k``. Without a bound (zero scores, infinite tolerance) every cell
    stays a candidate.
    """
    n_cells = row.size
    dim = data.shape[1]
    two = row.dtype.type(2.0)
    # the cell of the smallest score, in the chunk of the smallest minimum, and for k = 2 the
    # next of that chunk (any other cell would do); scores may be negative, which
    # argmin_first's bit patterns do not order
    chunk = np.argmin(minima)
    first_j, second_j = -1, -1
    first_s, second_s = np.inf, np.inf
    for j in range(chunk * SCORE_CHUNK, min((chunk + 1) * SCORE_CHUNK, n_cells)):
        score = cb_sq[j] - two * row[j]
        if score < first_s:
            second_s, second_j = first_s, first_j
            first_s, first_j = score, j
        elif score < second_s:
            second_s, second_j = score, j
    if k == 2 and second_j < 0 and n_cells > 1:
        second_j = 0 if first_j != 0 else 1
    upper = exact_distance(data, i, codebook, first_j, MANHATTAN)
    if k == 2:
        # one cell: no second, every cell (the one) a candidate
        upper = (
            np.inf
            if second_j < 0
            else max(upper, exact_distance(data, i, codebook, second_j, MANHATTAN))
        )
    upper *= 1.0 + MANHATTAN_SLACK
    constant = exact_distance(data, i, codebook, first_j, EUCLIDEAN) - first_s
    threshold = upper * upper - constant + tolerance + _underflow(dim)
    for f in range(dim):
        x_row[f] = np.float64(data[i, f])
        present[f] = 0.0 if x_row[f] != x_row[f] else 1.0
        if present[f] == 0.0:
            x_row[f] = 0.0
    return upper, threshold


@register_jitable
def _underflow(dim):
    """:func:`gpusom._math.underflow_slack` of float64 sums of ``dim`` terms."""
    return underflow_slack(dim, np.finfo(np.float64).tiny)


@njit(cache=True)
def _bounded_manhattan(x_row, present, codebook, j, limit):
    """``exact_distance`` (Manhattan) of the sample in ``x_row`` (float64, 0 where ``present``
    is 0) and cell ``j`` where it is not above ``limit``, else inf: first the vectorised
    :func:`manhattan_estimate` (rounding allowed for), then the in-order sum over the present
    features, stopped once it passes ``limit`` (a sum of non-negative terms never
    decreases)."""
    estimate = manhattan_estimate(x_row, present, codebook[j])
    if estimate > limit * (1.0 + MANHATTAN_SLACK) + _underflow(x_row.size):
        return np.inf
    d = 0.0
    for f in range(x_row.size):
        if present[f] == 0.0:
            continue
        d += abs(x_row[f] - np.float64(codebook[j, f]))
        if d > limit:
            return np.inf
    return d


def rerank(dots, cb_sq, tolerance, data, codebook, k, metric, out_index, out_distance):
    """Exact top-``k`` (1 or 2) BMUs from the centred dot products of a matrix product.

    ``score[i, j] = cb_sq[j] - 2 * dots[i, j]`` approximates ``||data[i] - codebook[j]||^2`` up
    to a per-row constant and an error below ``tolerance[i] / 2``. Every ``j`` whose score is
    within ``tolerance[i]`` of the ``k``-th smallest score is a candidate (for ``k = 2`` the
    second-smallest chunk minimum stands in for the second-smallest score: never smaller, so the
    candidates can only be more); candidates are ranked by the squared distance computed in
    float64 from direct differences, ties to the lowest index. Serial on purpose: the BLAS
    threads of the product are still spinning on both cores when this runs, and a parallel
    region here measured slower.

    Manhattan distances take Euclidean scores (the CPU engine's ``find_bmus``) or none (zero
    scores, infinite tolerance): the candidates are the cells :func:`_manhattan_bounds` keeps,
    each measured by :func:`_bounded_manhattan` against the ``k``-th best so far. The result is
    that of measuring every cell, bit for bit.
    """
    manhattan = None
    if metric == MANHATTAN:
        manhattan = np.empty(data.shape[1]), np.empty(data.shape[1])
    _rerank(dots, cb_sq, tolerance, data, codebook, k, metric, out_index, out_distance, manhattan)


@njit(cache=True)
def _rerank(dots, cb_sq, tolerance, data, codebook, k, metric, out_index, out_distance,
            manhattan):  # fmt: skip
    """:func:`rerank`; ``manhattan`` is the scratch of the Manhattan bounds (the sample's
    float64 row and mask), None for other metrics: numba then compiles no Manhattan code (1.0-1.4
    s of a first call, benchmarks/RESULTS.md)."""
    n_cells = dots.shape[1]
    two = dots.dtype.type(2.0)
    minima = np.empty(-(-n_cells // SCORE_CHUNK), dtype=dots.dtype)
    for i in range(dots.shape[0]):
        row = dots[i]
        score_chunk_minima(row, cb_sq, minima)
        upper = np.inf
        if manhattan is not None:
            upper, threshold = _manhattan_bounds(
                row, cb_sq, minima, tolerance[i], data, i, codebook, k, *manhattan
            )
        else:
            first = second = np.inf
            for c in range(minima.size):
                m = minima[c]
                if m < second:
                    if m < first:
                        first, second = m, first
                    else:
                        second = m
            threshold = (first if k == 1 else second) + tolerance[i]
        best_d, second_d = np.inf, np.inf
        best_j, second_j = -1, -1
        for c in range(minima.size):
            if minima[c] > threshold:
                continue
            for j in range(c * SCORE_CHUNK, min((c + 1) * SCORE_CHUNK, n_cells)):
                if cb_sq[j] - two * row[j] > threshold:
                    continue
                if manhattan is not None:
                    limit = min(upper, best_d if k == 1 else second_d)
                    d = _bounded_manhattan(*manhattan, codebook, j, limit)
                else:
                    d = exact_distance(data, i, codebook, j, metric)
                if d < best_d:
                    second_d, second_j = best_d, best_j
                    best_d, best_j = d, j
                elif d < second_d:
                    second_d, second_j = d, j
        out_index[i, 0], out_distance[i, 0] = best_j, best_d
        if k == 2:
            out_index[i, 1], out_distance[i, 1] = second_j, second_d
