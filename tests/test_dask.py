"""gpusom._dask: batch training as a map-reduce over chunks, and the lazy analysis helpers.

The oracle is the in-memory batch training, ``gpusom._batch.train_epochs`` on the CPU engine:
chunked training adds the same per-cell sums in another order, so float64 results agree to
rounding. A real ``distributed.LocalCluster`` (two worker processes) checks the cluster path,
including a worker that dies in the middle of an epoch.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

import gpusom
from gpusom import _backend, _batch, _dask
from gpusom._math import METRICS, NEIGHBORHOODS, TOPOLOGIES
from gpusom.analysis import group_by_cell, non_adjacent_share

da = pytest.importorskip("dask.array")
dd = pytest.importorskip("dask.dataframe")
pd = pytest.importorskip("pandas")

ROWS, COLS, DIM = 5, 6, 4
SIGMAS = [3.0, 2.0, 1.2, 0.8]
TRUNCATE = 4.0
# neighbourhood, topology, torus: a separable, a hexagonal torus and a direct-sum neighbourhood
LATTICES = [
    ("gaussian", "rectangular", False),
    ("bubble", "hexagonal", True),
    ("triangle", "rectangular", True),
]


def _data(n=600, dtype=np.float64, seed=0):
    """``n`` samples around 6 centres, and a codebook of further draws."""
    rng = np.random.default_rng(seed)
    centres = rng.random((6, DIM))
    data = centres[rng.integers(0, 6, n)] + rng.normal(0.0, 0.05, (n, DIM))
    codebook = centres[rng.integers(0, 6, ROWS * COLS)] + rng.normal(0.0, 0.05, (ROWS * COLS, DIM))
    return data.astype(dtype), codebook.astype(dtype)


def _settings(neighborhood="gaussian", topology="rectangular", is_torus=False):
    return dict(
        sigmas=SIGMAS,
        rows=ROWS,
        cols=COLS,
        is_torus=is_torus,
        neighborhood=NEIGHBORHOODS[neighborhood],
        truncate=TRUNCATE,
        topology=TOPOLOGIES[topology],
    )


def _in_memory(data, codebook, settings):
    return _batch.train_epochs(_backend.cpu_engine(), codebook, data, **settings)


# -- imports and detection -----------------------------------------------------------------------


def test_import_gpusom_imports_no_dask():
    code = (
        "import sys, numpy, gpusom; from gpusom import _dask; "
        "assert not _dask.is_dask(numpy.zeros((2, 2))); "
        "assert not [m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')]"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_dask_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "dask", None)
    with pytest.raises(ImportError, match=r'pip install "gpusom\[dask\]"'):
        _dask.find_bmus(np.zeros((3, 2)), np.zeros((4, 2)))


def test_is_dask():
    data, _ = _data(20)
    frame = dd.from_pandas(pd.DataFrame(data), npartitions=2)
    assert _dask.is_dask(da.from_array(data))
    assert _dask.is_dask(frame)
    assert not _dask.is_dask(data)
    assert not _dask.is_dask(pd.DataFrame(data))


# -- training --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "chunks",
    [(600,), (200, 200, 200), (86, 86, 86, 86, 86, 85, 85), (1, 47, 300, 2, 250)],
    ids=["1-chunk", "3-chunks", "7-chunks", "uneven"],
)
def test_train_batch_equals_in_memory(chunks):
    data, codebook = _data()
    settings = _settings()
    chunked = da.from_array(data, chunks=(chunks, DIM))
    result = _dask.train_batch(chunked, codebook, **settings)
    assert isinstance(result, np.ndarray) and result.dtype == np.float64
    np.testing.assert_allclose(result, _in_memory(data, codebook, settings), rtol=1e-10)


@pytest.mark.parametrize("lattice", LATTICES, ids=[kind[0] for kind in LATTICES])
def test_train_batch_equals_in_memory_on_every_lattice(lattice):
    data, codebook = _data()
    settings = _settings(*lattice)
    chunked = da.from_array(data, chunks=(86, 2))  # chunked along the features too
    result = _dask.train_batch(chunked, codebook, **settings)
    np.testing.assert_allclose(result, _in_memory(data, codebook, settings), rtol=1e-10)


def test_train_batch_float32_trains_in_the_codebook_dtype():
    data, codebook = _data(dtype=np.float32)
    settings = _settings()
    result = _dask.train_batch(da.from_array(data, chunks=(100, DIM)), codebook, **settings)
    assert result.dtype == np.float32
    np.testing.assert_allclose(result, _in_memory(data, codebook, settings), rtol=2e-4, atol=2e-5)


def test_train_batch_integer_data_trains_as_float64():
    rng = np.random.default_rng(3)
    data = rng.integers(0, 50, (300, DIM))
    codebook = data[:30].astype(np.float64)
    settings = _settings()
    result = _dask.train_batch(da.from_array(data, chunks=(70, DIM)), codebook, **settings)
    expected = _in_memory(data.astype(np.float64), codebook, settings)
    np.testing.assert_allclose(result, expected, rtol=1e-10)


def test_train_batch_on_a_dataframe():
    data, codebook = _data()
    columns = [f"f{i}" for i in range(DIM)]
    frame = dd.from_pandas(pd.DataFrame(data, columns=columns), npartitions=4)
    array, names = _dask.as_dask_array(frame, "X")
    assert names.tolist() == columns and array.shape == data.shape
    settings = _settings()
    result = _dask.train_batch(frame, codebook, **settings)
    np.testing.assert_allclose(result, _in_memory(data, codebook, settings), rtol=1e-10)


def test_dataframe_without_string_names_has_no_feature_names():
    data, _ = _data(30)
    frame = dd.from_pandas(pd.DataFrame(data), npartitions=2)
    array, names = _dask.as_dask_array(frame, "X")
    assert names is None
    np.testing.assert_array_equal(array.compute(), data)


def test_train_batch_no_epochs_returns_the_codebook():
    data, codebook = _data(50)
    settings = _settings() | {"sigmas": []}
    result = _dask.train_batch(da.from_array(data, chunks=20), codebook, **settings)
    np.testing.assert_array_equal(result, codebook)


# -- lazy analysis ---------------------------------------------------------------------------------


def _chunked(n=500, chunks=120):
    data, codebook = _data(n, seed=5)
    return data, codebook, da.from_array(data, chunks=(chunks, DIM))


def test_find_bmus_is_lazy_and_exact():
    data, codebook, chunked = _chunked()
    for k in (1, 2):
        index, distance = _dask.find_bmus(chunked, codebook, k)
        assert isinstance(index, da.Array) and isinstance(distance, da.Array)
        assert index.dtype == np.int64 and distance.dtype == np.float64
        assert index.shape == distance.shape == (data.shape[0], k)
        expected = _backend.cpu_engine().find_bmus(data, codebook, k)
        np.testing.assert_array_equal(index.compute(), expected[0])
        np.testing.assert_array_equal(distance.compute(), expected[1])


def test_predict_and_transform_are_lazy():
    data, codebook, chunked = _chunked()
    flat = _backend.cpu_engine().find_bmus(data, codebook, 1)[0][:, 0]
    predicted = _dask.predict(chunked, codebook)
    transformed = _dask.transform(chunked, codebook, COLS)
    assert isinstance(predicted, da.Array) and isinstance(transformed, da.Array)
    np.testing.assert_array_equal(predicted.compute(), flat)
    cells = transformed.compute()
    assert cells.dtype == np.int64
    np.testing.assert_array_equal(cells, np.stack(np.divmod(flat, COLS), axis=1))


def test_errors_are_lazy_scalars():
    data, codebook, chunked = _chunked()
    index, distance = _backend.cpu_engine().find_bmus(data, codebook, 2)
    qe = _dask.quantization_error(chunked, codebook)
    assert isinstance(qe, da.Array) and qe.shape == ()
    np.testing.assert_allclose(qe.compute(), np.sqrt(distance[:, 0]).mean(), rtol=1e-12)
    for topology, is_torus in (("rectangular", False), ("hexagonal", True)):
        te = _dask.topographic_error(chunked, codebook, ROWS, COLS, is_torus, topology)
        assert isinstance(te, da.Array) and te.shape == ()
        expected = non_adjacent_share(index, ROWS, COLS, is_torus, topology)
        np.testing.assert_allclose(te.compute(), expected, rtol=1e-12)


@pytest.mark.parametrize("metric", ["cosine", "manhattan"])
def test_other_metrics(metric):
    data, codebook, chunked = _chunked()
    code = METRICS[metric]
    index, distance = _backend.cpu_engine().find_bmus(data, codebook, 2, code)
    lazy_index, lazy_distance = _dask.find_bmus(chunked, codebook, 2, code)
    np.testing.assert_array_equal(lazy_index.compute(), index)
    np.testing.assert_array_equal(lazy_distance.compute(), distance)
    qe = _dask.quantization_error(chunked, codebook, code).compute()
    np.testing.assert_allclose(qe, distance[:, 0].mean(), rtol=1e-12)
    te = _dask.topographic_error(chunked, codebook, ROWS, COLS, False, metric=code).compute()
    np.testing.assert_allclose(te, non_adjacent_share(index, ROWS, COLS, False), rtol=1e-12)


def test_missing_values_where_allowed():
    data, codebook, _ = _chunked()
    data[[3, 250, 499], [0, 2, 3]] = np.nan
    chunked = da.from_array(data, chunks=(120, DIM))
    expected = _backend.cpu_engine().find_bmus(data, codebook, 1)
    index, distance = _dask.find_bmus(chunked, codebook, allow_nan=True)
    np.testing.assert_array_equal(index.compute(), expected[0])
    np.testing.assert_array_equal(distance.compute(), expected[1])
    with pytest.raises(ValueError, match='use nan_policy="ignore"'):
        _dask.predict(chunked, codebook).compute()
    data[7] = np.nan
    with pytest.raises(ValueError, match=r"data has 1 row\(s\) with no present value"):
        _dask.predict(da.from_array(data, chunks=120), codebook, allow_nan=True).compute()
    data[7] = np.inf
    with pytest.raises(ValueError, match="data contains 4 infinite value"):
        _dask.predict(da.from_array(data, chunks=120), codebook, allow_nan=True).compute()


def test_topographic_error_of_one_cell_is_zero():
    data, _, chunked = _chunked()
    te = _dask.topographic_error(chunked, data[:1], 1, 1, False)
    assert isinstance(te, da.Array) and te.compute() == 0.0
    # the data is checked as on any other lattice: its features up front, its values on compute
    with pytest.raises(ValueError, match=f"data has {DIM - 1} features"):
        _dask.topographic_error(chunked[:, 1:], data[:1], 1, 1, False)
    data[3, 1] = np.nan
    with pytest.raises(ValueError, match="1 NaN"):
        _dask.topographic_error(da.from_array(data, chunks=120), data[:1], 1, 1, False).compute()


def test_project_computes_the_grouping():
    data, codebook, chunked = _chunked()
    flat = _backend.cpu_engine().find_bmus(data, codebook, 1)[0][:, 0]
    labels = [f"s{i}" for i in range(data.shape[0])]
    assert _dask.project(chunked, codebook, (ROWS, COLS), labels) == group_by_cell(
        flat, (ROWS, COLS), labels
    )
    grouped = _dask.project(chunked, codebook, (ROWS, COLS), samples=chunked * 2.0)
    expected = group_by_cell(flat, (ROWS, COLS), data * 2.0)
    assert grouped.keys() == expected.keys()
    for cell, samples in expected.items():
        np.testing.assert_array_equal(np.array(grouped[cell]).reshape(-1, DIM), samples)


def test_lazy_helpers_on_an_empty_partition():
    data, codebook = _data(60)
    parts = [pd.DataFrame(data[:30]), pd.DataFrame(data[:0]), pd.DataFrame(data[30:])]
    frame = dd.from_delayed([_delayed(p) for p in parts], meta=parts[0].iloc[:0])
    expected = _backend.cpu_engine().find_bmus(data, codebook, 2)
    index, _ = _dask.find_bmus(frame, codebook, 2)
    np.testing.assert_array_equal(index.compute(), expected[0])
    te = _dask.topographic_error(frame, codebook, ROWS, COLS, False).compute()
    np.testing.assert_allclose(te, non_adjacent_share(expected[0], ROWS, COLS, False))
    settings = _settings()
    np.testing.assert_allclose(
        _dask.train_batch(frame, codebook, **settings),
        _in_memory(data, codebook, settings),
        rtol=1e-10,
    )


def _delayed(value):
    import dask

    return dask.delayed(value)


# -- arrays of unknown length (boolean filtering) --------------------------------------------------


def _filtered(data, keep, chunks):
    """``data[keep]`` as a dask array whose chunk lengths are unknown until computed, as after
    boolean filtering."""
    chunked = da.from_array(data, chunks=(chunks, DIM))
    filtered = chunked[da.from_array(keep, chunks=(chunks,))]
    assert np.isnan(filtered.shape[0])
    return filtered


@pytest.mark.parametrize(
    ("chunks", "dropped"),
    [
        ((120, 7, 200, 173), slice(0, 0)),
        ((100, 100, 100, 100, 100), slice(100, 200)),  # a chunk keeps nothing
        ((250, 0, 1, 249), slice(0, 0)),  # a chunk of no rows before filtering
    ],
    ids=["uneven", "emptied-chunk", "zero-length-chunk"],
)
def test_lazy_helpers_on_unknown_lengths(chunks, dropped):
    data, codebook = _data(500, seed=5)
    keep = np.random.default_rng(1).random(500) > 0.4
    keep[dropped] = False
    filtered, kept = _filtered(data, keep, chunks), data[keep]
    engine = _backend.cpu_engine()
    for k in (1, 2):
        index, distance = _dask.find_bmus(filtered, codebook, k)
        expected = engine.find_bmus(kept, codebook, k)
        np.testing.assert_array_equal(index.compute(), expected[0])
        np.testing.assert_array_equal(distance.compute(), expected[1])
    index, distance = engine.find_bmus(kept, codebook, 2)
    flat = index[:, 0]
    predicted = _dask.predict(filtered, codebook)
    transformed = _dask.transform(filtered, codebook, COLS)
    assert isinstance(transformed, da.Array) and np.isnan(transformed.shape[0])
    np.testing.assert_array_equal(predicted.compute(), flat)
    np.testing.assert_array_equal(transformed.compute(), np.stack(np.divmod(flat, COLS), axis=1))
    qe = _dask.quantization_error(filtered, codebook)
    assert isinstance(qe, da.Array) and qe.shape == ()
    np.testing.assert_allclose(qe.compute(), np.sqrt(distance[:, 0]).mean(), rtol=1e-12)
    for topology, is_torus in (("rectangular", False), ("hexagonal", True)):
        te = _dask.topographic_error(filtered, codebook, ROWS, COLS, is_torus, topology)
        expected = non_adjacent_share(index, ROWS, COLS, is_torus, topology)
        np.testing.assert_allclose(te.compute(), expected, rtol=1e-12)
    labels = [f"s{i}" for i in range(kept.shape[0])]
    shape = (ROWS, COLS)
    assert _dask.project(filtered, codebook, shape, labels) == group_by_cell(flat, shape, labels)
    grouped = _dask.project(filtered, codebook, shape)
    expected = group_by_cell(flat, shape, kept)
    assert grouped.keys() == expected.keys()
    for cell, samples in expected.items():
        np.testing.assert_array_equal(
            np.reshape(grouped[cell], (-1, DIM)), np.reshape(samples, (-1, DIM))
        )


def test_a_map_answers_filtered_arrays_as_their_values():
    """The public path: a trained (normalised) map and ``gpusom.find_bmus`` on a filtered
    array give what they give on the computed array."""
    data, _ = _data(300, seed=2)
    som = gpusom.SOM((ROWS, COLS), seed=0, verbose=False).fit(data)
    filtered = _filtered(data, data[:, 0] > np.median(data[:, 0]), (90, 0, 110, 100))
    kept = filtered.compute()
    np.testing.assert_array_equal(
        gpusom.find_bmus(filtered, som.lattice_).compute(), gpusom.find_bmus(kept, som.lattice_)
    )
    for method in ("predict", "transform", "quantization_error", "topographic_error"):
        lazy = getattr(som, method)(filtered)
        assert isinstance(lazy, da.Array)
        np.testing.assert_allclose(lazy.compute(), getattr(som, method)(kept), rtol=1e-12)
    assert som.project(filtered).keys() == som.project(kept).keys()


def test_no_sample_left_is_the_in_memory_error_on_compute():
    data, codebook = _data(100)
    lattice = codebook.reshape(ROWS, COLS, DIM)
    empty = _filtered(data, np.zeros(100, bool), (30, 0, 70))
    for function in (gpusom.quantization_error, gpusom.topographic_error):
        with pytest.raises(ValueError) as in_memory:
            function(np.empty((0, DIM)), lattice)
        lazy = function(empty, lattice)  # the length is unknown: nothing to see yet
        with pytest.raises(ValueError) as on_compute:
            lazy.compute()
        assert str(on_compute.value) == str(in_memory.value) == f"data is empty (shape (0, {DIM}))"
    message = rf"X is empty \(shape \(0, {DIM}\)\)"
    lazy_errors = (
        _dask.quantization_error(empty, codebook, name="X"),
        _dask.topographic_error(empty, codebook, ROWS, COLS, False, name="X"),
        _dask.topographic_error(empty, codebook[:1], 1, 1, False, name="X"),  # no search needed
    )
    for lazy in lazy_errors:
        with pytest.raises(ValueError, match=message):
            lazy.compute()
    for labels in (None, []):
        with pytest.raises(ValueError, match=message):
            _dask.project(empty, codebook, (ROWS, COLS), labels, name="X")
    # a best unit per sample: no sample, no unit
    index, distance = _dask.find_bmus(empty, codebook, 2)
    assert index.compute().shape == distance.compute().shape == (0, 2)
    assert _dask.predict(empty, codebook).compute().shape == (0,)
    cells = _dask.transform(empty, codebook, COLS).compute()
    assert cells.shape == (0, 2) and cells.dtype == np.int64


def test_a_map_and_its_training_name_x_when_a_filter_keeps_no_sample():
    data, _ = _data(100)
    som = gpusom.SOM((ROWS, COLS), seed=0, verbose=False).fit(data)
    empty = _filtered(data, np.zeros(100, bool), (30, 0, 70))
    message = rf"X is empty \(shape \(0, {DIM}\)\)"
    for method in (som.quantization_error, som.topographic_error):
        with pytest.raises(ValueError, match=message):
            method(empty).compute()
    with pytest.raises(ValueError, match=message):
        som.project(empty)
    with pytest.raises(ValueError, match=message):
        gpusom.SOM((ROWS, COLS), seed=0, verbose=False).fit(empty)


def _never_run(block):
    raise AssertionError("a task ran")


def test_no_sample_of_a_known_length_is_an_error_before_any_work():
    empty = da.zeros((0, DIM), chunks=(5, DIM)).map_blocks(_never_run, dtype=np.float64)
    _, codebook = _data(10)
    calls = {
        "find_bmus": lambda name: _dask.find_bmus(empty, codebook),
        "predict": lambda name: _dask.predict(empty, codebook),
        "transform": lambda name: _dask.transform(empty, codebook, COLS),
        "quantization_error": lambda name: _dask.quantization_error(empty, codebook, name=name),
        "topographic_error": lambda name: _dask.topographic_error(
            empty, codebook, ROWS, COLS, False, name=name
        ),
        "project": lambda name: _dask.project(empty, codebook, (ROWS, COLS), name=name),
    }
    for function, call in calls.items():
        name = "X" if function in ("quantization_error", "topographic_error", "project") else "data"
        with pytest.raises(ValueError, match=rf"^{name} is empty \(shape \(0, {DIM}\)\)$"):
            call(name)


# -- clear errors ----------------------------------------------------------------------------------


def test_one_dimensional_input_is_a_value_error():
    with pytest.raises(ValueError, match="X must be a 2-D array, got 1-D"):
        _dask.as_dask_array(da.zeros(10), "X")


def test_non_dask_input_is_a_type_error():
    with pytest.raises(TypeError, match="X must be a dask Array or dask DataFrame"):
        _dask.as_dask_array(np.zeros((3, 2)), "X")


def test_string_columns_are_a_type_error():
    frame = dd.from_pandas(pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"]}), npartitions=1)
    with pytest.raises(TypeError, match="X column 'b' is not numeric"):
        _dask.as_dask_array(frame, "X")
    with pytest.raises(TypeError, match="X must be numeric"):
        _dask.as_dask_array(da.from_array(np.array([["a", "b"]])), "X")


def test_empty_inputs_are_value_errors():
    with pytest.raises(ValueError, match="X is empty"):
        _dask.as_dask_array(da.zeros((5, 0)), "X")
    with pytest.raises(ValueError, match="X has no columns"):
        _dask.as_dask_array(dd.from_pandas(pd.DataFrame(index=range(4)), npartitions=1), "X")


def test_codebook_of_other_width_is_a_value_error():
    data, codebook = _data(50)
    with pytest.raises(ValueError, match="data has 4 features per sample"):
        _dask.train_batch(da.from_array(data), codebook[:, :3], **_settings())


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_surface_on_compute(bad):
    data, codebook = _data(100)
    data[77, 2] = bad
    chunked = da.from_array(data, chunks=(25, DIM))
    checked, _ = _dask.as_dask_array(chunked, "X")  # the values are not read here
    with pytest.raises(ValueError, match=r"X contains 1 NaN or infinite value\(s\)"):
        checked.compute()
    with pytest.raises(ValueError, match="data contains 1 NaN or infinite value"):
        _dask.train_batch(chunked, codebook, **_settings())
    with pytest.raises(ValueError, match="data contains 1 NaN or infinite value"):
        _dask.quantization_error(chunked, codebook).compute()


def test_values_whose_distances_overflow_surface_on_compute():
    """As in memory (tests/test_validation.py): training and analysis refuse data whose
    distances overflow, from the chunk's task."""
    data, codebook = _data(100)
    huge = da.from_array(data * 1e200, chunks=(25, DIM))
    with pytest.raises(ValueError, match=r"the training data spans .* overflow float64"):
        _dask.train_batch(huge, codebook, **_settings())
    with pytest.raises(ValueError, match=r"data with the lattice spans .* overflow float64"):
        _dask.quantization_error(huge, codebook).compute()
    cosine = da.from_array(data.astype(np.float32) * 1e20, chunks=(25, DIM))
    with pytest.raises(ValueError, match=r"dot products .* overflow float32"):
        _dask.train_batch(cosine, codebook.astype(np.float32), **_settings(), metric=1)
    # in range: no error
    _dask.quantization_error(da.from_array(data * 1e100, chunks=(25, DIM)), codebook).compute()


def test_missing_values_of_a_dataframe_surface_on_compute():
    data, codebook = _data(40)
    frame = pd.DataFrame(data, columns=list("abcd"))
    frame["b"] = pd.array(np.arange(40), dtype="Int64")
    frame.loc[5, "b"] = pd.NA
    with pytest.raises(ValueError, match="data contains 1 NaN"):
        _dask.train_batch(dd.from_pandas(frame, npartitions=2), codebook, **_settings())


def test_validation_is_not_repeated():
    checked, _ = _dask.as_dask_array(da.zeros((6, 2), chunks=3), "X")
    again, _ = _dask.as_dask_array(checked, "X")
    assert again is checked


# -- a real cluster --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client():
    """Two single-threaded worker processes; the client is made current only where a test says."""
    distributed = pytest.importorskip("distributed")
    cloudpickle = pytest.importorskip("cloudpickle")
    # the workers run this module's chunk functions without importing it
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    cluster = distributed.LocalCluster(
        n_workers=2,
        processes=True,
        threads_per_worker=1,
        dashboard_address=None,
        memory_limit="1GiB",
    )
    client = distributed.Client(cluster, set_as_default=False)
    try:
        yield client
    finally:
        client.close()
        cluster.close()
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def test_train_batch_on_a_local_cluster(client):
    data, codebook = _data()
    settings = _settings("bubble", "hexagonal", True)
    chunked = da.from_array(data, chunks=(86, DIM))
    expected = _in_memory(data, codebook, settings)
    result = _dask.train_batch(chunked, codebook, client=client, **settings)
    np.testing.assert_allclose(result, expected, rtol=1e-10)
    with client.as_current():  # found as the current client, and the lazy helpers run there
        assert _dask._current_client(None) is client
        result = _dask.train_batch(chunked, codebook, **settings)
        qe = _dask.quantization_error(chunked, result).compute()
    np.testing.assert_allclose(result, expected, rtol=1e-10)
    distance = _backend.cpu_engine().find_bmus(data, expected, 1)[1]
    np.testing.assert_allclose(qe, np.sqrt(distance[:, 0]).mean(), rtol=1e-10)


def _die_once(block, marker):
    """``block``; but the first task to get here (of all processes) kills its worker process."""
    if block.shape[0]:
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            return block
        os._exit(1)
    return block


def test_a_worker_dying_mid_epoch_changes_nothing(client, tmp_path):
    data, codebook = _data()
    settings = _settings()
    chunked = da.from_array(data, chunks=(86, DIM))
    undisturbed = _dask.train_batch(chunked, codebook, client=client, **settings)
    marker = str(tmp_path / "died")
    doomed = chunked.map_blocks(_die_once, marker, dtype=data.dtype, meta=chunked._meta)
    result = _dask.train_batch(doomed, codebook, client=client, **settings)
    assert os.path.exists(marker)  # a worker did die
    np.testing.assert_allclose(result, undisturbed, rtol=1e-10)
    np.testing.assert_allclose(result, _in_memory(data, codebook, settings), rtol=1e-10)
