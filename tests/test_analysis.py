"""BMUs, projection, closest vectors, activations, u-matrix and errors against brute force."""

import naive
import numpy as np
import pytest
from engines import on_device, to_numpy
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import gpusom
from gpusom import (
    find_bmus,
    lattice_activations,
    lattice_closest_vectors,
    project_on_lattice,
    quantization_error,
    topographic_error,
    u_matrix,
)

finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False, width=64)


@st.composite
def data_and_lattice(draw):
    dim = draw(st.integers(1, 6))
    rows, cols = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    data = draw(arrays(np.float64, (draw(st.integers(1, 30)), dim), elements=finite))
    lattice = draw(arrays(np.float64, (rows, cols, dim), elements=finite))
    return data, lattice


def arrays_of(engine, *arrays):
    """The arrays as inputs of ``engine``: numpy for the CPU, GPU arrays for CUDA; the public
    functions then run on that engine (one test body for every engine)."""
    return arrays if engine.name == "cpu" else tuple(on_device(a) for a in arrays)


def brute_force_is_argmin(data, lattice, flat):
    """Each chosen cell's distance equals the minimum; the lowest index among exact ties."""
    d2 = naive.all_distances_sq(data, lattice.reshape(-1, lattice.shape[-1]))
    chosen = d2[np.arange(len(data)), flat]
    np.testing.assert_allclose(chosen, d2.min(axis=1), rtol=1e-12, atol=1e-9)
    exact_first = np.argmin(d2, axis=1)
    runner_up = np.sort(d2, axis=1)[:, 1] if d2.shape[1] > 1 else np.inf
    clear = runner_up - d2.min(axis=1) > 1e-9 * (1 + d2.min(axis=1))
    ties = d2 == d2.min(axis=1, keepdims=True)
    np.testing.assert_array_equal(flat[clear], exact_first[clear])
    assert all(flat[i] == np.flatnonzero(ties[i])[0] for i in np.flatnonzero(ties.sum(1) > 1))


@given(data_and_lattice())
@settings(max_examples=150, deadline=None)
def test_find_bmus_equals_brute_force(case):
    data, lattice = case
    rows_cols = find_bmus(data, lattice)
    assert rows_cols.shape == (len(data), 2)
    brute_force_is_argmin(data, lattice, rows_cols[:, 0] * lattice.shape[1] + rows_cols[:, 1])


def test_find_bmus_ties_go_to_the_lowest_index(engine):
    lattice = np.zeros((2, 3, 2))
    lattice[0, 2] = lattice[1, 1] = [1.0, 1.0]
    data = np.array([[1.0, 1.0], [5.0, 5.0]])
    got = find_bmus(*arrays_of(engine, data, lattice))
    np.testing.assert_array_equal(to_numpy(got), [[0, 2], [0, 2]])


def test_find_bmus_is_exact_on_offset_float32_data(engine, rng):
    # Large common offset: the norm expansion alone would pick wrong cells here.
    lattice = (rng.random((12, 12, 8)) + 100.0).astype(np.float32)
    data = (rng.random((60, 8)) + 100.0).astype(np.float32)
    flat = to_numpy(find_bmus(*arrays_of(engine, data, lattice))) @ [12, 1]
    brute_force_is_argmin(data, lattice, flat)


@pytest.mark.parametrize("scale", [1e-21, 1e-22, 1e-40])
@pytest.mark.parametrize("metric", ["euclidean", "manhattan"])
def test_find_bmus_is_exact_on_tiny_values(engine, rng, scale, metric):
    # float32 products of such values fall below the smallest normal number and lose their
    # relative precision: the re-rank's bound must allow for that (1e-21 and 1e-22 got wrong
    # BMUs for 1 % and 70 % of the samples before it did).
    lattice, data = rng.random((10, 12, 8)) * scale, rng.random((200, 8)) * scale
    flat = to_numpy(find_bmus(*arrays_of(engine, data, lattice), metric=metric)) @ [12, 1]
    cells = lattice.reshape(-1, 8)
    want = [np.argmin(naive.distances(cells, x, metric)) for x in data]
    np.testing.assert_array_equal(flat, want)


def test_quantization_error_equals_brute_force(engine, rng):
    data, lattice = rng.random((40, 3)), rng.random((4, 5, 3))
    d2 = naive.all_distances_sq(data, lattice.reshape(20, 3))
    got = quantization_error(*arrays_of(engine, data, lattice))
    assert got == pytest.approx(np.sqrt(d2.min(axis=1)).mean(), rel=1e-12)


@pytest.mark.parametrize("metric", ["euclidean", "cosine", "manhattan"])
@pytest.mark.parametrize("holes", [False, True])
def test_blocks_do_not_change_the_result(rng, monkeypatch, metric, holes):
    # 42 blocks of 7 samples and a last one of 6, each block's scores written over the last's
    data, lattice = rng.random((300, 4)), rng.random((6, 7, 4))
    if holes:
        data[rng.random(data.shape) < 0.1] = np.nan
    options = {"metric": metric, "nan_policy": "ignore"}
    whole = find_bmus(data, lattice, **options)
    monkeypatch.setattr(gpusom._config, "ANALYSIS_BLOCK_BYTES", 8 * 42 * 7)
    np.testing.assert_array_equal(find_bmus(data, lattice, **options), whole)


@given(data_and_lattice(), st.booleans())
@settings(max_examples=60, deadline=None)
def test_errors_equal_brute_force(case, is_torus):
    data, lattice = case
    rows, cols = lattice.shape[:2]
    d2 = naive.all_distances_sq(data, lattice.reshape(rows * cols, -1))
    expected_qe = np.sqrt(d2.min(axis=1)).mean()
    assert quantization_error(data, lattice) == pytest.approx(expected_qe, rel=1e-9, abs=1e-9)
    te = topographic_error(data, lattice, is_torus)
    if rows * cols == 1:
        assert te == 0.0
        return
    order = np.argsort(d2, axis=1, kind="stable")
    gaps = np.take_along_axis(d2, order[:, 1:3], axis=1)
    settled = (gaps[:, 1] - gaps[:, 0] > 1e-9 * (1 + gaps[:, 0])) if rows * cols > 2 else True
    (r1, c1), (r2, c2) = np.divmod(order[:, 0], cols), np.divmod(order[:, 1], cols)
    dr, dc = np.abs(r1 - r2), np.abs(c1 - c2)
    if is_torus:
        dr, dc = np.minimum(dr, rows - dr), np.minimum(dc, cols - dc)
    bad = (dr > 1) | (dc > 1)
    if np.all(settled):
        assert te == pytest.approx(bad.mean())
    assert 0.0 <= te <= 1.0


def test_topographic_error_counts_non_neighbours(engine):
    lattice = np.zeros((1, 5, 1))
    lattice[0, :, 0] = [0.0, 1.0, 2.0, 3.0, 0.4]  # second-best of x=0.1 is the far cell 4
    data, lattice = arrays_of(engine, np.array([[0.1], [2.9]]), lattice)
    assert topographic_error(data, lattice) == 0.5
    assert topographic_error(data, lattice, is_torus=True) == 0.0  # 0 and 4 touch


@given(
    arrays(
        np.float64,
        st.tuples(st.integers(1, 6), st.integers(1, 6), st.integers(1, 4)),
        elements=finite,
    ),
    st.booleans(),
)
@settings(max_examples=80, deadline=None)
def test_u_matrix_equals_brute_force(lattice, is_torus):
    np.testing.assert_allclose(
        u_matrix(lattice, is_torus=is_torus),
        naive.u_matrix(lattice, is_torus),
        rtol=1e-12,
        atol=1e-12,
    )


def test_u_matrix_wraps_on_a_torus():
    lattice = np.zeros((3, 3, 1))
    lattice[0, 0] = 9.0
    plane, torus = u_matrix(lattice), u_matrix(lattice, is_torus=True)
    assert plane[2, 2] == 0.0  # not a neighbour of (0, 0) on the plane
    assert torus[2, 2] == pytest.approx(9.0 / 8)  # one of its 8 neighbours on the torus
    assert plane[0, 0] == pytest.approx(9.0) and torus[0, 0] == pytest.approx(9.0)


def test_projection_holds_every_cell_and_every_sample(engine, rng):
    data, lattice = rng.random((50, 3)), rng.random((4, 5, 3))
    projection = project_on_lattice(*arrays_of(engine, data, lattice), verbose=False)
    assert list(projection) == [(r, c) for r in range(4) for c in range(5)]
    bmus = find_bmus(data, lattice)
    for i, (r, c) in enumerate(bmus):
        assert any(v is data[i] or np.array_equal(v, data[i]) for v in projection[(r, c)])
    assert sum(len(v) for v in projection.values()) == 50


def test_projection_with_labels_and_normalize(rng):
    data = rng.random((20, 2)) * [10.0, 1000.0]
    lattice = rng.random((3, 3, 2))
    labels = [f"s{i}" for i in range(20)]
    projection = project_on_lattice(
        data, lattice, additional_list=labels, normalize=True, verbose=False
    )
    scaled = (data - data.min(0)) / np.ptp(data, axis=0)
    for i, (r, c) in enumerate(find_bmus(scaled, lattice)):
        assert labels[i] in projection[(r, c)]


def test_closest_vectors_equal_brute_force(engine, rng):
    data, lattice = rng.random((30, 3)), rng.random((5, 4, 3))
    inputs = arrays_of(engine, data, lattice)
    closest = lattice_closest_vectors(*inputs, verbose=False)
    labelled = lattice_closest_vectors(*inputs, additional_list=list(range(30)), verbose=False)
    d2 = naive.all_distances_sq(lattice.reshape(20, 3), data)
    for flat, sample in enumerate(np.argmin(d2, axis=1)):
        cell = divmod(flat, 4)
        np.testing.assert_array_equal(closest[cell], data[sample])
        assert labelled[cell] == [sample]


@pytest.mark.parametrize("exponent", [1, 8, 0.5])
def test_activations_equal_brute_force(engine, rng, exponent):
    data, lattice = rng.random((7, 3)), rng.random((4, 6, 3))
    inputs = arrays_of(engine, data, lattice)
    got = to_numpy(lattice_activations(*inputs, exponent=exponent, verbose=False))
    d2 = naive.all_distances_sq(data, lattice.reshape(24, 3)).reshape(7, 4, 6)
    scaled = (d2.max() - d2) ** exponent
    expected = (scaled - scaled.min()) / (scaled.max() - scaled.min())
    assert got.shape == (7, 4, 6)
    np.testing.assert_allclose(got, expected, atol=1e-9)
    assert got.min() == 0.0 and got.max() == 1.0


def test_activations_of_a_large_exponent_of_large_distances_are_finite(rng):
    # (D - d) ** 80 of squared distances near 1e4 overflowed float64: NaN activations
    data, lattice = rng.random((7, 3)) * 100, rng.random((4, 6, 3)) * 100
    got = lattice_activations(data, lattice, exponent=80, verbose=False)
    d2 = naive.all_distances_sq(data, lattice.reshape(24, 3)).reshape(7, 4, 6)
    expected = ((d2.max() - d2) / (d2.max() - d2.min())) ** 80
    np.testing.assert_allclose(got, (expected - expected.min()) / np.ptp(expected), atol=1e-12)
    assert got.max() == 1.0


def test_activations_of_identical_distances_are_one():
    got = lattice_activations([[1.0, 2.0]], np.ones((1, 1, 2)), verbose=False)
    np.testing.assert_array_equal(got, [[[1.0]]])


def test_analysis_handles_many_samples_in_bounded_blocks(rng, monkeypatch):
    monkeypatch.setattr(gpusom._config, "ANALYSIS_BLOCK_BYTES", 1 << 16)
    data, lattice = rng.random((5000, 8)), rng.random((10, 10, 8))
    flat = find_bmus(data, lattice) @ [10, 1]
    brute_force_is_argmin(data, lattice, flat)


def test_find_bmus_is_exact_where_float32_products_would_overflow(rng):
    lattice = rng.normal(size=(4, 5, 3)) * 1e20
    data = rng.normal(size=(50, 3)) * 1e20
    brute_force_is_argmin(data, lattice, find_bmus(data, lattice) @ [5, 1])
    assert np.isfinite(quantization_error(data, lattice))


@pytest.mark.parametrize("n_cells", [63, 64, 65, 143])
def test_two_best_units_equal_brute_force_across_score_chunks(engine, rng, n_cells):
    data, codebook = rng.random((60, 5)), rng.random((n_cells, 5))
    codebook[n_cells - 1] = codebook[0]  # an exact tie across chunks: the lower index first
    index, distance = (
        engine.to_numpy(a)
        for a in engine.find_bmus(
            engine.as_array(data, "data", 2), engine.as_array(codebook, "codebook", 2), 2
        )
    )
    d2 = naive.all_distances_sq(data, codebook)
    order = np.argsort(d2, axis=1, kind="stable")[:, :2]
    np.testing.assert_array_equal(index, order)
    np.testing.assert_allclose(distance, np.take_along_axis(d2, order, axis=1), rtol=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    n_cells=st.integers(1, 200),
    dtype=st.sampled_from([np.float32, np.float64]),
    seed=st.integers(0, 2**32 - 1),
)
def test_cpu_score_chunk_minima_are_the_chunks_smallest_scores(n_cells, dtype, seed):
    """The CPU rerank's chunk minima (integer keys, negative scores and zeros of either sign
    included) equal numpy's minimum of each chunk."""
    from numba import njit

    from gpusom.cpu.kernels import SCORE_CHUNK, score_chunk_minima

    rng = np.random.default_rng(seed)
    dots = rng.integers(-3, 4, n_cells).astype(dtype) / 4  # few values: ties and zeros
    cb_sq = rng.integers(-3, 4, n_cells).astype(dtype) / 2
    cb_sq[rng.random(n_cells) < 0.1] = -0.0
    out = np.empty(-(-n_cells // SCORE_CHUNK), dtype)
    njit(lambda d, q, o: score_chunk_minima(d, q, o))(dots, cb_sq, out)
    scores = cb_sq - 2 * dots
    expected = [scores[c : c + SCORE_CHUNK].min() for c in range(0, n_cells, SCORE_CHUNK)]
    np.testing.assert_array_equal(out, np.array(expected, dtype))
