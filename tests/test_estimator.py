"""scikit-learn's conventions on SOM: the estimator checks, fit/predict/transform/score,
parameters, stored normalisation, and DataFrame input."""

import pickle
import warnings

import numpy as np
import pytest

from gpusom import SOM, find_bmus, project_on_lattice, quantization_error
from gpusom.som import NotFittedError

pd = pytest.importorskip("pandas")
estimator_checks = pytest.importorskip("sklearn.utils.estimator_checks")

#: Checks a SOM cannot meet without depending on scikit-learn or changing its own messages.
EXPECTED_FAILED_CHECKS = {
    "check_estimators_unfitted": (
        "raises gpusom's own NotFittedError (a ValueError and AttributeError, like "
        "scikit-learn's) because gpusom does not depend on scikit-learn"
    ),
    "check_complex_data": "complex input is a TypeError (not a number type), not a ValueError",
    "check_estimators_empty_data_messages": (
        "the empty-data error says 'X is empty (shape (n, 0))' in gpusom's words"
    ),
    "check_fit2d_predict1d": (
        "1-D input is rejected with 'X must be a 2-D array', not scikit-learn's wording"
    ),
}


with warnings.catch_warnings():
    # scikit-learn warns that SOM does not inherit from its BaseEstimator: by design.
    warnings.filterwarnings("ignore", "Estimator SOM does not inherit", UserWarning)
    CHECKS = estimator_checks.parametrize_with_checks(
        [
            SOM((3, 4), num_iterations=200, seed=0, verbose=False),
            SOM((3, 4), num_iterations=200, seed=0, verbose=False, nan_policy="ignore"),
        ],
        expected_failed_checks=lambda estimator: EXPECTED_FAILED_CHECKS,
    )


@CHECKS
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@pytest.fixture
def data(rng):
    return rng.random((60, 3)) * [1.0, 10.0, 100.0]


def test_fit_predict_transform_score(data):
    som = SOM((4, 5), num_iterations=500, seed=1, verbose=False)
    assert som.fit(data) is som
    assert som.n_features_in_ == 3
    assert not hasattr(som, "feature_names_in_")
    assert som.steps_done_ == som.num_iterations_ == 500
    cells = som.transform(data)
    assert cells.shape == (60, 2) and cells.dtype == np.int64
    np.testing.assert_array_equal(cells, find_bmus(data, som.lattice_))
    np.testing.assert_array_equal(som.predict(data), cells[:, 0] * 5 + cells[:, 1])
    assert som.winner(data[7]) == tuple(cells[7])
    assert som.score(data) == -quantization_error(data, som.lattice_)
    np.testing.assert_array_equal(SOM(**som.get_params()).fit_transform(data), cells)


def test_a_lattice_assigned_after_use_is_the_one_searched(data):
    # The map kept its first upload of the lattice: predictions stayed the old map's while
    # save() wrote the new one.
    som = SOM((4, 5), num_iterations=500, seed=1, verbose=False).fit(data)
    other = SOM((4, 5), num_iterations=500, seed=2, verbose=False).fit(data)
    assert som.score(data) != other.score(data)
    som.lattice_ = other.lattice_.copy()
    np.testing.assert_array_equal(som.predict(data), other.predict(data))
    assert som.score(data) == other.score(data)


def test_pipelines_name_the_grid_coordinates(data):
    pipeline = pytest.importorskip("sklearn.pipeline")
    preprocessing = pytest.importorskip("sklearn.preprocessing")
    pipe = pipeline.make_pipeline(
        preprocessing.StandardScaler(), SOM((4, 5), num_iterations=300, seed=0, verbose=False)
    )
    cells = pipe.fit(data).transform(data)
    assert cells.shape == (60, 2)
    assert list(pipe.get_feature_names_out()) == ["som_row", "som_col"]
    with pytest.raises(NotFittedError):
        SOM((2, 2)).get_feature_names_out()


def test_fit_defaults_to_500_steps_per_cell_within_10_to_75_per_sample(data):
    assert len(data) == 60
    assert SOM((2, 3), seed=0, verbose=False).fit(data).num_iterations_ == 500 * 6
    assert SOM((10, 10), seed=0, verbose=False).fit(data).num_iterations_ == 75 * 60
    assert SOM((1, 1), seed=0, verbose=False).fit(data).num_iterations_ == 10 * 60


def test_methods_before_training_raise_not_fitted(data):
    som = SOM((2, 2))
    methods = (som.predict, som.transform, som.score, som.scale, som.project,
               som.quantization_error, som.topographic_error)  # fmt: skip
    for method in methods:
        with pytest.raises(NotFittedError, match="not trained"):
            method(data)
    with pytest.raises(NotFittedError, match="not trained"):
        som.winner(data[0])
    with pytest.raises(NotFittedError):
        som.save("never-written.npz")


def test_wrong_feature_count_names_the_argument(data):
    som = SOM((2, 2), num_iterations=20, verbose=False).fit(data)
    with pytest.raises(ValueError, match="X has 2 features, but SOM is expecting 3"):
        som.predict(data[:, :2])
    with pytest.raises(ValueError, match="x has 2 features"):
        som.winner(data[0, :2])
    for normalize in (False, True):
        som = SOM((2, 2), num_iterations=20, normalize=normalize, verbose=False).fit(data)
        with pytest.raises(ValueError, match="X has 2 features, but SOM is expecting 3"):
            som.scale(data[:, :2])


def test_get_and_set_params():
    som = SOM((3, 4), True, sigma=2.0, seed=5)
    params = som.get_params()
    assert params["som_size"] == (3, 4) and params["is_torus"] is True
    assert params["sigma"] == 2.0 and params["backend"] == "auto"
    assert set(params) >= {"num_iterations", "normalize", "verbose", "dtype"}
    assert som.set_params(sigma=1.0, backend="cpu") is som
    assert (som.sigma, som.backend) == (1.0, "cpu")
    with pytest.raises(ValueError, match=r"invalid parameter 'sigmaa'.*sigma"):
        som.set_params(sigmaa=1.0)
    assert repr(som) == "SOM(backend='cpu', is_torus=True, seed=5, sigma=1.0, som_size=(3, 4))"


def test_backend_parameter_is_kept_and_backend_records_what_ran(data):
    som = SOM((2, 2), num_iterations=10, backend="auto", verbose=False).fit(data)
    assert som.backend == "auto" and som.backend_ == "cpu"


def test_pickle_round_trip(data):
    som = SOM((3, 3), num_iterations=100, seed=0, verbose=False).fit(data)
    again = pickle.loads(pickle.dumps(som))
    np.testing.assert_array_equal(again.predict(data), som.predict(data))


def test_scale_without_normalisation_is_a_copy(rng):
    data = rng.random((20, 3)).astype(np.float32)
    som = SOM((3, 3), num_iterations=50, seed=0, verbose=False).fit(data)
    for given in (data, data[:, :], np.asfortranarray(data)):
        scaled = som.scale(given)
        np.testing.assert_array_equal(scaled, data)
        assert not np.shares_memory(scaled, given)


def test_normalisation_is_stored_and_applied_to_new_data(rng):
    data = rng.random((80, 3)) * [1.0, 100.0, 0.0] + [0.0, -50.0, 7.0]  # feature 2 constant
    som = SOM((4, 4), num_iterations=400, normalize=True, seed=2, verbose=False).fit(data)
    np.testing.assert_array_equal(som.data_min_, data.min(axis=0))
    np.testing.assert_array_equal(som.data_range_, np.ptp(data, axis=0))
    assert som.data_range_[2] == 0
    new = rng.random((10, 3)) * [2.0, 100.0, 1.0] + [0.0, -50.0, 9.0]
    scaled = som.scale(new)
    np.testing.assert_allclose(scaled[:, :2], (new[:, :2] - data.min(0)[:2]) / np.ptp(data, 0)[:2])
    np.testing.assert_array_equal(scaled[:, 2], 0.0)  # a constant feature maps to 0
    assert scaled[:, 0].max() > 1.0  # new data outside the training range stays outside
    np.testing.assert_array_equal(som.transform(new), find_bmus(scaled, som.lattice_))
    assert som.quantization_error(new) == quantization_error(scaled, som.lattice_)
    # the training data is scaled the same way: the lattice lives in [0, 1]
    assert som.lattice_.min() >= 0.0 and som.lattice_.max() <= 1.0
    projected = som.project(new, labels=list("abcdefghij"))
    expected = project_on_lattice(scaled, som.lattice_, list("abcdefghij"), verbose=False)
    assert projected == expected
    with pytest.raises(ValueError, match="labels has 2 entries but X has 10 samples"):
        som.project(new, labels=["a", "b"])  # the arguments the message names are project's
    vectors = som.project(new)  # cells hold the samples as given, not scaled
    assert sum(len(v) for v in vectors.values()) == 10
    assert any(np.array_equal(v[0], new[0]) for v in vectors.values() if v)
    # the standalone functions keep their own behaviour: each input scaled by its own range
    own = project_on_lattice(new, som.lattice_, list("abcdefghij"), normalize=True, verbose=False)
    assert own != projected


def test_train_normalize_matches_the_seed_behaviour(rng):
    data = rng.random((50, 3)) * 10
    som = SOM((4, 4), seed=0, verbose=False)
    lattice = som.train(data, 300, normalize=True)
    scaled = (data - data.min(0)) / np.ptp(data, 0)
    again = SOM((4, 4), seed=0, verbose=False).train(scaled, 300)
    np.testing.assert_allclose(lattice, again, rtol=1e-6)
    unnormalised = SOM((4, 4), seed=0, verbose=False).fit(data)
    assert unnormalised.data_min_ is None and unnormalised.data_range_ is None


def test_dataframe_input_keeps_names(rng):
    values = rng.random((40, 3))
    frame = pd.DataFrame(values, columns=["red", "green", "blue"])
    som = SOM((3, 3), num_iterations=200, seed=0, verbose=False).fit(frame)
    np.testing.assert_array_equal(som.feature_names_in_, ["red", "green", "blue"])
    assert som.feature_names_in_.dtype == object
    plain = SOM((3, 3), num_iterations=200, seed=0, verbose=False).fit(values)
    np.testing.assert_array_equal(som.lattice_, plain.lattice_)
    np.testing.assert_array_equal(som.predict(frame), plain.predict(values))
    np.testing.assert_array_equal(som.predict(values), plain.predict(values))  # numpy is fine
    with pytest.raises(ValueError, match="must be in the same order"):
        som.predict(frame[["blue", "green", "red"]])
    # a numpy refit forgets the names
    assert not hasattr(som.fit(values), "feature_names_in_")


def test_dataframe_float32_columns_stay_float32(rng):
    frame = pd.DataFrame(rng.random((20, 2)).astype(np.float32), columns=["a", "b"])
    som = SOM((2, 2), num_iterations=50, verbose=False).fit(frame)
    assert som.scale(frame).dtype == np.float32


def test_dataframe_with_a_non_numeric_column_names_it(rng):
    frame = pd.DataFrame({"x": rng.random(5), "kind": list("abcab"), "y": rng.random(5)})
    with pytest.raises(TypeError, match="data column 'kind' is not numeric"):
        SOM((2, 2), verbose=False).train(frame, 10)
    with pytest.raises(TypeError, match="column 'kind'"):
        find_bmus(frame, np.zeros((2, 2, 3)))


def test_dataframe_missing_values_count_as_nan(rng):
    frame = pd.DataFrame({"x": [1.0, None, 2.0], "n": pd.array([1, 2, None], dtype="Int64")})
    with pytest.raises(ValueError, match="2 NaN"):
        SOM((2, 2), verbose=False).fit(frame)


def test_every_public_function_accepts_dataframes_and_lists(rng):
    import gpusom

    values = rng.random((12, 3))
    frame = pd.DataFrame(values, columns=list("abc"))
    lattice = SOM((3, 4), seed=0, verbose=False).train(values, 100)
    calls = {
        "find_bmus": lambda d: gpusom.find_bmus(d, lattice),
        "quantization_error": lambda d: gpusom.quantization_error(d, lattice),
        "topographic_error": lambda d: gpusom.topographic_error(d, lattice),
        "project_on_lattice": lambda d: gpusom.project_on_lattice(d, lattice, verbose=False),
        "lattice_closest_vectors": lambda d: gpusom.lattice_closest_vectors(
            d, lattice, verbose=False
        ),
        "lattice_activations": lambda d: gpusom.lattice_activations(d, lattice, verbose=False),
        "plot_hit_map": lambda d: gpusom.plot_hit_map(d, lattice).axes[0].images[0].get_array(),
    }
    for name, call in calls.items():
        expected = call(values)
        for other in (frame, values.tolist()):
            got = call(other)
            if isinstance(expected, dict):
                assert got.keys() == expected.keys(), name
                for key in expected:
                    np.testing.assert_array_equal(got[key], expected[key], err_msg=name)
            else:  # a DataFrame's array may be Fortran-ordered: BLAS rounding may differ
                np.testing.assert_allclose(got, expected, rtol=1e-12, err_msg=name)
