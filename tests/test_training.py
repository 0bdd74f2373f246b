"""Online training against the plain-numpy oracle, and the properties of the contract."""

import functools
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from unittest import mock

import naive
import numpy as np
import pytest
from conftest import TOLERANCES
from engines import train_with
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

import gpusom
from gpusom import SOM, _backend, _training, schedules
from gpusom._math import METRICS, NEIGHBORHOODS, TOPOLOGIES
from gpusom.schedules import INITS, exponential_decay, initial_codebook, sample_order

METRIC_NAMES = sorted(METRICS)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("is_torus", [False, True])
@pytest.mark.parametrize("neighborhood", sorted(NEIGHBORHOODS))
@pytest.mark.parametrize(
    ("rows", "cols", "dim", "sigma"),
    [(6, 7, 3, 2.0), (1, 9, 2, 1.5), (5, 1, 5, 3.0), (4, 4, 16, 10.0), (3, 8, 64, 1.0)],
)
def test_engine_matches_oracle(engine, rng, dtype, is_torus, neighborhood, rows, cols, dim, sigma):
    steps = 24
    data = rng.normal(size=(40, dim))
    codebook = rng.normal(size=(rows * cols, dim)).astype(dtype)
    order = rng.integers(0, len(data), steps)
    sigmas = exponential_decay(sigma, 0.3, np.arange(steps), steps)
    lrs = exponential_decay(0.5, 0.05, np.arange(steps), steps)
    args = (order, sigmas, lrs, rows, cols, is_torus, neighborhood, 3.0)
    expected, expected_bmus = naive.online_som(codebook, data.astype(dtype), *args)
    got, bmus = train_with(engine, codebook, data.astype(dtype), *args)
    np.testing.assert_array_equal(bmus, expected_bmus)
    np.testing.assert_allclose(got, expected, **TOLERANCES[dtype])


@pytest.mark.parametrize("init", sorted(INITS))
@pytest.mark.parametrize("is_torus", [False, True])
def test_som_train_follows_contract(rng, init, is_torus):
    """SOM.train = initial codebook, host-side order and schedules, then the oracle's steps."""
    rows, cols, steps = 5, 6, 300
    data = rng.random((30, 4))
    som = SOM(
        (rows, cols),
        is_torus,
        sigma=2.5,
        sigma_end=0.4,
        learning_rate=0.4,
        learning_rate_end=0.02,
        init=init,
        dtype="float64",
        seed=7,
        verbose=False,
        backend="cpu",
        sigma_decay="exponential",
        finish="none",
    )
    lattice = som.train(data, steps)

    gen = np.random.default_rng(7)
    codebook = initial_codebook(data, rows * cols, cols, INITS[init], gen)
    order = sample_order(gen, len(data), steps)
    t = np.arange(steps)
    expected, _ = naive.online_som(
        codebook,
        data,
        order,
        exponential_decay(2.5, 0.4, t, steps),
        exponential_decay(0.4, 0.02, t, steps),
        rows,
        cols,
        is_torus,
        truncate=som.truncate,
    )
    assert lattice.shape == (rows, cols, 4)
    assert som.lattice is som.lattice_
    assert som.backend_ == "cpu"
    np.testing.assert_allclose(lattice.reshape(-1, 4), expected, **TOLERANCES[np.float64])


@pytest.mark.parametrize("nan_policy", ["raise", "ignore"])
def test_som_train_with_the_closing_step_follows_contract(rng, nan_policy):
    """finish="batch": the oracle's online steps, then its closing step at the radius of the
    last step (here from a callable decay)."""
    rows, cols, steps = 5, 6, 300
    data = rng.random((30, 4))
    if nan_policy == "ignore":
        data[::4, 1] = np.nan
    som = SOM((rows, cols), sigma=2.5, sigma_end=0.4, learning_rate=0.4, learning_rate_end=0.005,
              learning_rate_decay="linear", sigma_decay=lambda t, total: 2.0 - 1.5 * t / total,
              dtype="float64", seed=7, verbose=False, backend="cpu", finish="batch",
              nan_policy=nan_policy)  # fmt: skip
    lattice = som.train(data, steps)

    gen = np.random.default_rng(7)
    codebook = initial_codebook(data, rows * cols, cols, INITS["random"], gen)
    order = sample_order(gen, len(data), steps)
    t = np.arange(steps)
    online, _ = naive.online_som(codebook, data, order, 2.0 - 1.5 * t / steps,
                                 0.4 + (0.005 - 0.4) * t / (steps - 1), rows, cols, False,
                                 truncate=som.truncate)  # fmt: skip
    expected = naive.closing_step(online, data, 2.0 - 1.5 * (steps - 1) / steps, rows, cols,
                                  False, truncate=som.truncate)  # fmt: skip
    assert not np.allclose(expected, online)
    np.testing.assert_allclose(lattice.reshape(-1, 4), expected, **TOLERANCES[np.float64])


def test_batch_runs_ignore_the_closing_step(rng):
    data = rng.random((60, 3))
    options = {"algorithm": "batch", "num_iterations": 5, "seed": 1, "verbose": False}
    plain = SOM((4, 5), finish="none", **options).fit(data)
    closed = SOM((4, 5), finish="batch", **options).fit(data)
    np.testing.assert_array_equal(closed.lattice_, plain.lattice_)


def test_closing_step_runs_on_the_cpu_where_the_engine_has_no_array_module(rng):
    """A GPU run without cupy (online training needs numba-cuda alone) still gets its step."""

    class NoArrays:
        name = "cuda"

        @property
        def xp(self):
            raise gpusom.BackendUnavailableError("GPU arrays need cupy")

    data, codebook = rng.random((40, 3)), rng.random((20, 3))
    settings = schedules.settings(SOM((4, 5), finish="batch").get_params(), len(data))
    cpu = _backend.cpu_engine()
    expected = _training.closing_step(cpu, codebook, data, settings, 100)
    got = _training.closing_step(NoArrays(), codebook, data, settings, 100)
    assert not np.allclose(expected, codebook)
    np.testing.assert_array_equal(got, expected)


def test_long_runs_are_sliced_without_changing_the_result(rng, monkeypatch):
    data = rng.random((20, 3))
    whole = SOM((4, 5), seed=3, verbose=False).train(data, 500)
    # Slices are sized by time in real runs: odd sizes too must draw the same sample order.
    monkeypatch.setattr(gpusom._config, "FIRST_SLICE_STEPS", 13)
    monkeypatch.setattr(gpusom._config, "STEPS_PER_SLICE", 37)
    sliced = SOM((4, 5), seed=3, verbose=False).train(data, 500)
    # Each slice draws its order from the same generator in sequence, so slicing is invisible.
    np.testing.assert_array_equal(whole, sliced)


def test_same_seed_same_lattice_and_different_seed_differs(rng):
    data = rng.random((50, 3))
    first = SOM((6, 6), seed=11, verbose=False).train(data, 2000)
    again = SOM((6, 6), seed=11, verbose=False).train(data, 2000)
    other = SOM((6, 6), seed=12, verbose=False).train(data, 2000)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


@pytest.mark.parametrize("is_torus", [False, True])
def test_zero_learning_rate_changes_nothing(engine, rng, is_torus):
    data = rng.random((10, 3))
    codebook = rng.random((12, 3)).astype(np.float32)
    steps = 50
    got, _ = train_with(
        engine,
        codebook,
        data.astype(np.float32),
        rng.integers(0, 10, steps),
        np.full(steps, 5.0),
        np.zeros(steps),
        3,
        4,
        is_torus,
        "gaussian",
        3.0,
    )
    np.testing.assert_array_equal(got, codebook)


@given(
    rows=st.integers(1, 7),
    cols=st.integers(1, 7),
    bmu_seed=st.integers(0, 10_000),
    sigma=st.floats(0.2, 20.0),
    truncate=st.floats(0.5, 4.0),
)
@settings(max_examples=60, deadline=None)
def test_torus_window_wraps_and_updates_each_cell_once(rows, cols, bmu_seed, sigma, truncate):
    """One step with lr = 1 sets w_n = h * x for w = 0: the weight each cell got, exactly once."""
    n_cells = rows * cols
    codebook = np.zeros((n_cells, 1))
    bmu = bmu_seed % n_cells
    codebook[bmu] = -1.0  # the only cell close to x = -1, so it is the BMU
    data = np.array([[-1.0]])
    got, bmus = train_with(
        _backend.cpu_engine(),
        codebook,
        data,
        np.zeros(1, np.int64),
        np.array([sigma]),
        np.ones(1),
        rows,
        cols,
        True,
        "gaussian",
        truncate,
    )
    assert bmus[0] == bmu
    d2 = naive.grid_distance_sq(rows, cols, bmu, True)
    weight = np.where(d2 <= (truncate * sigma) ** 2, np.exp(-d2 / (2 * sigma**2)), 0.0)
    expected = -weight  # w_n = 0 + h * (x - 0); the BMU has h = 1 and stays at -1
    np.testing.assert_allclose(got[:, 0], expected, rtol=1e-12, atol=1e-15)


def test_torus_neighbourhood_reaches_across_the_edge(engine):
    rows, cols = 4, 6
    codebook = np.zeros((rows * cols, 1))
    codebook[0] = -1.0  # BMU in the corner
    common = (np.zeros(1, np.int64), np.ones(1), np.ones(1), rows, cols)
    plane, _ = train_with(engine, codebook, np.array([[-1.0]]), *common, False, "gaussian", 3.0)
    torus, _ = train_with(engine, codebook, np.array([[-1.0]]), *common, True, "gaussian", 3.0)
    far_corner = (rows - 1) * cols + (cols - 1)  # one diagonal step away on the torus
    assert torus[far_corner, 0] == pytest.approx(-np.exp(-1.0))
    assert plane[far_corner, 0] == 0.0  # 5.8 cells away on the plane: outside the window


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dtype_is_kept_end_to_end(rng, dtype):
    lattice = SOM((3, 4), dtype=dtype, seed=0, verbose=False).train(rng.random((10, 2)), 100)
    assert lattice.dtype == np.dtype(dtype)
    assert gpusom.u_matrix(lattice).shape == (3, 4)


def test_init_random_stays_within_feature_ranges(rng):
    data = rng.random((40, 3)) * [1, 10, 100] - [0, 5, 50]
    codebook = initial_codebook(data, 500, 25, INITS["random"], np.random.default_rng(0))
    assert (codebook >= data.min(axis=0)).all()
    assert (codebook <= data.max(axis=0)).all()


def test_init_pca_spans_the_principal_plane(rng):
    # Data on a line along (1, 1, 0): the grid must lie on that line through the mean.
    t = rng.normal(size=200)
    data = np.stack([t, t, np.zeros_like(t)], axis=1) + [1.0, 2.0, 3.0]
    codebook = initial_codebook(data, 20, 4, INITS["pca"], None)
    centred = codebook - data.mean(axis=0)
    np.testing.assert_allclose(centred[:, 0], centred[:, 1], atol=1e-9)
    np.testing.assert_allclose(centred[:, 2], 0.0, atol=1e-9)
    assert np.ptp(centred[:, 0]) == pytest.approx(4 * t.std(ddof=1), rel=1e-6)


def test_init_sample_uses_training_vectors(rng):
    data = rng.random((15, 2))
    codebook = initial_codebook(data, 30, 5, INITS["sample"], np.random.default_rng(1))
    assert all((np.all(row == data, axis=1)).any() for row in codebook)


def test_normalize_scales_features_and_keeps_callers_data(rng):
    data = rng.random((30, 3)) * [1.0, 100.0, 0.0] + [0.0, -50.0, 7.0]
    before = data.copy()
    lattice = SOM((4, 4), seed=0, verbose=False).train(data, 3000, normalize=True)
    np.testing.assert_array_equal(data, before)
    assert lattice.min() >= 0.0 and lattice.max() <= 1.0
    np.testing.assert_array_equal(lattice[..., 2], 0.0)  # the constant feature


def test_verbose_prints_the_timing_lines_and_quiet_prints_nothing(rng, capsys):
    data = rng.random((10, 3))
    SOM((3, 3), seed=0).train(data, 10, normalize=True)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" took:")[0] for line in lines] == ["Data scaling", "SOM training"]
    assert all(line.endswith(" seconds.") for line in lines)
    SOM((3, 3), seed=0, verbose=False).train(data, 10, normalize=True)
    assert capsys.readouterr().out == ""


def test_training_orders_the_map_and_reduces_quantization_error(rng):
    data = rng.random((200, 3))
    som = SOM((10, 10), seed=0, verbose=False)
    initial = initial_codebook(data, 100, 10, INITS["random"], np.random.default_rng(0))
    lattice = som.train(data, 5000)
    initial = initial.reshape(10, 10, 3)
    # The defaults keep neighbours apart rather than on single samples, so the fit is judged
    # against one cell at the mean of the data, not against the unordered random codebook.
    one_cell = data.mean(axis=0).reshape(1, 1, 3)
    assert gpusom.quantization_error(data, lattice) < 0.5 * gpusom.quantization_error(
        data, one_cell
    )
    assert gpusom.topographic_error(data, initial) > 0.5  # a random codebook has no order
    assert gpusom.topographic_error(data, lattice) < 0.1


@pytest.mark.parametrize("n_samples", [1, 30, 10_000])
def test_default_schedules_end_near_one_cell_and_a_small_rate(n_samples):
    """Online: a final radius of 0.86 cells and the closing step; batch: a final radius of 1."""
    settings = schedules.settings(SOM((10, 10)).get_params(), n_samples)
    expected = {"sigma": 2.5, "sigma_end": 0.86, "learning_rate": 0.5, "learning_rate_end": 0.0045}
    assert {name: settings[name] for name in expected} == expected
    assert (settings["sigma_decay"], settings["learning_rate_decay"]) == ("inverse", "exponential")
    assert settings["finish"] == "batch"
    batch = schedules.settings(SOM((10, 10), algorithm="batch").get_params(), n_samples)
    assert batch["sigma_end"] == 1.0
    # never a growing radius, whatever the map size
    assert schedules.settings(SOM((1, 1)).get_params(), n_samples)["sigma_end"] == 0.25


def test_the_defaults_give_smooth_maps_and_the_qe_first_settings_do_not():
    """The walk-through: no flat tiles of cells collapsed onto one sample with the defaults;
    the documented QE-first settings bring the tiles back (and a lower QE)."""
    data = np.random.default_rng(0).random((200, 3))

    def flat_share_and_qe(**settings):
        som = SOM((50, 100), seed=0, verbose=False, backend="cpu", **settings)
        lattice = som.train(data, 15_000)
        pairs = np.concatenate(
            [
                np.linalg.norm(np.diff(lattice, axis=0), axis=2).ravel(),
                np.linalg.norm(np.diff(lattice, axis=1), axis=2).ravel(),
            ]
        )
        return np.mean(pairs < 1e-3), som.quantization_error(data)

    smooth, fit = flat_share_and_qe()
    # 200 samples on 5,000 cells: the QE-first settings for fewer samples than cells
    tiles, qe_first = flat_share_and_qe(
        finish="none", sigma_decay="exponential", sigma_end=0.3, learning_rate_end=0.2
    )
    assert smooth <= 0.01 < 0.05 < tiles
    assert qe_first < fit


def test_partial_distance_search_is_exact_on_clustered_data(engine, rng):
    """Wide data takes the pruned search; clusters make most cells prunable, ties included."""
    rows, cols, dim, steps = 8, 9, 48, 400
    centres = rng.random((5, dim))
    data = centres[rng.integers(0, 5, 200)] + rng.normal(scale=0.05, size=(200, dim))
    codebook = data[rng.integers(0, 200, rows * cols)].astype(np.float32)
    codebook[7] = codebook[3]  # an exact tie: the lower index must win
    order = rng.integers(0, len(data), steps)
    t = np.arange(steps)
    args = (order, exponential_decay(3.0, 0.5, t, steps), exponential_decay(0.3, 0.02, t, steps))
    args += (rows, cols, False, "gaussian", 2.0)
    expected, expected_bmus = naive.online_som(codebook, data.astype(np.float32), *args)
    got, bmus = train_with(engine, codebook, data.astype(np.float32), *args)
    np.testing.assert_array_equal(bmus, expected_bmus)
    np.testing.assert_allclose(got, expected, **TOLERANCES[np.float32])


def test_init_pca_keeps_constant_features_exactly(rng):
    data = np.column_stack(
        [rng.normal(size=50), np.zeros(50), rng.normal(size=50), np.full(50, 3.0)]
    )
    codebook = initial_codebook(data, 12, 4, INITS["pca"], None)
    np.testing.assert_array_equal(codebook[:, 1], 0.0)
    np.testing.assert_array_equal(codebook[:, 3], 3.0)
    assert np.ptp(codebook[:, 0]) > 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("dim", [1, 2, 3, 4, 5, 7, 8, 9, 31])
@pytest.mark.parametrize("n_cells", [1, 255, 256, 700])
def test_cpu_nearest_cell_is_the_lowest_index_argmin(dtype, dim, n_cells):
    """The CPU kernel's small-map search (chunk minima, then the first chunk with the smallest
    computed again) against the argmin of the whole map's distances, ties across and within
    chunks (of SEARCH_CHUNK cells) included. It compiles for the head's rows, a constant
    (``head_rows``: 1-4, 8 as itself for the boxed search, or 5 for more)."""
    from numba import typeof, types

    from gpusom.cpu.kernels import SEARCH_CHUNK, head_rows, nearest_cell, squared_distances

    rows = head_rows(dim)
    assert rows == (8 if dim == 8 else min(dim, 5))
    assert typeof(rows) == types.IntegerLiteral(int(rows))
    search = njit(lambda head, x, out, rows: nearest_cell(head, x, out, rows))  # the overload

    def nearest(head, x, out):
        return search(head, x, out, rows)

    rng = np.random.default_rng(dim)
    head = rng.random((dim, n_cells)).astype(dtype)
    last = n_cells - 1
    ties = sorted({min(7, last), min(SEARCH_CHUNK - 1, last), min(SEARCH_CHUNK + 3, last), last})
    head[:, ties] = head[:, [ties[-1]]]  # equal cells in one chunk and the next: the first wins
    expected, out = np.empty(n_cells, dtype), np.empty(n_cells, dtype)
    samples = [head[:, ties[-1]].copy(), rng.random(dim).astype(dtype)]
    samples += [head[:, n].copy() for n in rng.integers(0, n_cells, 5)]
    for x in samples:
        squared_distances(head, x, expected)
        np.testing.assert_allclose(expected, ((head - x[:, None]) ** 2).sum(axis=0), rtol=1e-5)
        assert nearest(head, x, out) == int(np.argmin(expected))
    assert nearest(head, head[:, ties[-1]].copy(), out) == ties[0]


@functools.cache
def _jitted_argmins():
    """``argmin_first`` (the jitted overload) and ``first_index_of``, compiled once."""
    from gpusom.cpu.kernels import argmin_first, first_index_of

    return njit(lambda values: argmin_first(values)), njit(
        lambda values, value: first_index_of(values, value)
    )


@settings(max_examples=200, deadline=None)
@given(
    dtype=st.sampled_from([np.float32, np.float64]),
    pool=st.lists(
        st.one_of(
            st.just(0.0),
            st.just(np.inf),
            st.floats(0, 1e-300),  # subnormals and float32's zero after the cast
            st.floats(0, 1e30),
        ),
        min_size=1,
        max_size=4,
    ),
    picks=st.lists(st.integers(0, 3), min_size=1, max_size=300),
)
def test_cpu_argmin_first_is_the_lowest_index_argmin(dtype, pool, picks):
    """The integer minimum of the bit patterns and its first index (few distinct values, so
    ties everywhere) against numpy's argmin, over every length around the vector widths."""
    argmin, first = _jitted_argmins()
    distances = np.array([pool[i % len(pool)] for i in picks], dtype)
    assert argmin(distances) == int(np.argmin(distances))
    bits = distances.view(np.int32 if dtype == np.float32 else np.int64)
    assert first(bits, bits[-1]) == int(np.flatnonzero(bits == bits[-1])[0])
    assert first(bits, -1) == bits.size


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows", [1, 2, 3, 4, 7, 8, 13, 31])
def test_cpu_chunk_distances_are_the_squared_distances_bit_for_bit(dtype, rows):
    """The boxed search's distances chunk by chunk (unsigned indices, no slices; the last chunk
    short) and the partial distance search's head pass (eight rows) sum as the whole map's
    pass does."""
    from gpusom.cpu.kernels import (
        cell_distances,
        eight_head_distances,
        head_distances,
        squared_distances,
    )

    rng = np.random.default_rng(rows)
    head = rng.normal(size=(rows, 257)).astype(dtype)
    x = rng.normal(size=rows + 5).astype(dtype)
    expected, got, chunked = np.empty(257, dtype), np.empty(257, dtype), np.empty(257, dtype)
    squared_distances(head, x, expected)
    for start in range(0, 257, 32):
        cell_distances(head, x, chunked, np.uint64(start), min(32, 257 - start))
    np.testing.assert_array_equal(chunked, expected)
    np.testing.assert_allclose(expected, ((head - x[:rows, None]) ** 2).sum(axis=0), rtol=1e-5)
    if rows == 8:  # the head of the partial distance search (PDS_HEAD_DIM)
        chunked[:] = np.nan
        for start in range(0, 257, 32):
            eight_head_distances(head, x, chunked, start, min(start + 32, 257))
        np.testing.assert_array_equal(chunked, expected)
        head_distances(head, x, got, 0, 257)
        np.testing.assert_array_equal(got, expected)


@settings(max_examples=300, deadline=None)
@given(
    n_cells=st.integers(1, 150),
    split_width=st.sampled_from([(8, 3), (8, 32), (1, 0), (3, 0), (4, 0), (6, 0), (8, 0), (31, 0)]),
    dtype=st.sampled_from([np.float32, np.float64]),
    seed=st.integers(0, 2**32 - 1),
    data=st.data(),
)
def test_cpu_pruned_argmin_is_the_lowest_index_argmin(n_cells, split_width, dtype, seed, data):
    """The BMU searches that skip cells: the partial distance search (a head of eight features
    and a tail) and the boxed search, which also skips chunks whose bounding box is farther than
    the best distance so far (with a tail, or over a head of every feature); any first guess and
    any boxes that hold (exact or loosened) give the lowest-index argmin."""
    from gpusom.cpu import kernels

    rng = np.random.default_rng(seed)
    head_rows, width = split_width
    dim = head_rows + width
    # Cells at one of a few centres, in runs (as on an ordered map), a few of their features
    # moved: tight boxes that skip chunks. Small integers: every sum is exact, so equal partial,
    # full and box distances (ties) are common and any order of the sums gives the same argmin.
    centres = rng.integers(0, 6, (4, dim))
    runs = np.sort(rng.integers(0, 4, n_cells))
    cells = (centres[runs] + (rng.random((n_cells, dim)) < 0.03)).astype(dtype)
    head, tail = np.ascontiguousarray(cells[:, :head_rows].T), cells[:, head_rows:].copy()
    x = (centres[rng.integers(0, 4)] + rng.integers(0, 2, dim)).astype(dtype)
    full = ((head.T - x[:head_rows]) ** 2).sum(axis=1) + ((tail - x[head_rows:]) ** 2).sum(axis=1)
    expected = int(np.argmin(full))
    with mock.patch.object(kernels, "boxes_pay", lambda n_cells, dim, itemsize, scanned: True):
        boxes = kernels.ChunkBoxes.where_they_pay(head, tail, dim)
    n_chunks = boxes.bounds.shape[2]
    assert n_chunks == -(-n_cells // 32)
    kernels.build_boxes(head, tail, boxes.bounds, boxes.scratch, boxes.state, boxes.unit)
    for c in range(n_chunks):
        chunk = cells[c * 32 : (c + 1) * 32]
        np.testing.assert_array_equal(boxes.bounds[0, :, c], chunk.min(axis=0))
        np.testing.assert_array_equal(boxes.bounds[1, :, c], chunk.max(axis=0))
    if data.draw(st.booleans()):  # boxes that still hold after growing
        boxes.bounds[0] -= rng.integers(0, 2, boxes.bounds[0].shape)
        boxes.bounds[1] += rng.integers(0, 2, boxes.bounds[1].shape)
    guess = data.draw(st.integers(-1, n_cells - 1))
    partial, gaps = np.empty(n_cells, dtype), np.empty(n_chunks, dtype)
    # a head of eight rows takes its own chunk distances (eight_rows True), or cell_distances
    eight_rows = True if head_rows == 8 and data.draw(st.booleans()) else None
    bmu, visited = kernels.boxed_argmin(
        head, tail, x, boxes.bounds, gaps, partial, guess, None, None, eight_rows
    )
    assert bmu == expected
    assert 1 <= visited <= n_chunks  # at least the chunk of the BMU
    if width:
        kernels.head_distances(head, x, partial, 0, n_cells)
        first = int(np.argmin(partial)) if guess < 0 else guess
        assert kernels.pruned_argmin(partial, tail, x[head_rows:], first, None, None) == expected


def direction_runs(rng, n_cells, dim, dtype, degenerate):
    """``(cells, centres)``: cells in runs of four small-integer directions ``centres`` at
    several lengths (equal and nearly equal distances and cosines), a few features moved; with
    ``degenerate``, a few cells zero and a few whose squared norms lie outside
    ``kernels.unit_norms_sq`` (where cosines are not resolved)."""
    from gpusom.cpu import kernels

    centres = rng.integers(-3, 4, (4, dim))
    runs = np.sort(rng.integers(0, 4, n_cells))
    lengths = rng.choice([1, 2, 3], n_cells)[:, None]  # multiples: cosines equal up to rounding
    cells = (centres[runs] * lengths + (rng.random((n_cells, dim)) < 0.05)).astype(dtype)
    if degenerate:
        low, high = kernels.unit_norms_sq(np.dtype(dtype))
        kind = rng.random(n_cells)
        cells[kind < 0.04] = 0.0
        cells[(0.04 <= kind) & (kind < 0.07)] *= dtype(np.sqrt(low) / 100)
        cells[(0.07 <= kind) & (kind < 0.1)] *= dtype(np.sqrt(high) * 100)
    return cells, centres


@settings(deadline=None)  # the first example compiles the kernels it calls
@given(
    n_cells=st.integers(1, 150),
    split_width=st.sampled_from([(8, 3), (8, 32), (1, 0), (3, 0), (8, 0), (31, 0)]),
    metric=st.sampled_from(METRIC_NAMES),
    dtype=st.sampled_from([np.float32, np.float64]),
    seed=st.integers(0, 2**32 - 1),
    data=st.data(),
)
def test_cpu_boxed_metric_argmin_is_the_full_scans_lowest_index_argmin(
    n_cells, split_width, metric, dtype, seed, data
):
    """The boxed search off the plain Euclidean path, and the partial distance search of sums
    over the present features, give the lowest-index argmin of the full scan, bit for bit:
    cells in runs of a few directions at several lengths (equal and nearly equal distances),
    any first guess, boxes that hold, exact or loosened; for cosine distances (boxes of unit
    vectors) zero cells and cells whose norms lie outside the range the boxes bound (their
    chunk's box takes in everything); for the others samples with missing features."""
    from gpusom.cpu import kernels

    rng = np.random.default_rng(seed)
    head_rows, width = split_width
    dim = head_rows + width
    code = METRICS[metric]
    cells, centres = direction_runs(rng, n_cells, dim, dtype, metric == "cosine")
    low, high = kernels.unit_norms_sq(np.dtype(dtype))
    head, tail = np.ascontiguousarray(cells[:, :head_rows].T), cells[:, head_rows:].copy()
    x = (centres[rng.integers(0, 4)] + rng.integers(0, 2, dim)).astype(dtype)
    x[0] += not x.any()
    present = np.ones(dim, dtype)
    if metric != "cosine" and data.draw(st.booleans()):  # missing features: x is 0 there
        present[rng.permutation(dim)[: rng.integers(0, dim)]] = 0.0
        x *= present
    # the cosine distances' scratch, None for the sums (kernels.chunk_distances)
    norms = np.empty(n_cells, dtype) if metric == "cosine" else None
    full = np.empty(n_cells, dtype)
    # the kernels compile for the metric, a constant (kernels.CompiledInt)
    kernels.metric_distances(head, tail, x, present, kernels.CompiledInt(code), norms, full)
    expected = int(np.argmin(full))
    with mock.patch.object(kernels, "boxes_pay", lambda n_cells, dim, itemsize, scanned: True):
        boxes = kernels.ChunkBoxes.where_they_pay(head, tail, dim, code)
    kernels.build_boxes(head, tail, boxes.bounds, boxes.scratch, boxes.state, boxes.unit)
    n_chunks = boxes.bounds.shape[2]
    bounded = np.ones(n_cells, bool)
    if metric == "cosine":
        norms_sq = (cells.astype(np.float64) ** 2).sum(axis=1)
        bounded = (norms_sq >= low) & (norms_sq <= high)
    for c in range(n_chunks):
        if not bounded[c * 32 : (c + 1) * 32].all():
            assert (boxes.bounds[0, :, c] == -np.inf).all()
            assert (boxes.bounds[1, :, c] == np.inf).all()
    assert_boxes_hold(boxes, np.where(bounded[:, None], cells, 1.0))
    if data.draw(st.booleans()):  # boxes that still hold after growing
        boxes.bounds[0] -= rng.random(boxes.bounds[0].shape) * 0.1
        boxes.bounds[1] += rng.random(boxes.bounds[1].shape) * 0.1
    guess = data.draw(st.integers(-1, n_cells - 1))
    x_box, norm_x = x, 0.0
    if metric == "cosine":
        x_box = np.empty(dim, dtype)
        assert kernels.unit_vector(x, dim, x_box)
        norm_x = kernels.sample_norm_sq(x)
    gaps, distances = np.empty(n_chunks, dtype), np.empty(n_cells, dtype)
    bmu, visited = kernels.boxed_metric_argmin(
        head, tail, x, x_box, norm_x, present, kernels.CompiledInt(code), boxes.bounds, gaps,
        distances, norms, guess,
    )  # fmt: skip
    assert bmu == expected
    assert 1 <= visited <= n_chunks  # at least the chunk of the BMU
    if metric != "cosine" and width:  # the partial distance search of a step without boxes
        manhattan = kernels.sums_marker(code)
        assert (manhattan is None) == (metric == "euclidean")
        kernels.head_sums(head, x, present, manhattan, distances, 0, n_cells)
        first = int(np.argmin(distances)) if guess < 0 else guess
        got = kernels.pruned_argmin(
            distances, tail, x[head_rows:], first, present[head_rows:], manhattan
        )
        assert got == expected


@settings(deadline=None)  # the first example compiles the kernels it calls
@given(
    n_cells=st.integers(1, 150),
    split_width=st.sampled_from([(8, 3), (8, 32), (1, 0), (3, 0), (8, 0), (31, 0)]),
    dtype=st.sampled_from([np.float32, np.float64]),
    seed=st.integers(0, 2**32 - 1),
    data=st.data(),
)
def test_cpu_pruned_cosine_argmin_is_the_full_scans_lowest_index_argmin(
    n_cells, split_width, dtype, seed, data
):
    """The cosine steps' bound (a head dot product, Cauchy-Schwarz on the tail, the cells'
    norms) skips chunks and gives the lowest-index argmin of the full scan, bit for bit: equal
    and nearly equal cosines, zero cells and cells of norms outside the bounded range (NaN
    terms: always computed), any first guess; the norms are the cells' own."""
    from gpusom.cpu import kernels

    rng = np.random.default_rng(seed)
    head_rows, width = split_width
    dim = head_rows + width
    cells, centres = direction_runs(rng, n_cells, dim, dtype, True)
    head, tail = np.ascontiguousarray(cells[:, :head_rows].T), cells[:, head_rows:].copy()
    x = (centres[rng.integers(0, 4)] + rng.integers(0, 2, dim)).astype(dtype)
    x[0] += not x.any()
    present = np.ones(dim, dtype)
    norms, full = np.empty(n_cells, dtype), np.empty(n_cells, dtype)
    kernels.metric_distances(
        head, tail, x, present, kernels.CompiledInt(METRICS["cosine"]), norms, full
    )
    cosine_norms = np.empty((2, n_cells), dtype)
    kernels.refresh_cosine_norms(head, tail, 0, n_cells, cosine_norms)
    norms_sq = (cells.astype(np.float64) ** 2).sum(axis=1)
    low, high = kernels.unit_norms_sq(np.dtype(dtype))
    bounded = (norms_sq >= low * (1 + 1e-6)) & (norms_sq <= high * (1 - 1e-6))
    assert np.isnan(cosine_norms[:, ~((norms_sq >= low) & (norms_sq <= high))]).all()
    np.testing.assert_allclose(cosine_norms[0, bounded], 1 / np.sqrt(norms_sq[bounded]), 1e-5)
    tail_norms = np.sqrt((tail.astype(np.float64) ** 2).sum(axis=1))
    np.testing.assert_allclose(cosine_norms[1, bounded], tail_norms[bounded], 1e-5, 1e-30)
    guess = data.draw(st.integers(-1, n_cells - 1))
    scores, distances = np.empty(n_cells, dtype), np.empty(n_cells, dtype)
    bmu, visited = kernels.pruned_cosine_argmin(
        head, tail, x, present, kernels.sample_norm_sq(x), cosine_norms, scores, distances,
        norms, guess,
    )  # fmt: skip
    assert bmu == int(np.argmin(full))
    assert 1 <= visited <= -(-n_cells // 32)


def test_cpu_cosine_bound_skips_chunks_of_other_directions(rng):
    """On a map whose chunks each hold one direction at many lengths, the cosine bound
    computes only the chunk of the sample's direction, with a head of eight features and a
    tail, or every feature in the head."""
    from gpusom.cpu import Codebook, kernels

    for dim in (40, 13):
        n_chunks = 30
        directions = rng.normal(size=(n_chunks, dim))
        lengths = rng.uniform(0.1, 10.0, (n_chunks * 32, 1))
        codebook = Codebook((np.repeat(directions, 32, axis=0) * lengths).astype(np.float32))
        head, tail = codebook.head, codebook.tail
        cosine_norms = codebook.cosine_norms(METRICS["cosine"])
        kernels.refresh_cosine_norms(head, tail, 0, n_chunks * 32, cosine_norms)
        x = np.zeros(head.shape[0] + tail.shape[1], np.float32)
        x[:dim] = 3.0 * directions[7] + rng.normal(scale=0.01, size=dim)
        present = (np.arange(x.size) < dim).astype(np.float32)
        scratch = np.empty((3, n_chunks * 32), np.float32)
        bmu, visited = kernels.pruned_cosine_argmin(
            head, tail, x, present, kernels.sample_norm_sq(x), cosine_norms, *scratch, -1
        )
        assert bmu // 32 == 7
        assert visited == 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    ("topology", "is_torus", "missing"),
    [("rectangular", False, False), ("rectangular", True, True), ("hexagonal", True, False)],
)
@pytest.mark.parametrize("dim", [40, 5])
def test_cpu_cosine_bound_changes_no_bmu_and_no_bit(
    monkeypatch, rng, dtype, topology, is_torus, missing, dim
):
    """Cosine training with the bound (its norms refreshed after every update; paused by its
    trial while samples of no direction leave it every chunk to compute, then resumed) gives
    the BMUs and the codebook of the full scan, bit for bit, on both lattices, the torus, and
    with samples with missing values (which take the full scan)."""
    from gpusom.cpu import Codebook, kernels

    rows, cols = 16, 16  # 8 chunks
    # First short samples spread every way: the bound computes every chunk, its trial pauses
    # it, and the cells shrink while it is paused. Then samples of six directions: the bound
    # serves again, from norms refreshed whole (kept ones would understate the scores).
    noise = rng.normal(scale=0.01, size=(100, dim))
    centres = rng.normal(size=(6, dim))
    clustered = centres[rng.integers(0, 6, 200)] + rng.normal(scale=0.05, size=(200, dim))
    data = np.concatenate([noise, clustered]).astype(dtype)
    if missing:
        data[rng.random(data.shape) < 0.01] = np.nan
    pause_end = kernels.COSINE_TRIAL_STEPS + kernels.COSINE_PAUSE_STEPS
    order = np.concatenate(
        [rng.integers(0, 100, pause_end), rng.integers(100, 300, 3 * kernels.COSINE_TRIAL_STEPS)]
    )
    steps = order.size
    lengths = rng.uniform(0.5, 2.0, (rows * cols, 1))
    codebook = (centres[np.sort(rng.integers(0, 6, rows * cols))] * lengths).astype(dtype)
    args = (order, exponential_decay(1.5, 1.0, np.arange(steps), steps), np.full(steps, 0.3))
    args += (rows, cols, is_torus, "gaussian", 2.0, topology, "cosine")
    engine = _backend.cpu_engine()
    bounded, bounded_bmus = train_with(engine, codebook, data, *args)
    monkeypatch.setattr(Codebook, "cosine_norms", lambda self, metric: None)
    full, full_bmus = train_with(engine, codebook, data, *args)
    np.testing.assert_array_equal(bounded_bmus, full_bmus)
    np.testing.assert_array_equal(bounded, full)


def test_cpu_unit_boxes_skip_chunks_of_other_directions(rng):
    """On a map whose chunks each hold one direction at many lengths (boxes of the cells
    themselves would be long and overlap), the cosine search visits only the chunk of the
    sample's direction."""
    from gpusom.cpu import kernels

    dim, n_chunks = 40, 30
    directions = rng.normal(size=(n_chunks, dim))
    lengths = rng.uniform(0.1, 10.0, (n_chunks * 32, 1))
    cells = (np.repeat(directions, 32, axis=0) * lengths).astype(np.float32)
    codebook, boxes = codebook_with_boxes(cells, "cosine")
    kernels.build_boxes(codebook.head, codebook.tail, *boxes.arrays())
    x = np.zeros(codebook.head.shape[0] + codebook.tail.shape[1], np.float32)
    x[:dim] = 3.0 * directions[7] + rng.normal(scale=0.01, size=dim)
    x_unit, present = np.empty(dim, np.float32), (np.arange(x.size) < dim).astype(np.float32)
    assert kernels.unit_vector(x, dim, x_unit)
    scratch = np.empty(n_chunks, np.float32), *np.empty((2, len(cells)), np.float32)
    bmu, visited = kernels.boxed_metric_argmin(
        codebook.head, codebook.tail, x, x_unit, kernels.sample_norm_sq(x), present,
        kernels.CompiledInt(METRICS["cosine"]), boxes.bounds, *scratch, -1,
    )  # fmt: skip
    assert bmu // 32 == 7
    assert visited == 1


def codebook_with_boxes(cells, metric):
    """The CPU engine's split codebook of ``cells`` and its boxes for ``metric``, whatever the
    map's size."""
    from gpusom.cpu import Codebook, kernels

    codebook = Codebook(cells)
    with mock.patch.object(kernels, "boxes_pay", lambda n_cells, dim, itemsize, scanned: True):
        return codebook, codebook.boxes_for(METRICS[metric])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    ("topology", "is_torus", "neighborhood", "learning_rate", "missing"),
    [
        ("rectangular", False, "gaussian", 0.9, False),
        ("rectangular", True, "bubble", 0.3, True),
        ("rectangular", False, "mexican_hat", 1.5, False),
        ("hexagonal", True, "gaussian", 0.3, False),
        ("hexagonal", False, "triangle", 0.3, True),
    ],
)
@pytest.mark.parametrize("dim", [40, 3, 13])  # a head and a tail; every feature in the head
@pytest.mark.parametrize("metric", METRIC_NAMES)
def test_cpu_chunk_boxes_change_no_bmu_and_no_bit(
    monkeypatch, rng, dtype, topology, is_torus, neighborhood, learning_rate, missing, dim, metric
):
    """Training with the chunks' bounding boxes (built, grown by every update, rebuilt; of the
    cells' unit vectors for cosine steps) gives the BMUs of the oracle and the codebook of the
    search without boxes, bit for bit: rates above 1 and the Mexican hat move cells away from
    the sample, missing values move some features (and take the plain search)."""
    from gpusom.cpu import kernels

    rows, cols, steps = 40, 40, 600  # 1,600 cells: 50 chunks, rebuilt every 200 steps
    centres = rng.normal(size=(6, dim))
    data = centres[rng.integers(0, 6, 300)] + rng.normal(scale=0.05, size=(300, dim))
    data = data.astype(dtype)
    if missing:
        data[rng.random(data.shape) < 0.01] = np.nan
    # cells of one cluster in runs, as on an ordered map: tight boxes that skip chunks
    runs = centres[np.sort(rng.integers(0, 6, rows * cols))]
    codebook = (runs + rng.normal(scale=0.02, size=runs.shape)).astype(dtype)
    order = rng.integers(0, len(data), steps)
    t = np.arange(steps)
    # Windows of radius 3 to 2.4 (bubble and triangle: 1.5 to 1.2), within 1/32 of the map from
    # the first step, so the boxes are built at once; a hexagonal one reaches 3 rows.
    args = (order, exponential_decay(1.5, 1.2, t, steps), np.full(steps, learning_rate))
    args += (rows, cols, is_torus, neighborhood, 2.0, topology)
    engine = _backend.cpu_engine()
    monkeypatch.setattr(kernels, "boxes_pay", lambda n_cells, dim, itemsize, scanned: False)
    plain, plain_bmus = train_with(engine, codebook, data, *args, metric)
    monkeypatch.setattr(kernels, "boxes_pay", lambda n_cells, dim, itemsize, scanned: True)
    state = engine.to_device(codebook, data)
    boxes = state[0].boxes_for(METRICS[metric])
    boxes.state[3] = 0  # visits cost nothing: no trial pauses the boxes
    nbh, lattice = NEIGHBORHOODS[neighborhood], TOPOLOGIES[topology]
    boxed_bmus = engine.train_online(*state, *args[:6], nbh, 2.0, lattice, METRICS[metric])
    boxed = engine.to_host(state[0], dim)
    np.testing.assert_array_equal(boxed_bmus, plain_bmus)
    np.testing.assert_array_equal(boxed, plain)
    assert boxes.state[0] == 1  # built, and after the last rebuild grown by every update:
    assert_boxes_hold(boxes, boxed)
    assert boxes.state[2] > 0
    if learning_rate < 1:  # moved towards the samples, the cells keep the boxes tight:
        assert boxes.state[2] < 199 * 50 / 2  # the search since the rebuild skipped chunks
    if metric == "cosine" and dtype == np.float32:
        return  # float32 resolves 1 - cos to ~dim eps: these nearly parallel cells tie there
    _, expected_bmus = naive.online_som(codebook, data, *args, metric)
    np.testing.assert_array_equal(boxed_bmus, expected_bmus)


def assert_boxes_hold(boxes, cells):
    """Every cell (its unit vector, with ``boxes.unit``) lies in its chunk's box: within the
    rounding of the unit vector's features (two roundings each, ``kernels._grow_boxes``)."""
    slack = 0.0
    if boxes.unit:
        cells = cells.astype(np.float64)
        cells = cells / np.linalg.norm(cells, axis=1, keepdims=True)
        slack = 2 * np.finfo(boxes.bounds.dtype).eps
    for c in range(boxes.bounds.shape[2]):
        chunk = cells[c * 32 : (c + 1) * 32]
        assert (boxes.bounds[0, :, c] <= chunk.min(axis=0) + slack).all()
        assert (boxes.bounds[1, :, c] >= chunk.max(axis=0) - slack).all()


@pytest.mark.parametrize("dim", [40, 13])
@pytest.mark.parametrize(("visit_cost", "mode"), [(0, 1), (10**9, 2)])
@pytest.mark.parametrize("metric", METRIC_NAMES)
def test_cpu_box_trial_pauses_boxes_that_do_not_prune(
    monkeypatch, rng, dim, visit_cost, mode, metric
):
    """After every build a trial counts the chunks the boxed search visits: where visiting them
    would cost more than a pass over the map, the boxes pause until the next rebuild (mode 2),
    and the run gives the plain search's BMUs and codebook, bit for bit."""
    from gpusom.cpu import kernels

    rows, cols, steps = 40, 40, 500  # rebuilt every 200 steps; trials of 16 steps
    data = rng.random((300, dim)).astype(np.float32)
    codebook = rng.random((rows * cols, dim)).astype(np.float32)
    order = rng.integers(0, len(data), steps)
    args = (order, np.full(steps, 1.2), np.full(steps, 0.3), rows, cols, False, "gaussian", 2.0)
    engine = _backend.cpu_engine()
    monkeypatch.setattr(kernels, "boxes_pay", lambda n_cells, dim, itemsize, scanned: False)
    plain, plain_bmus = train_with(engine, codebook, data, *args, "rectangular", metric)
    monkeypatch.setattr(kernels, "boxes_pay", lambda n_cells, dim, itemsize, scanned: True)
    state = engine.to_device(codebook, data)
    boxes = state[0].boxes_for(METRICS[metric])
    boxes.state[3] = visit_cost
    nbh = NEIGHBORHOODS["gaussian"]
    lattice = TOPOLOGIES["rectangular"]
    bmus = engine.train_online(*state, *args[:6], nbh, 2.0, lattice, METRICS[metric])
    np.testing.assert_array_equal(bmus, plain_bmus)
    np.testing.assert_array_equal(engine.to_host(state[0], dim), plain)
    assert boxes.state[0] == mode
    assert boxes.state[1] == steps - 401  # built after step 1, rebuilt after steps 201 and 401
    assert boxes.state[2] > 0  # the trial visited chunks


@settings(max_examples=60, deadline=None)
@given(
    rows=st.integers(2, 12).map(lambda r: 2 * r),  # even: a hexagonal torus needs it
    cols=st.integers(1, 20),
    sigma=st.floats(0.3, 6.0),
    neighborhood=st.sampled_from(sorted(NEIGHBORHOODS)),
    topology=st.sampled_from(sorted(TOPOLOGIES)),
    is_torus=st.booleans(),
    dim=st.sampled_from([40, 3]),
    unit=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_cpu_grown_boxes_hold_every_cell_an_update_moved(
    rows, cols, sigma, neighborhood, topology, is_torus, dim, unit, seed
):
    """refresh_window covers the whole window of update_window, on both lattices and tori,
    with a tail and with every feature in the head: it grows the boxes of the cells and of
    their unit vectors to hold them, and refreshes the cosine bound's norms to the cells'. With
    a rate of 1 every cell of the window jumps to a sample far outside every box."""
    from gpusom.cpu import kernels

    rng = np.random.default_rng(seed)
    n_cells = rows * cols
    cells = rng.random((n_cells, dim)).astype(np.float32)
    codebook, boxes = codebook_with_boxes(cells, "cosine" if unit else "euclidean")
    head, tail = codebook.head, codebook.tail
    kernels.build_boxes(head, tail, boxes.bounds, boxes.scratch, boxes.state, boxes.unit)
    x = np.zeros(head.shape[0] + tail.shape[1], np.float32)
    x[:dim] = 5.0
    x[0] = -5.0  # a direction no cell has
    bmu = int(rng.integers(n_cells))
    nbh, lattice = NEIGHBORHOODS[neighborhood], TOPOLOGIES[topology]
    scratch = [np.empty(max(rows, 2 * cols) + 1, np.float32), np.empty(2 * cols, np.float32)]
    scratch += [np.empty(cols, np.int64), np.empty(cols, np.float32)]
    args = (bmu, sigma, 1.0, rows, cols, is_torus, nbh, 2.0)
    update_lattice = None if topology == "rectangular" else lattice  # as the CPU engine passes it
    cosine_norms = np.empty((2, n_cells), np.float32)
    kernels.refresh_cosine_norms(head, tail, 0, n_cells, cosine_norms)
    kernels.update_window(head, tail, x, *args, *scratch, update_lattice, np.ones_like(x), False)
    window = (bmu, sigma, rows, cols, is_torus, nbh, 2.0, lattice)
    kernels.refresh_window(head, tail, *window, (boxes.bounds, boxes.scratch, boxes.unit), None)
    kernels.refresh_window(head, tail, *window, None, cosine_norms)
    cells = np.concatenate([head[:, :n_cells].T, tail[:, : dim - head.shape[0]]], axis=1)
    assert (cells[:, 1:] == 5.0).any()  # the update moved some cells (at least the BMU)
    assert_boxes_hold(boxes, cells)
    expected = np.empty_like(cosine_norms)
    kernels.refresh_cosine_norms(head, tail, 0, n_cells, expected)
    np.testing.assert_array_equal(cosine_norms, expected)


@pytest.mark.parametrize(
    ("options", "dim", "pruned"),
    [
        ({}, 3, {"topology", "missing", "boxes", "cosine_scratch", "pruned"}),
        ({}, 40, {"topology", "missing", "boxes", "cosine_scratch", "nearest"}),
        ({"topology": "hexagonal"}, 3, {"missing", "boxes", "cosine_scratch", "pruned"}),
        ({"metric": "cosine"}, 3, {"topology", "boxes", "nearest", "pruned"}),
        ({"metric": "manhattan"}, 40, {"topology", "boxes", "cosine_scratch", "nearest", "pruned"}),
        (
            {"nan_policy": "ignore", "missing": True},
            3,
            {"topology", "boxes", "cosine_scratch", "pruned"},
        ),
    ],
)
def test_cpu_online_run_passes_none_for_the_paths_it_does_not_take(rng, options, dim, pruned):
    """The CPU engine passes None for the kernel paths a run does not take, so that numba
    compiles only the others (a first call's compile time, benchmarks/RESULTS.md)."""
    import inspect

    from gpusom.cpu import kernels

    options = dict(options)
    data = rng.random((40, dim))
    if options.pop("missing", False):
        data[0, 1] = np.nan
    arguments = list(inspect.signature(kernels.train_online.py_func).parameters)
    with mock.patch("gpusom.cpu._train_online", wraps=kernels.train_online) as kernel:
        SOM((4, 5), seed=0, verbose=False, **options).train(data, 30)
    passed = dict(zip(arguments, kernel.call_args.args, strict=True))
    names = ("topology", "missing", "boxes", "cosine_scratch", "nearest", "pruned")
    assert {name for name in names if passed[name] is None} == pruned


@pytest.mark.parametrize("metric", ["euclidean", "cosine", "manhattan"])
def test_cpu_rerank_passes_manhattan_scratch_only_for_manhattan(rng, metric):
    """The CPU re-rank compiles its Manhattan bounds only for Manhattan searches (None
    otherwise), and either way its BMUs are the brute force's."""
    from gpusom._bmu_search import blocked_bmus
    from gpusom._math import METRICS
    from gpusom.cpu import kernels

    data, codebook = rng.random((30, 5)), rng.random((12, 5))
    with mock.patch("gpusom.cpu.kernels._rerank", wraps=kernels._rerank) as kernel:
        index, _ = blocked_bmus(data, codebook, 1, np, kernels.rerank, METRICS[metric])
    scratch = kernel.call_args.args[-1]
    assert (scratch is None) == (metric != "manhattan")
    difference = data[:, None] - codebook[None]
    norms = np.linalg.norm(data, axis=1)[:, None] * np.linalg.norm(codebook, axis=1)[None]
    brute = {
        "euclidean": (difference**2).sum(-1),
        "manhattan": np.abs(difference).sum(-1),
        "cosine": 1.0 - data @ codebook.T / norms,
    }[metric]
    np.testing.assert_array_equal(index[:, 0], brute.argmin(axis=1))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 1), (7, 3), (1600, 64), (1599, 64), (97, 33), (12, 200)])
def test_the_split_codebook_rows_start_on_cache_lines_and_hold_the_values(shape, dtype):
    # numpy aligns to 16 bytes: a head 48 bytes into a line made (b)'s late steps 10 % slower,
    # and head rows off their lines (1599 cells) as much
    from gpusom.cpu import CACHE_LINE, Codebook

    cells = np.random.default_rng(0).random(shape).astype(dtype)
    n_cells = shape[0]
    for _ in range(8):  # the allocator's next addresses
        codebook = Codebook(cells)
        head, tail = codebook.head, codebook.tail
        assert head.ctypes.data % CACHE_LINE == 0 and head.strides[0] % CACHE_LINE == 0
        assert head.shape[1] - n_cells < CACHE_LINE // head.itemsize  # no more than a line
        assert tail.size == 0 or tail.ctypes.data % CACHE_LINE == 0
        assert tail.shape[0] == n_cells
        split = head.shape[0]
        np.testing.assert_array_equal(head[:, :n_cells].T, cells[:, :split])
        assert not head[:, n_cells:].any()
        np.testing.assert_array_equal(tail[:, : shape[1] - split], cells[:, split:])
        assert not tail[:, shape[1] - split :].any()


PADDING_CASES = [
    (metric, dim, boxed, missing)
    for metric in ("euclidean", "manhattan", "cosine")
    for dim in (3, 8, 40)
    for boxed in (False, True)
    for missing in (False, True)
]


def search_past_the_map(metric, dim, boxed, missing, seed=0):
    """Three steps of one sample on a 5x9 map (45 cells, its head padded to 48 columns) whose
    head padding and tail rows past the map hold that sample: a search that read them as cells
    would find a cell past the map. Asserts the steps' BMUs are the brute force's."""
    from gpusom.cpu import ENGINE, Data, kernels

    rng = np.random.default_rng(seed)
    rows, cols = 5, 9  # chunks of 32 and 13 cells
    n_cells = rows * cols
    cells = rng.random((n_cells, dim)).astype(np.float32)
    sample = rng.random(dim).astype(np.float32)
    present = np.ones(dim, bool)
    if missing:
        present[1] = False
    codebook, boxes = codebook_with_boxes(cells, metric)
    split = codebook.head.shape[0]
    assert codebook.head.shape[1] > n_cells
    codebook.head[:, n_cells:] = sample[:split, None]
    past_the_map = np.zeros((n_cells + 32, codebook.tail.shape[1]), np.float32)
    past_the_map[:n_cells] = codebook.tail
    past_the_map[n_cells:, : dim - split] = sample[split:]
    codebook.tail = past_the_map[:n_cells]
    if boxed:
        kernels.build_boxes(codebook.head, codebook.tail, *boxes.arrays())
    else:
        codebook.boxes[METRICS[metric]] = None
    steps = 3  # a learning rate of 0: the map stays, the sample's guess changes after the first
    searched = np.where(present, sample, np.nan).astype(np.float32)
    bmus = ENGINE.train_online(
        codebook, Data(searched[None], np.float32), np.zeros(steps, np.int64),
        np.full(steps, 0.5), np.zeros(steps), rows, cols, False, NEIGHBORHOODS["gaussian"],
        2.0, 0, METRICS[metric],
    )  # fmt: skip
    x, w = sample[present].astype(np.float64), cells[:, present].astype(np.float64)
    expected = {
        "euclidean": ((w - x) ** 2).sum(1),
        "manhattan": np.abs(w - x).sum(1),
        "cosine": -(w @ x) / np.linalg.norm(w, axis=1),
    }[metric].argmin()
    np.testing.assert_array_equal(bmus, expected)


@pytest.mark.parametrize(("metric", "dim", "boxed", "missing"), PADDING_CASES)
def test_cpu_searches_never_take_the_head_padding_for_a_cell(metric, dim, boxed, missing):
    """The CPU codebook pads its head rows to whole cache lines (``gpusom.cpu.Codebook``): no
    step's search, on any path, may take a padded column for a cell."""
    search_past_the_map(metric, dim, boxed, missing)


def test_cpu_searches_stay_within_the_map_with_bounds_checked():
    """The same steps compiled with numba's bounds checks, in a process of their own: no
    kernel indexes past its arrays. (The boxed search wrote its partial distances of the head
    padding past their array, and the cosine bound its scores: heap corruption, found as an
    abort of the suite, not by any result.)"""
    code = (
        "import test_training as t\n"
        "for case in t.PADDING_CASES:\n"
        "    t.search_past_the_map(*case)\n"
        "print('within')\n"
    )
    tests = Path(__file__).parent
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_BOUNDSCHECK="1", NUMBA_CACHE_DIR=cache)
        result = subprocess.run(
            [sys.executable, "-c", code], cwd=tests, env=env, capture_output=True, text=True,
            timeout=600,
        )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("within")
