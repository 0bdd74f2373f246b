"""``SOM(algorithm="batch")`` and Dask input at the estimator level.

The engines' batch epochs are checked against the oracle in ``test_batch.py`` and the Dask
map-reduce against them in ``test_dask.py``; here: the SOM's schedules, options, resume and
model file around them, and that Dask input trains and answers like numpy input.
"""

import naive
import numpy as np
import pytest

import gpusom
from gpusom import SOM, _training


def test_batch_fit_is_the_oracle_with_the_sigma_schedule(rng):
    data = rng.random((200, 3))
    som = SOM((4, 5), algorithm="batch", num_iterations=6, seed=1, verbose=False)
    som.fit(data)
    sigmas = _training.epoch_sigmas(som.settings_, 6)
    initial = gpusom.schedules.initial_codebook(
        data, 20, 5, gpusom.schedules.INITS["random"], np.random.default_rng(1)
    ).astype(np.float32)
    expected = naive.batch_som(
        initial, data.astype(np.float32), sigmas, 4, 5, False, "gaussian", 2.0
    )
    np.testing.assert_allclose(som.lattice_.reshape(20, 3), expected, rtol=1e-5, atol=1e-6)
    assert som.num_iterations_ == som.steps_done_ == 6


def test_batch_default_is_twenty_epochs_and_zero_is_an_error(rng):
    data = rng.random((50, 2))
    assert SOM((3, 3), algorithm="batch", verbose=False).fit(data).num_iterations_ == 20
    with pytest.raises(ValueError, match="num_iterations"):
        SOM((3, 3), algorithm="batch", verbose=False).train(data, 0)
    with pytest.raises(ValueError, match="algorithm"):
        SOM((3, 3), algorithm="minibatch", verbose=False).fit(data)


def test_batch_resumes_exactly_from_a_model_file(rng, tmp_path):
    data = rng.random((120, 3))
    options = {"algorithm": "batch", "seed": 4, "verbose": False, "topology": "hexagonal"}
    whole = SOM((4, 4), **options).train(data, 8)
    som = SOM((4, 4), **options)
    som.train(data, 8, until=3)
    loaded = SOM.load(som.save(tmp_path / "batch.npz"))
    np.testing.assert_array_equal(loaded.train(data, 8, resume=True), whole)


@pytest.mark.parametrize("metric", ["euclidean", "cosine", "manhattan"])
def test_batch_with_every_metric_and_missing_values(rng, metric):
    data = rng.random((150, 4))
    data[::4, 2] = np.nan
    som = SOM((4, 5), algorithm="batch", metric=metric, nan_policy="ignore", verbose=False)
    som.fit(data)
    assert np.isfinite(som.lattice_).all()
    # every cell is a weighted mean of the samples: inside their range, feature by feature
    low, high = np.nanmin(data, axis=0), np.nanmax(data, axis=0)
    assert (som.lattice_ >= low - 1e-6).all() and (som.lattice_ <= high + 1e-6).all()
    assert som.quantization_error(data) == pytest.approx(
        gpusom.quantization_error(data, som.lattice_, metric=metric, nan_policy="ignore")
    )


def test_batch_orders_the_map_as_well_as_online(rng):
    data = rng.random((1500, 3))
    online = SOM((8, 8), seed=0, verbose=False).fit(data)
    batch = SOM((8, 8), algorithm="batch", seed=0, verbose=False).fit(data)
    assert batch.quantization_error(data) < 1.2 * online.quantization_error(data)
    assert batch.topographic_error(data) < 0.1


dask_array = pytest.importorskip("dask.array")


def test_dask_input_trains_batch_and_answers_lazily(rng):
    data = rng.random((900, 3))
    chunks = dask_array.from_array(data, chunks=250)
    som = SOM((4, 6), num_iterations=4, seed=2, normalize=True, verbose=False).fit(chunks)
    expected = SOM(
        (4, 6), algorithm="batch", num_iterations=4, seed=2, normalize=True, verbose=False
    ).fit(data)
    assert som.backend_ == "dask" and som.settings_["algorithm"] == "batch"
    np.testing.assert_allclose(som.lattice_, expected.lattice_, rtol=1e-6)
    for method in ("predict", "transform", "quantization_error", "topographic_error"):
        lazy = getattr(som, method)(chunks)
        assert hasattr(lazy, "dask"), method
        np.testing.assert_allclose(lazy.compute(), getattr(som, method)(data), rtol=1e-9)
    projection = som.project(chunks)
    assert {k: len(v) for k, v in projection.items()} == {
        k: len(v) for k, v in som.project(data).items()
    }


def test_dask_input_ignores_the_closing_step(rng):
    data = dask_array.from_array(rng.random((300, 3)), chunks=100)
    options = {"num_iterations": 3, "seed": 5, "verbose": False}
    closed = SOM((3, 4), finish="batch", **options).fit(data)
    np.testing.assert_array_equal(
        closed.lattice_, SOM((3, 4), finish="none", **options).fit(data).lattice_
    )


def test_dask_input_of_unknown_length_trains_as_its_rows(rng):
    data = rng.random((600, 3))
    chunks = dask_array.from_array(data, chunks=150)
    kept = chunks[chunks[:, 0] > 0.3]  # a filter: the chunks' lengths are unknown
    assert np.isnan(kept.shape[0])
    som = SOM((3, 4), num_iterations=3, seed=1, verbose=False).fit(kept)
    expected = SOM((3, 4), algorithm="batch", num_iterations=3, seed=1, verbose=False)
    np.testing.assert_allclose(som.lattice_, expected.fit(data[data[:, 0] > 0.3]).lattice_)
    assert np.isnan(kept.shape[0])  # the caller's array is left as it was
    np.testing.assert_array_equal(som.predict(kept).compute(), som.predict(kept.compute()))


def test_an_online_run_cannot_be_resumed_with_dask_data(rng):
    data = rng.random((80, 3))
    som = SOM((3, 4), seed=0, verbose=False)
    som.train(data, 100, until=50)
    with pytest.raises(ValueError, match=r"online steps.*Dask data trains batch epochs"):
        som.train(dask_array.from_array(data, chunks=40), 100, resume=True)
    assert som.steps_done_ == 50 and som.settings_["algorithm"] == "online"
    np.testing.assert_array_equal(
        som.train(data, 100, resume=True), SOM((3, 4), seed=0, verbose=False).train(data, 100)
    )


def test_dask_input_keeps_the_clear_errors(rng):
    bad = dask_array.from_array(np.ones(10), chunks=5)
    with pytest.raises(ValueError, match="2-D"):
        SOM((2, 2), verbose=False).fit(bad)
    with_nan = dask_array.from_array(np.full((4, 2), np.nan), chunks=2)
    with pytest.raises(ValueError, match="NaN"):
        SOM((2, 2), num_iterations=2, verbose=False).fit(with_nan)
    data = dask_array.from_array(rng.random((4, 2)), chunks=2)
    with pytest.raises(ValueError, match="backend must be one of 'auto', 'cpu', 'cuda'; got 'gpu'"):
        SOM((2, 2), num_iterations=2, backend="gpu", verbose=False).fit(data)


@pytest.mark.parametrize("metric", ["euclidean", "manhattan"])
def test_the_module_functions_answer_dask_input_lazily(rng, metric):
    data = rng.random((300, 3))
    data[::7, 1] = np.nan
    lattice = rng.random((4, 5, 3))
    chunks = dask_array.from_array(data, chunks=70)
    options = {"metric": metric, "nan_policy": "ignore"}
    for name in ("find_bmus", "quantization_error", "topographic_error"):
        lazy = getattr(gpusom, name)(chunks, lattice, **options)
        assert hasattr(lazy, "dask"), name
        np.testing.assert_allclose(lazy.compute(), getattr(gpusom, name)(data, lattice, **options))


def test_an_explicit_backend_must_match_the_dask_chunks(rng, monkeypatch):
    data = dask_array.from_array(rng.random((40, 3)), chunks=20)
    som = SOM((3, 3), num_iterations=2, backend="cuda", verbose=False)
    with pytest.raises(ValueError, match=r"backend='cuda' cannot train .* chunks are numpy"):
        som.fit(data)
    assert not hasattr(som, "lattice_")
    som.set_params(backend="cpu").fit(data)
    assert som.backend_ == "dask" and som.lattice_.shape == (3, 3, 3)
    # the environment's choice for "auto" is a preference: the chunks' engine trains
    monkeypatch.setenv("GPUSOM_BACKEND", "cuda")
    som.set_params(backend="auto").fit(data)
    assert som.backend_ == "dask"
