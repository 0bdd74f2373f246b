"""Distances (``metric``) and missing values (``nan_policy``) on every engine, against the oracle.

The oracle (``tests/naive.py``) ranks in float64 from direct differences over the present
features; the engines must find the same best unit at every step and keep the codebook within
the dtype's tolerance, on every combination of the options, and the analysis functions must
equal brute force.
"""

import warnings

import naive
import numpy as np
import pytest
from conftest import TOLERANCES
from engines import on_device, to_numpy, train_with
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gpusom
from gpusom import SOM, _training, schedules
from gpusom._math import METRICS, NEIGHBORHOODS

METRIC_NAMES = sorted(METRICS)


def with_missing(rng, data, share, keep=1):
    """``data`` with about ``share`` of its values NaN, every row keeping ``keep`` present
    values (or all, with fewer features)."""
    data = data.copy()
    holes = rng.random(data.shape) < share
    for row in range(len(data)):
        holes[row, rng.permutation(data.shape[1])[:keep]] = False
    data[holes] = np.nan
    return data


def brute_force(data, codebook, metric):
    """``(n, n_cells)`` float64 distances as the engines report them: NaN features missing,
    Euclidean and Manhattan scaled by ``dim / present``."""
    table = np.array([naive.distances(codebook, x, metric) for x in data])
    if metric != "cosine":
        present = (~np.isnan(data)).sum(axis=1)
        table *= (data.shape[1] / present)[:, None]
    return table


@given(
    rows=st.integers(1, 4),
    cols=st.integers(1, 5),
    dim=st.integers(1, 7),
    is_torus=st.booleans(),
    topology=st.sampled_from(["rectangular", "hexagonal"]),
    neighborhood=st.sampled_from(sorted(NEIGHBORHOODS)),
    decay=st.sampled_from(schedules.DECAYS),
    metric=st.sampled_from(METRIC_NAMES),
    dtype=st.sampled_from([np.float32, np.float64]),
    missing=st.sampled_from([0.0, 0.3]),
    seed=st.integers(0, 2**32 - 1),
)
@settings(
    max_examples=25,
    deadline=None,
    # The engine fixture only sets launch settings, the same for every example.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
def test_every_engine_follows_the_oracle_for_every_option(
    engine, rows, cols, dim, is_torus, topology, neighborhood, decay, metric, dtype, missing, seed
):
    if is_torus and topology == "hexagonal":
        rows += rows % 2
    # one feature has one direction per sign: every cosine of two samples ties
    keep = 2 if metric == "cosine" else 1
    dim = max(dim, keep)
    rng = np.random.default_rng(seed)
    steps = 10
    data = with_missing(rng, rng.normal(size=(15, dim)), missing, keep).astype(dtype)
    codebook = rng.normal(size=(rows * cols, dim)).astype(dtype)
    order = rng.integers(0, len(data), steps)
    sigmas = schedules.schedule(decay, 2.5, 0.5, np.arange(steps), steps, "sigma", True)
    lrs = schedules.schedule(decay, 0.5, 0.05, np.arange(steps), steps, "lr", False)
    args = (order, sigmas, lrs, rows, cols, is_torus, neighborhood, 2.0, topology, metric)
    expected, expected_bmus = naive.online_som(codebook, data, *args)
    got, bmus = train_with(engine, codebook, data, *args)
    np.testing.assert_array_equal(bmus, expected_bmus)
    np.testing.assert_allclose(got, expected, **TOLERANCES[dtype])
    # The closing step (finish="batch") of that run, from the engine's codebook: rounding
    # differences of the steps could break a BMU tie of the step either way.
    som = SOM((rows, cols), is_torus, topology=topology, neighborhood=neighborhood, sigma=2.5,
              sigma_end=0.5, sigma_decay=decay, truncate=2.0, metric=metric,
              nan_policy="ignore", finish="batch")  # fmt: skip
    run = schedules.settings(som.get_params(), len(data))
    closed = _training.closing_step(engine, got, data, run, steps)
    expected = naive.closing_step(got, data, sigmas[-1], *args[3:])
    np.testing.assert_allclose(closed, expected, **TOLERANCES[dtype])


@pytest.mark.parametrize("metric", METRIC_NAMES)
def test_a_missing_feature_is_never_moved(engine, rng, metric):
    data = rng.random((6, 5))
    data[:, 3] = np.nan  # feature 3 is missing from every sample
    codebook = rng.random((12, 5))
    order = rng.integers(0, 6, 40)
    ones = np.ones(40)
    got, _ = train_with(engine, codebook, data, order, 3 * ones, 0.5 * ones, 3, 4, False,
                        "gaussian", 3.0, "rectangular", metric)  # fmt: skip
    np.testing.assert_array_equal(got[:, 3], codebook[:, 3])
    assert not np.allclose(got[:, :3], codebook[:, :3])


@given(
    n=st.integers(1, 25),
    n_cells=st.integers(1, 70),
    dim=st.integers(1, 6),
    metric=st.sampled_from(METRIC_NAMES),
    missing=st.sampled_from([0.0, 0.4]),
    dtype=st.sampled_from([np.float32, np.float64]),
    seed=st.integers(0, 2**32 - 1),
)
@settings(max_examples=60, deadline=None)
def test_exact_search_equals_brute_force_under_every_metric(
    n, n_cells, dim, metric, missing, dtype, seed
):
    rng = np.random.default_rng(seed)
    # offset data: the centred products must keep the search exact here too
    data = with_missing(rng, rng.normal(5.0, 1.0, (n, dim)), missing).astype(dtype)
    codebook = rng.normal(5.0, 1.0, (n_cells, dim)).astype(dtype)
    k = 2 if n_cells > 1 else 1
    index, distance = gpusom.cpu.ENGINE.find_bmus(data, codebook, k, METRICS[metric])
    table = brute_force(data, codebook, metric)
    expected = np.argsort(table, axis=1, kind="stable")[:, :k]
    # 1 - cos cancels: absolute rounding near 0
    tolerance = {"rtol": 1e-12, "atol": 1e-14 if metric == "cosine" else 0}
    np.testing.assert_allclose(distance, np.take_along_axis(table, expected, 1), **tolerance)
    # the lowest index wins only exact ties; elsewhere equal distances are good enough
    chosen = np.take_along_axis(table, index, 1)
    np.testing.assert_allclose(chosen, np.take_along_axis(table, expected, 1), **tolerance)


@pytest.mark.parametrize("metric", METRIC_NAMES)
def test_every_engine_searches_like_the_cpu(engine, rng, metric):
    data = with_missing(rng, rng.random((30, 4)), 0.25)
    codebook = rng.random((23, 4))
    index, distance = engine.find_bmus(*arrays_of(engine, data, codebook), 2, METRICS[metric])
    cpu_index, cpu_distance = gpusom.cpu.ENGINE.find_bmus(data, codebook, 2, METRICS[metric])
    np.testing.assert_array_equal(to_numpy(index), cpu_index)
    np.testing.assert_allclose(to_numpy(distance), cpu_distance, rtol=1e-12)


def arrays_of(engine, *arrays):
    return arrays if engine.name == "cpu" else tuple(on_device(a) for a in arrays)


@pytest.mark.parametrize("metric", METRIC_NAMES)
def test_analysis_functions_use_the_metric_and_skip_missing_values(rng, metric):
    data = with_missing(rng, rng.random((40, 3)), 0.2)
    lattice = rng.random((4, 5, 3))
    table = brute_force(data, lattice.reshape(20, 3), metric)
    options = {"metric": metric, "nan_policy": "ignore"}
    flat = table.argmin(axis=1)
    cells = gpusom.find_bmus(data, lattice, **options)
    np.testing.assert_array_equal(cells[:, 0] * 5 + cells[:, 1], flat)
    best = table.min(axis=1)
    expected_qe = np.sqrt(best).mean() if metric == "euclidean" else best.mean()
    assert gpusom.quantization_error(data, lattice, **options) == pytest.approx(expected_qe)
    second = np.argsort(table, axis=1, kind="stable")[:, 1]
    dr, dc = np.abs(np.divmod(flat, 5)[0] - np.divmod(second, 5)[0]), np.abs(flat % 5 - second % 5)
    expected_te = np.mean(np.maximum(dr, dc) > 1)
    assert gpusom.topographic_error(data, lattice, **options) == pytest.approx(expected_te)
    projection = gpusom.project_on_lattice(data, lattice, verbose=False, **options)
    assert sum(len(v) for v in projection.values()) == 40
    for i, f in enumerate(flat):
        assert any(np.array_equal(data[i], v, equal_nan=True) for v in projection[divmod(f, 5)])
    closest = gpusom.lattice_closest_vectors(data, lattice, verbose=False, **options)
    for flat_cell, sample in enumerate(table.argmin(axis=0)):
        np.testing.assert_array_equal(closest[divmod(flat_cell, 5)], data[sample])
    activations = gpusom.lattice_activations(data, lattice, verbose=False, **options)
    expected = table.max() - table
    expected = (expected - expected.min()) / (expected.max() - expected.min())
    np.testing.assert_allclose(activations.reshape(40, 20), expected, atol=1e-12)


@pytest.mark.parametrize("metric", METRIC_NAMES)
@pytest.mark.parametrize("topology", ["rectangular", "hexagonal"])
def test_u_matrix_uses_the_metric(rng, metric, topology):
    lattice = rng.random((4, 6, 3))
    rows, cols = 4, 6
    vectors = lattice.reshape(-1, 3)
    expected = np.zeros(rows * cols)
    for cell in range(rows * cols):
        d2 = naive.grid_distance_sq(rows, cols, cell, True, topology)
        near = np.flatnonzero((d2 > 0) & (d2 <= (2 if topology == "rectangular" else 1)))
        d = naive.distances(vectors[near], vectors[cell], metric)
        expected[cell] = (np.sqrt(d) if metric == "euclidean" else d).mean()
    got = gpusom.u_matrix(lattice, True, topology=topology, metric=metric)
    np.testing.assert_allclose(got.ravel(), expected, rtol=1e-12)


def test_a_som_with_missing_values_trains_and_answers_with_them(rng):
    data = with_missing(rng, rng.random((300, 4)), 0.2)
    som = SOM((6, 7), metric="manhattan", nan_policy="ignore", seed=0, verbose=False).fit(data)
    assert np.isfinite(som.lattice_).all()
    assert som.predict(data).shape == (300,)
    assert 0 < som.quantization_error(data) < 1
    assert 0 <= som.topographic_error(data) < 0.5
    expected = gpusom.quantization_error(
        data, som.lattice_, metric="manhattan", nan_policy="ignore"
    )
    assert som.quantization_error(data) == pytest.approx(expected)
    # a missing feature lands where the present ones put it
    x = data[:1].copy()
    x[0, 2] = np.nan
    assert som.winner(x[0]) == tuple(som.transform(x)[0])


def test_a_metric_and_nan_policy_survive_save_and_resume(rng, tmp_path):
    data = with_missing(rng, rng.random((100, 3)), 0.1)
    options = {"metric": "cosine", "nan_policy": "ignore", "seed": 3, "verbose": False}
    whole = SOM((4, 5), **options).train(data, 500)
    som = SOM((4, 5), **options)
    som.train(data, 500, until=200)
    loaded = SOM.load(som.save(tmp_path / "m.npz"))
    assert loaded.settings_["metric"] == "cosine"
    np.testing.assert_array_equal(loaded.train(data, 500, resume=True), whole)
    assert loaded.quantization_error(data) == pytest.approx(
        gpusom.quantization_error(data, whole, metric="cosine", nan_policy="ignore")
    )


def test_missing_values_are_a_clear_error_unless_ignored(rng):
    data = rng.random((20, 3))
    data[4, 1] = np.nan
    with pytest.raises(ValueError, match='nan_policy="ignore"'):
        SOM((3, 3), verbose=False).train(data, 10)
    som = SOM((3, 3), nan_policy="ignore", verbose=False).train(data, 10)
    assert np.isfinite(som).all()
    with pytest.raises(ValueError, match="NaN"):
        gpusom.quantization_error(data, som)
    data[7] = np.nan
    with pytest.raises(ValueError, match=r"no present value.*row 7"):
        SOM((3, 3), nan_policy="ignore", verbose=False).train(data, 10)
    data[7] = 1.0
    data[9, 0] = np.inf
    with pytest.raises(ValueError, match="infinite"):
        SOM((3, 3), nan_policy="ignore", verbose=False).train(data, 10)


@pytest.mark.parametrize("algorithm", ["online", "batch"])
def test_a_feature_missing_everywhere_cannot_be_trained_but_can_be_searched(rng, algorithm):
    data = rng.random((30, 4))
    data[:, 2] = np.nan
    som = SOM((3, 4), algorithm=algorithm, nan_policy="ignore", verbose=False)
    with pytest.raises(ValueError, match=r"no present value.*feature 2"):
        som.train(data, 3)
    lattice = rng.random((3, 4, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy warning about the empty feature either
        bmus = gpusom.find_bmus(data, lattice, nan_policy="ignore")
        error = gpusom.quantization_error(data, lattice, nan_policy="ignore")
    present = [0, 1, 3]
    distances = ((data[:, None, present] - lattice.reshape(12, 4)[None, :, present]) ** 2).sum(-1)
    np.testing.assert_array_equal(bmus[:, 0] * 4 + bmus[:, 1], distances.argmin(axis=1))
    np.testing.assert_allclose(error, np.sqrt(distances.min(axis=1) * 4 / 3).mean(), rtol=1e-6)


@pytest.mark.parametrize(
    ("option", "value"), [("metric", "chebyshev"), ("nan_policy", "omit"), ("metric", None)]
)
def test_bad_options_are_named(option, value):
    with pytest.raises(ValueError, match=option):
        SOM((3, 3), verbose=False, **{option: value}).fit(np.ones((4, 2)))
    with pytest.raises(ValueError, match=option):
        gpusom.quantization_error(np.ones((4, 2)), np.ones((2, 2, 2)), **{option: value})


def test_cosine_ignores_scale_and_zero_vectors_are_unlike_everything():
    lattice = np.array([[[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]])
    data = np.array([[5.0, -0.1], [-0.01, 3.0]])
    np.testing.assert_array_equal(
        gpusom.find_bmus(data, lattice, metric="cosine"), [[0, 1], [0, 2]]
    )
    index, distance = gpusom.cpu.ENGINE.find_bmus(data, lattice.reshape(3, 2), 2, METRICS["cosine"])
    assert distance[0, 1] == 1.0 and index[0, 1] == 0  # the zero vector: no similarity
