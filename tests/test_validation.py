"""Bad input gets a clear TypeError/ValueError naming the argument, before any numba code runs."""

import functools
import tracemalloc

import numpy as np
import pytest

from gpusom import (
    SOM,
    _bmu_search,
    _training,
    find_bmus,
    lattice_activations,
    lattice_closest_vectors,
    plot_u_matrix,
    project_on_lattice,
    quantization_error,
    save_lattice,
    topographic_error,
    u_matrix,
)
from gpusom._checks import check_memory

LATTICE = np.random.default_rng(0).random((3, 4, 2))
GOOD = np.random.default_rng(1).random((5, 2))

BAD_DATA = [
    (np.array([[1.0, np.nan]]), ValueError, "NaN"),
    (np.array([[1.0, np.inf]]), ValueError, "infinite"),
    (np.empty((0, 2)), ValueError, "empty"),
    (np.ones(4), ValueError, "2-D"),
    (np.ones((2, 2, 2)), ValueError, "2-D"),
    ([["a", "b"]], TypeError, "numeric"),
    (np.array([[1 + 2j, 0j]]), TypeError, "numeric"),
    ([[1.0, None]], ValueError, "NaN"),  # None becomes NaN: a missing value
    ([[1.0, "x"]], TypeError, "numeric"),
    (np.ones((4, 3)), ValueError, "features"),
    (np.ma.masked_array([[1.0, 2.0]], mask=[[False, True]]), TypeError, "masked array"),
]

DATA_FUNCTIONS = {
    "train": lambda d: SOM((3, 4), verbose=False).train(d, 10),
    "find_bmus": lambda d: find_bmus(d, LATTICE),
    "quantization_error": lambda d: quantization_error(d, LATTICE),
    "topographic_error": lambda d: topographic_error(d, LATTICE),
    "project_on_lattice": lambda d: project_on_lattice(d, LATTICE, verbose=False),
    "lattice_closest_vectors": lambda d: lattice_closest_vectors(d, LATTICE, verbose=False),
    "lattice_activations": lambda d: lattice_activations(d, LATTICE, verbose=False),
}


@pytest.mark.parametrize("function", sorted(DATA_FUNCTIONS))
@pytest.mark.parametrize(("data", "error", "words"), BAD_DATA)
def test_bad_data_is_rejected(function, data, error, words):
    if function == "train" and words == "features":
        pytest.skip("train has no lattice to mismatch")
    with pytest.raises(error, match=words) as caught:
        DATA_FUNCTIONS[function](data)
    assert "data" in str(caught.value)


BAD_LATTICES = [
    (np.ones((3, 4)), ValueError, "3-D"),
    (np.full((2, 2, 2), np.nan), ValueError, "NaN"),
    (np.empty((0, 2, 2)), ValueError, "empty"),
    (np.array([[["x"]]]), TypeError, "numeric"),
    (np.ma.masked_array(np.ones((2, 2, 2)), mask=True), TypeError, "masked array"),
]


@pytest.mark.parametrize(("lattice", "error", "words"), BAD_LATTICES)
@pytest.mark.parametrize(
    "function",
    [
        lambda lat: u_matrix(lat),
        lambda lat: find_bmus(GOOD, lat),
        lambda lat: lattice_activations(GOOD, lat, verbose=False),
        lambda lat: save_lattice(lat, "never-written"),
    ],
)
def test_bad_lattice_is_rejected(function, lattice, error, words, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(error, match=words) as caught:
        function(lattice)
    assert "lattice" in str(caught.value)
    assert "nan_policy" not in str(caught.value)  # that option is about the samples
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("som_size", "error"),
    [
        ((0, 5), ValueError),
        ((5, -1), ValueError),
        ((2.5, 3), TypeError),
        ((True, 3), TypeError),
        (5, TypeError),
        ((1, 2, 3), TypeError),
        ("ab", TypeError),
    ],
)
def test_bad_som_size(som_size, error):
    with pytest.raises(error, match="som_size"):
        SOM(som_size, verbose=False).train(GOOD, 10)


@pytest.mark.parametrize(
    ("iterations", "error"),
    [(0, ValueError), (-3, ValueError), (2.0, TypeError), (None, TypeError)],
)
def test_bad_num_iterations(iterations, error):
    with pytest.raises(error, match="num_iterations"):
        SOM((2, 2), verbose=False).train(GOOD, iterations)


@pytest.mark.parametrize(
    ("setting", "value", "error"),
    [
        ("sigma", 0.0, ValueError),
        ("sigma", np.nan, ValueError),
        ("sigma_end", -1.0, ValueError),
        ("learning_rate", "fast", TypeError),
        ("learning_rate_end", np.inf, ValueError),
        ("learning_rate", 1.5, ValueError),
        ("learning_rate_end", 5.0, ValueError),
        ("truncate", 0, ValueError),
        ("neighborhood", "mexican", ValueError),
        ("init", "zeros", ValueError),
        ("finish", "bogus", ValueError),
        ("dtype", "float16", ValueError),
        ("backend", "tpu", ValueError),
        ("is_torus", "yes", TypeError),
        ("seed", -1, ValueError),
        ("seed", 1.5, TypeError),
        ("seed", "abc", TypeError),
    ],
)
def test_bad_settings_name_the_setting(setting, value, error):
    som = SOM((2, 2), verbose=False)
    setattr(som, setting, value)
    with pytest.raises(error, match=setting):
        som.train(GOOD, 10)


def test_bad_choice_lists_the_valid_names():
    with pytest.raises(ValueError, match="'gaussian', 'bubble'"):
        SOM((2, 2), neighborhood="hat", verbose=False).train(GOOD, 10)


@pytest.mark.parametrize("labels", [["a"] * 4, ["a"] * 6])
def test_wrong_length_additional_list(labels):
    with pytest.raises(ValueError, match="additional_list"):
        project_on_lattice(GOOD, LATTICE, additional_list=labels, verbose=False)
    with pytest.raises(ValueError, match="additional_list"):
        lattice_closest_vectors(GOOD, LATTICE, additional_list=labels, verbose=False)


@pytest.mark.parametrize(
    ("function", "flag"),
    [
        (project_on_lattice, "normalize"),
        (lattice_closest_vectors, "normalized"),
        (lattice_activations, "normalize"),
    ],
)
def test_scaling_flag_must_be_a_bool(function, flag):
    # "no" is truthy: taken as given, it would scale the data the caller asked not to scale.
    with pytest.raises(TypeError, match=flag):
        function(GOOD, LATTICE, verbose=False, **{flag: "no"})


def test_data_beyond_the_dtype_range_is_refused_with_the_remedy():
    huge = GOOD * 1e300  # inf as float32: training used to "diverge" and blame learning_rate
    with pytest.raises(ValueError, match=r"training data holds values up to .* float32"):
        SOM((2, 2), verbose=False).train(huge, 10)
    # float64 holds them, but not their squared differences (below)
    with pytest.raises(ValueError, match=r"squared differences .* overflow float64"):
        SOM((2, 2), dtype="float64", verbose=False).train(huge, 10)
    assert np.isfinite(SOM((2, 2), verbose=False).train(huge, 10, normalize=True)).all()


def test_data_whose_squared_differences_overflow_the_dtype_is_refused_with_the_remedy():
    # float32 holds these values but not the squares of their differences: every distance was
    # inf, every sample tied on the first cell, and the map learnt nothing, silently.
    wide = np.random.default_rng(2).random((40, 2)) * 1e20
    with pytest.raises(ValueError, match=r"squared differences .* overflow float32"):
        SOM((3, 3), verbose=False).train(wide, 10)
    som = SOM((3, 3), dtype="float64", seed=0, verbose=False)
    som.train(wide, 500)
    assert np.unique(som.predict(wide)).size > 1
    som = SOM((3, 3), seed=0, verbose=False)
    som.train(wide, 500, normalize=True)
    assert np.unique(som.predict(wide)).size > 1
    # Large values close together are fine: only their differences are squared.
    offset = 1e18 + np.random.default_rng(3).random((40, 2)) * 1e15
    som = SOM((3, 3), seed=0, verbose=False)
    som.train(offset, 500)
    assert np.unique(som.predict(offset)).size > 1


def test_a_feature_the_dtype_cannot_resolve_is_refused_with_the_remedy():
    # Timestamps of one minute around 1.7e9 are one or two float32 values: the map learnt a
    # single value for the feature (QE 31.8 against 0.46 in float64), silently.
    rng = np.random.default_rng(4)
    stamps = 1.7e9 + rng.random((200, 1)) * 60
    with pytest.raises(
        ValueError, match=r"feature 0 spans only 59\.\d at .* float32 .* steps of 128"
    ):
        SOM((3, 3), verbose=False).train(stamps, 10)
    for som, normalize in (
        (SOM((3, 3), dtype="float64", seed=0), False),
        (SOM((3, 3), seed=0), True),
    ):
        som.set_params(verbose=False).train(stamps, 2000, normalize=normalize)
        assert np.unique(som.predict(stamps)).size == 9  # the map spreads over the minute
    # 2,048 steps of float32's spacing, beside a constant feature, are fine
    fine = np.c_[np.full(200, 1.7e9), 1e4 + rng.random(200) * (2048 * np.spacing(np.float32(1e4)))]
    SOM((3, 3), verbose=False).train(fine, 10)


def test_cosine_and_manhattan_distances_that_overflow_the_dtype_are_refused():
    # float32 holds 1e20 but not its square: the cosine's dot products and norms were inf, its
    # distances NaN, and training picked best units among NaN (a topographic error of 0.6
    # where float64 gave 0, in one run).
    big = np.random.default_rng(4).random((40, 3)) * 1e20
    with pytest.raises(ValueError, match=r"dot products .* float32 \(.*\); use dtype='float64'"):
        SOM((3, 3), metric="cosine", verbose=False).train(big, 10)
    with pytest.raises(ValueError, match=r"dot products .* float64 \(max .*\); use normalize=True"):
        SOM((3, 3), metric="cosine", dtype="float64", verbose=False).train(big * 1e140, 10)
    som = SOM((3, 3), metric="cosine", dtype="float64", seed=0, verbose=False)
    som.train(big, 300)
    assert np.unique(som.predict(big)).size > 1
    # Manhattan distances are sums of differences, not squares: 1e20 fits float32, but values
    # near its limit do not (their differences and sums were inf: training "diverged").
    SOM((3, 3), metric="manhattan", verbose=False).train(big, 10)
    wide = (np.random.default_rng(5).random((40, 2)) * 2 - 1) * 3e38
    with pytest.raises(ValueError, match=r"sums of absolute differences .* overflow float32"):
        SOM((3, 3), metric="manhattan", verbose=False).train(wide, 10)


ANALYSES = {
    "find_bmus": find_bmus,
    "quantization_error": quantization_error,
    "topographic_error": topographic_error,
    "project_on_lattice": functools.partial(project_on_lattice, verbose=False),
    "lattice_closest_vectors": functools.partial(lattice_closest_vectors, verbose=False),
    "lattice_activations": functools.partial(lattice_activations, verbose=False),
}


@pytest.mark.parametrize("name", sorted(ANALYSES))
def test_analysis_refuses_data_whose_distances_to_the_lattice_overflow_float64(name):
    analyse = ANALYSES[name]
    # Squared differences of values beyond 1e154 overflow float64: the quantization error was
    # inf and find_bmus put every sample on the cell (-1, 3), off the lattice.
    with pytest.raises(ValueError, match=r"data with the lattice spans .* \(max .*\); scale data"):
        analyse(GOOD * 1e200, LATTICE)
    # Data close together but far from the lattice: their differences overflow all the same.
    with pytest.raises(ValueError, match=r"squared differences .* overflow float64"):
        analyse(1e160 + GOOD, LATTICE)
    with pytest.raises(ValueError, match=r"dot products .* overflow float64"):
        analyse(GOOD * 1e160, LATTICE, metric="cosine")
    analyse(GOOD * 1e150, LATTICE * 1e150)  # squares up to about 1e300: no overflow
    analyse(GOOD * 1e-170, LATTICE * 1e-170)  # squares that underflow are a brute force's too


@pytest.mark.parametrize("method", ["predict", "transform", "quantization_error", "project"])
def test_som_methods_refuse_data_whose_distances_to_the_lattice_overflow_float64(method):
    som = SOM((2, 3), dtype="float64", seed=0, verbose=False).fit(GOOD)
    with pytest.raises(ValueError, match=r"X with the lattice spans .* overflow float64"):
        getattr(som, method)(GOOD * 1e200)
    getattr(som, method)(GOOD * 1e100)  # squares up to about 1e200: no overflow


def test_u_matrix_refuses_a_lattice_whose_distances_overflow_float64():
    with pytest.raises(ValueError, match=r"lattice spans .* squared differences .* float64"):
        u_matrix(LATTICE * 1e200)
    assert np.isfinite(u_matrix(LATTICE * 1e150)).all()


def test_data_too_small_for_the_dtype_is_refused_with_the_remedy():
    tiny = GOOD * 1e-25  # squared differences are 0 in float32: every cell ties
    with pytest.raises(ValueError, match=r"no larger than .* underflow to 0 in float32"):
        SOM((2, 2), verbose=False).train(tiny, 10)
    som = SOM((2, 2), dtype="float64", seed=0, verbose=False)
    som.train(tiny, 50)
    assert som.topographic_error(tiny) < 1  # distances are distinct: a real map
    assert np.isfinite(SOM((2, 2), verbose=False).train(tiny, 10, normalize=True)).all()
    SOM((2, 2), verbose=False).train(np.zeros((5, 2)), 10)  # all zeros is constant, not tiny


def test_bad_exponent():
    with pytest.raises(ValueError, match="exponent"):
        lattice_activations(GOOD, LATTICE, exponent=0, verbose=False)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    ("algorithm", "init", "finish"),
    [
        ("online", "random", "none"),
        ("online", "pca", "none"),
        ("online", "random", "batch"),
        ("batch", "sample", "none"),
    ],
)
def test_the_memory_estimate_covers_the_measured_peak(dtype, algorithm, init, finish):
    # The estimate was half the peak: a map that passed the check was killed by the OS instead.
    data = np.random.default_rng(0).random((500, 3))
    som = SOM((400, 300), dtype=dtype, algorithm=algorithm, init=init, finish=finish, sigma=2.0,
              seed=0, verbose=False)  # fmt: skip
    som.train(data[:20], 2)  # compiled outside the measurement
    tracemalloc.start()
    try:
        som.train(data, 2)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    itemsize = np.dtype(dtype).itemsize
    estimate = _training.peak_bytes(400 * 300, 3, itemsize, som.settings_, 500)
    # numba's allocations (the online kernel's scratch) are not traced
    online_only = algorithm == "online" and finish == "none"
    untraced = _training.ONLINE_CELL_SCRATCH * itemsize * 400 * 300 if online_only else 0
    # the estimate counts the exact search's block of products in float64, their widest dtype;
    # these data's are float32 (_bmu_search.CentredProducts), half of it
    narrower = 0 if online_only else 4 * _bmu_search.block_rows(500, 400 * 300) * 400 * 300
    assert peak <= estimate <= 2 * peak + untraced + narrower


@pytest.mark.parametrize("metric", ["euclidean", "cosine", "manhattan"])
def test_the_exact_search_stays_within_its_memory_estimate(metric):
    # Cosine products are float64: with a new product array per block, two blocks were alive at
    # once and the search took 75 MB here against an estimate of 53 MB.
    rng = np.random.default_rng(0)
    lattice, data = rng.random((400, 300, 3)), rng.random((500, 3))
    find_bmus(data[:5], lattice, metric=metric)  # compiled outside the measurement
    tracemalloc.start()
    try:
        find_bmus(data, lattice, metric=metric)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= _bmu_search.search_bytes(500, 400 * 300, 3, 1)


def test_lattice_too_large_for_memory_is_refused_up_front():
    with pytest.raises(ValueError, match=r"som_size|lattice.*bytes"):
        SOM((200_000, 200_000), verbose=False).train(np.ones((2, 64)), 1)
    with pytest.raises(ValueError, match="3 bytes"):
        check_memory(3, "something", available=2)


def test_plot_rejects_non_matrix():
    with pytest.raises(ValueError, match="um"):
        plot_u_matrix(np.ones(3))


@pytest.mark.parametrize(
    "data",
    [
        [[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]],
        np.arange(6).reshape(3, 2),
        np.arange(6, dtype=np.float32).reshape(3, 2),
        np.asfortranarray(np.random.default_rng(0).random((3, 2))),
        np.random.default_rng(0).random((6, 4))[::2, 1:3],
        np.array([[True, False], [False, True]]),
    ],
    ids=["list", "int", "float32", "fortran", "strided", "bool"],
)
def test_accepted_input_kinds_and_callers_arrays_untouched(data):
    before = np.array(data, copy=True)
    lattice = SOM((2, 3), seed=0, verbose=False).train(data, 50, normalize=True)
    assert lattice.shape == (2, 3, 2)
    assert find_bmus(data, lattice).shape == (len(before), 2)
    np.testing.assert_array_equal(np.asarray(data), before)
