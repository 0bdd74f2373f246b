"""The CPU engine's pruned BMU search (``gpusom.cpu.search``) against the full product.

``gpusom._bmu_search.blocked_bmus`` is checked against brute force in ``test_analysis.py``; the
pruned search must give the same indices and distances, bit for bit, wherever it runs.
"""

import tracemalloc

import naive
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpusom import SOM, _bmu_search, _config
from gpusom._math import COSINE, EUCLIDEAN, MANHATTAN
from gpusom.cpu import search
from gpusom.cpu.kernels import rerank


def assert_equals_full_product(found, data, codebook, k, metric=EUCLIDEAN):
    """``found`` (index, distance) is ``blocked_bmus``'s result, bit for bit."""
    want = _bmu_search.blocked_bmus(data, codebook, k, np, rerank, metric)
    np.testing.assert_array_equal(found[0], want[0])
    np.testing.assert_array_equal(found[1], want[1])


def prune_always(patch, run_rows=4, block_bytes=None):
    """Thresholds that send every Euclidean search of complete data through the pruned
    products, however small, and never back to the full product."""
    patch.setattr(search, "MIN_CELLS", 1)
    patch.setattr(search, "MIN_WORK", 0)
    patch.setattr(search, "MIN_SAMPLES_PER_GROUP", 0)
    patch.setattr(search, "MAX_SHARE", np.inf)
    patch.setattr(search, "PROBE_SHARE", np.inf)
    patch.setattr(search, "RUN_ROWS", run_rows)
    if block_bytes is not None:
        patch.setattr(_config, "ANALYSIS_BLOCK_BYTES", block_bytes)


def count_calls(patch, owner, name):
    """Wrap ``owner.name`` so the returned list counts its calls."""
    calls = []
    original = getattr(owner, name)

    def counted(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    patch.setattr(owner, name, counted)
    return calls


def pruned_share(patch, data, codebook, k, metric=EUCLIDEAN):
    """The share of the full product the pruned search multiplies (maps of any size and
    searches of any work allowed to prune), its result checked against the full product."""
    patch.setattr(search, "MIN_CELLS", 1)
    patch.setattr(search, "MIN_WORK", 0)
    products = count_calls(patch, search, "rerank")
    found = search.find_bmus(data, codebook, k, metric)
    share = sum(call[0].size for call in products) / (len(data) * len(codebook))
    assert_equals_full_product(found, data, codebook, k, metric)
    return share


@st.composite
def clustered_case(draw):
    """Samples and cells around the same few centres: groups of cells then prune; some cells
    may be far from every centre. Integer values give exact ties, an offset of 100 tests the
    centring; centres around the origin point every way (cosine), and cells that are multiples
    of samples have cosine 1 to them up to rounding."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    dim = draw(st.integers(1, 5))
    centres = rng.random((draw(st.integers(1, 6)), dim)) * 10 - draw(st.sampled_from([0, 5]))
    spread = draw(st.sampled_from([0.0, 0.05, 0.5]))

    def around(n):
        points = centres[rng.integers(len(centres), size=n)]
        return points + rng.normal(scale=spread, size=points.shape)

    data, cells = around(draw(st.integers(1, 80))), around(draw(st.integers(2, 120)))
    if draw(st.booleans()):
        # cells far from the data, as a map leaves between clusters or never moves
        step = draw(st.integers(2, 8))
        cells[::step] = rng.random(cells[::step].shape) * 40 - 20
    if draw(st.booleans()):
        data, cells = np.round(data), np.round(cells)
    if draw(st.booleans()):
        parallel = min(len(data), len(cells))
        cells[:parallel] = data[:parallel] * rng.uniform(0.5, 2.0, (parallel, 1))
    offset = draw(st.sampled_from([0.0, 100.0]))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    # float64 products from 1e18 on; the pivots' seeding must neither overflow nor underflow
    scale = draw(st.sampled_from([1.0, 1e-150, 1e30, 1e150])) if dtype == np.float64 else 1.0
    return ((data + offset) * scale).astype(dtype), ((cells + offset) * scale).astype(dtype)


@given(
    clustered_case(),
    st.sampled_from([1, 2]),
    st.sampled_from([EUCLIDEAN, COSINE]),
    st.sampled_from([1, 3, 50]),
    st.sampled_from([None, 2048]),
)
@settings(max_examples=400, deadline=None)
def test_pruned_search_equals_the_full_product(case, k, metric, run_rows, block_bytes):
    data, codebook = case
    with pytest.MonkeyPatch.context() as patch:
        prune_always(patch, run_rows, block_bytes)
        searched = count_calls(patch, search._CellGroups, "search")
        found = search.find_bmus(data, codebook, k, metric)
    # A zero vector has no direction, and squared norms beyond 1e+-150 make the float64 cosines
    # underflow or overflow: cosine searches with either take the full product.
    squares = [(a.astype(np.float64) ** 2).sum(axis=1) for a in (data, codebook)]
    in_range = all(((sq >= 1e-150) & (sq <= 1e150)).all() for sq in squares)
    assert bool(searched) == (metric == EUCLIDEAN or in_range), "pruned where it should not, or not"
    assert_equals_full_product(found, data, codebook, k, metric)


@given(
    clustered_case(),
    st.sampled_from([1, 2]),
    st.sampled_from([0.0, 0.3]),
    st.sampled_from([None, 2048]),
    st.integers(0, 2**32 - 1),
)
@settings(max_examples=300, deadline=None)
def test_manhattan_search_equals_the_full_rerank(case, k, missing, block_bytes, seed):
    """Manhattan distances bounded by Euclidean scores: the indices and distances of the
    re-rank without scores (every cell a candidate), bit for bit, with ties, offsets, tiny and
    huge values, missing values and one cell."""
    data, codebook = case
    if k == 2 and len(codebook) < 2:
        codebook = np.concatenate([codebook, codebook])
    if missing:
        data = data.copy()
        data[np.random.default_rng(seed).random(data.shape) < missing] = np.nan
        data[np.isnan(data).all(axis=1), 0] = 1.0
    with pytest.MonkeyPatch.context() as patch:
        if block_bytes is not None:
            patch.setattr(_config, "ANALYSIS_BLOCK_BYTES", block_bytes)
        found = search.find_bmus(data, codebook, k, MANHATTAN)
        assert_equals_full_product(found, data, codebook, k, MANHATTAN)


def test_manhattan_search_on_a_clustered_map_equals_brute_force():
    """Where the Euclidean bound leaves about a sample's own cluster: the two nearest cells
    by numpy's sums of absolute differences."""
    rng = np.random.default_rng(3)
    centres = rng.random((10, 16)) * 4
    data = centres[rng.integers(10, size=500)] + rng.normal(scale=0.05, size=(500, 16))
    codebook = centres[rng.integers(10, size=2000)] + rng.normal(scale=0.05, size=(2000, 16))
    index, distance = search.find_bmus(data, codebook, 2, MANHATTAN)
    l1 = np.abs(data[:, None, :] - codebook[None]).sum(axis=2)
    np.testing.assert_array_equal(index, np.argsort(l1, axis=1, kind="stable")[:, :2])
    np.testing.assert_allclose(distance, np.sort(l1, axis=1)[:, :2], rtol=1e-12)


def test_pruned_search_breaks_ties_to_the_lowest_index(monkeypatch):
    # Every cell is one of four points, each many times over: every sample has exact ties.
    rng = np.random.default_rng(0)
    codebook = np.repeat(np.eye(4), 25, axis=0)[rng.permutation(100)]
    data = np.eye(4)[rng.integers(4, size=40)] + rng.integers(0, 2, (40, 4))
    prune_always(monkeypatch)
    index, distance = search.find_bmus(data, codebook, 2, EUCLIDEAN)
    d2 = naive.all_distances_sq(data, codebook)
    order = np.argsort(d2, axis=1, kind="stable")[:, :2]
    np.testing.assert_array_equal(index, order)
    np.testing.assert_array_equal(distance, np.take_along_axis(d2, order, axis=1))


def test_pruned_search_multiplies_a_small_share_of_a_trained_map(monkeypatch):
    centres = np.random.default_rng(1).random((6, 8))
    rng = np.random.default_rng(2)
    data = centres[rng.integers(6, size=3000)] + rng.normal(scale=0.03, size=(3000, 8))
    lattice = SOM((40, 40), seed=0, verbose=False, backend="cpu").train(data, 20_000)
    assert pruned_share(monkeypatch, data, lattice.reshape(-1, 8), 1) < 0.25


@pytest.mark.parametrize("metric", [EUCLIDEAN, COSINE])
def test_pruned_search_prunes_an_unordered_codebook_of_clusters(monkeypatch, metric):
    # 20 clusters of 50 cells in random order, 24 groups: uniform pivots would leave about five
    # clusters without one, merged into another's group; the spread pivots cover them all.
    # Centres around the origin differ in direction too (cosine).
    rng = np.random.default_rng(8)
    centres = rng.normal(size=(20, 16))
    codebook = centres[rng.permutation(np.repeat(np.arange(20), 50))]
    codebook = codebook + rng.normal(scale=0.03, size=codebook.shape)
    data = centres[rng.integers(20, size=2000)] + rng.normal(scale=0.03, size=(2000, 16))
    assert pruned_share(monkeypatch, data, codebook, 1, metric) < 0.15


def test_samples_spread_over_an_unordered_map_take_the_full_product(monkeypatch):
    rng = np.random.default_rng(3)
    data, codebook = rng.random((2000, 8)), rng.random((900, 8))
    monkeypatch.setattr(search, "MIN_CELLS", 1)
    monkeypatch.setattr(search, "MIN_WORK", 0)
    searched = count_calls(monkeypatch, search._CellGroups, "search")
    found = search.find_bmus(data, codebook, 1, EUCLIDEAN)
    assert not searched
    assert_equals_full_product(found, data, codebook, 1)


def test_blocks_over_the_share_fall_back_to_the_full_product(monkeypatch):
    rng = np.random.default_rng(4)
    data, codebook = rng.random((500, 3)), rng.random((300, 3))
    prune_always(monkeypatch, block_bytes=8 * 40 * 60)
    monkeypatch.setattr(search, "MAX_SHARE", 1e-9)
    full = count_calls(monkeypatch, search, "blocked_bmus")
    found = search.find_bmus(data, codebook, 2, EUCLIDEAN)
    assert len(full) > 1  # block by block
    assert_equals_full_product(found, data, codebook, 2)


@pytest.mark.parametrize("metric", [MANHATTAN, "missing", "few samples", "zero vector"])
def test_manhattan_missing_values_few_samples_and_zero_vectors_take_the_full_product(
    monkeypatch, metric
):
    rng = np.random.default_rng(5)
    data, codebook = rng.random((50, 3)), rng.random((40, 3))
    prune_always(monkeypatch)
    if metric == "missing":
        data[3, 1] = np.nan
    if metric == "zero vector":  # for cosine distances
        codebook[7] = 0.0
        metric = COSINE
    if metric == "few samples":  # 50 samples, 5 groups: forming them would cost a tenth
        monkeypatch.setattr(search, "MIN_SAMPLES_PER_GROUP", 11)
    if not isinstance(metric, int):
        metric = EUCLIDEAN
    groups = count_calls(monkeypatch, search, "_CellGroups")
    found = search.find_bmus(data, codebook, 1, metric)
    assert not groups
    assert_equals_full_product(found, data, codebook, 1, metric)


def test_the_memory_estimate_covers_the_pruned_search(monkeypatch):
    centres = np.random.default_rng(6).random((8, 16))
    rng = np.random.default_rng(7)
    data = centres[rng.integers(8, size=4000)] + rng.normal(scale=0.05, size=(4000, 16))
    codebook = centres[rng.integers(8, size=6000)] + rng.normal(scale=0.05, size=(6000, 16))
    data, codebook = data.astype(np.float32), codebook.astype(np.float32)
    monkeypatch.setattr(search, "MIN_WORK", 0)
    monkeypatch.setattr(_config, "ANALYSIS_BLOCK_BYTES", 1 << 20)
    searched = count_calls(monkeypatch, search._CellGroups, "search")
    search.find_bmus(data, codebook, 1, EUCLIDEAN)  # compiled outside the measurement
    tracemalloc.start()
    try:
        search.find_bmus(data, codebook, 1, EUCLIDEAN)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert searched
    assert peak <= _bmu_search.search_bytes(4000, 6000, 16, 1)


def test_bounds_allow_for_the_rounding_of_the_products():
    # One sample, one group: a computed squared distance to a centre may be off by up to the
    # tolerance (0.5 here) either way; no bound may then exclude a cell that can be the BMU.
    one = np.ones(1)
    tolerance, x_sq, upper_reach = 0.5 * one, 0 * one, one
    # True distance 4 to the centre, computed 0.4 low: the group's nearest cell (reach 1) is
    # within 4 + 1 = 5.
    upper, nearest = np.empty(1), np.empty(1, dtype=np.int64)
    search.group_bounds(np.array([[0.2]]), 16 * one, x_sq, tolerance, upper_reach, upper, nearest)
    assert upper[0] >= 5
    # True distance 6 to the centre and upper 5: cells of reach 1 and 11 may be at 5. Computed
    # 0.4 high, the first is at the low end of the range kept; computed 0.4 low, the second at
    # the high end.
    reach, firsts = np.array([0.5, 1.0, 11.0, 11.5]), np.array([0, 4])
    kept = []
    for dot in (-0.2, 0.2):
        first, last = np.empty((1, 1), dtype=np.int64), np.empty((1, 1), dtype=np.int64)
        search.kept_ranges(np.array([[dot]]), 36 * one, x_sq, tolerance, 5 * one,
                           np.zeros(1, dtype=np.int64), np.array([0, 1]), reach, firsts, first,
                           last)  # fmt: skip
        kept.append(set(reach[first[0, 0] : last[0, 0]]))
    assert {1.0, 11.0} <= kept[0] | kept[1]
    assert 1.0 in kept[0] and 11.0 in kept[1]
    assert 0.5 not in kept[0] and 11.5 not in kept[1]


def test_cells_far_from_the_data_leave_the_rest_of_their_group_pruned(monkeypatch):
    # Clusters of cells, and one cell in ten far from every cluster (as a map leaves between
    # clusters or never moves): each far cell joins some group and widens its radius, but its
    # reach is far from that of the cells a sample can have as its best.
    rng = np.random.default_rng(9)
    centres = rng.random((10, 16))
    codebook = centres[rng.integers(10, size=2000)] + rng.normal(scale=0.03, size=(2000, 16))
    codebook[::10] = rng.random((200, 16)) * 6 - 3
    data = centres[rng.integers(10, size=3000)] + rng.normal(scale=0.03, size=(3000, 16))
    assert pruned_share(monkeypatch, data, codebook, 2) < 0.2


@given(
    values=st.lists(st.integers(-5, 5), max_size=20),
    value=st.integers(-6, 6),
    inclusive=st.booleans(),
)
@settings(max_examples=200, deadline=None)
def test_count_below_is_numpys_searchsorted(values, value, inclusive):
    """The reach ranges' binary search counts as ``np.searchsorted`` does, duplicates and values
    equal to an element included."""
    values = np.sort(np.array(values, dtype=np.float64)) * 0.5
    side = "right" if inclusive else "left"
    assert search.count_below(values, value * 0.5, inclusive) == np.searchsorted(
        values, value * 0.5, side
    )


@given(
    ranges=st.lists(st.tuples(st.integers(0, 12), st.integers(0, 6)), max_size=8),
    seed=st.integers(0, 2**16),
)
@settings(max_examples=200, deadline=None)
def test_kept_cells_concatenates_the_groups_ranges(ranges, seed):
    """The kept cells are ``by_reach[first[g]:last[g]]`` group after group, empty ranges and
    empty runs included."""
    by_reach = np.random.default_rng(seed).permutation(20).astype(np.int64)
    first = np.array([start for start, _ in ranges], dtype=np.int64)
    last = np.array([start + length for start, length in ranges], dtype=np.int64)
    want = [by_reach[start : start + length] for start, length in ranges]
    cells = search.kept_cells(by_reach, first, last)
    assert cells.dtype == np.int64
    np.testing.assert_array_equal(cells, np.concatenate([np.empty(0, np.int64), *want]))


@pytest.mark.parametrize("metric", [EUCLIDEAN, COSINE, MANHATTAN])
@pytest.mark.parametrize("dtypes", ["mixed", "swapped", "float32"])
def test_small_float32_inputs_meet_the_rerank_as_float64(monkeypatch, metric, dtypes):
    """float64 samples on a float32 map (or the roles swapped, as the closest vectors search
    them, or both float32, as the closing step's) reach the compiled re-rank as float64, with
    the BMUs and distances of the search in the given dtypes, bit for bit."""
    from gpusom.cpu import kernels

    rng = np.random.default_rng(3)
    data, codebook = rng.random((300, 6)), rng.random((40, 6)).astype(np.float32)
    if dtypes == "swapped":
        data, codebook = codebook, data
    elif dtypes == "float32":
        data = data.astype(np.float32)
    want = _bmu_search.blocked_bmus(data, codebook, 2, np, rerank, metric)
    seen = []
    wrapped = kernels._rerank

    def spy(dots, cb_sq, tolerance, chunk, cells, *rest):
        seen.append((chunk.dtype, cells.dtype))
        return wrapped(dots, cb_sq, tolerance, chunk, cells, *rest)

    monkeypatch.setattr(kernels, "_rerank", spy)
    found = search.find_bmus(data, codebook, 2, metric)
    assert seen and all(pair == (np.float64, np.float64) for pair in seen)
    np.testing.assert_array_equal(found[0], want[0])
    np.testing.assert_array_equal(found[1], want[1])
