"""The decay schedules: named formulas, callables, their checks, and training with them."""

import math

import naive
import numpy as np
import pytest
from conftest import TOLERANCES

from gpusom import SOM
from gpusom.schedules import DECAYS, INITS, initial_codebook, sample_order, schedule

T = 50


@pytest.mark.parametrize("decay", DECAYS)
@pytest.mark.parametrize(("start", "end"), [(5.0, 0.5), (0.5, 0.02), (1.0, 3.0)])
def test_named_decays_run_from_start_to_end(decay, start, end):
    values = schedule(decay, start, end, np.arange(T), T, "sigma_decay", True)
    assert values[0] == pytest.approx(start, rel=1e-12)
    assert values[-1] == pytest.approx(end, rel=1e-12)
    steps = np.diff(values)
    assert (steps < 0).all() if end < start else (steps > 0).all()


def test_named_decays_follow_their_formulas():
    t = np.arange(T)
    f = t / (T - 1)
    expected = {
        "exponential": 4.0 * (0.5 / 4.0) ** f,
        "linear": 4.0 + (0.5 - 4.0) * f,
        "inverse": 4.0 / (1 + f * (4.0 / 0.5 - 1)),
        "power": 4.0 * (1.0 + t) ** -(math.log(4.0 / 0.5) / math.log(T)),
    }
    for decay, values in expected.items():
        got = schedule(decay, 4.0, 0.5, t, T, "sigma_decay", True)
        np.testing.assert_allclose(got, values, rtol=1e-12, err_msg=decay)


def test_a_slice_of_steps_gets_the_values_of_the_whole_run():
    whole = schedule("inverse", 3.0, 0.2, np.arange(T), T, "sigma_decay", True)
    part = schedule("inverse", 3.0, 0.2, np.arange(20, 30), T, "sigma_decay", True)
    np.testing.assert_array_equal(part, whole[20:30])


def test_callables_on_arrays_and_on_single_steps():
    t = np.arange(T)
    vectorised = schedule(lambda t, total: 2.0 - t / total, 0, 0, t, T, "sigma_decay", True)
    scalar_only = schedule(
        lambda t, total: math.exp(-t / total), 0, 0, t, T, "learning_rate_decay", False
    )
    np.testing.assert_allclose(vectorised, 2.0 - t / T)
    np.testing.assert_allclose(scalar_only, np.exp(-t / T))


@pytest.mark.parametrize(
    ("function", "positive", "message"),
    [
        (lambda t, total: 1.0 - t / 10, True, r"sigma_decay returned 0\.0 at step 10"),
        (lambda t, total: np.where(t == 7, np.nan, 1.0), True, "at step 7: it must give finite"),
        (lambda t, total: -0.1 + 0 * t, False, r"values in \[0, 1\]"),
        (lambda t, total: 1.5 + 0 * t, False, r"returned 1\.5 at step 0: .* in \[0, 1\]"),
    ],
)
def test_bad_callable_values_are_named(function, positive, message):
    name = "sigma_decay" if positive else "learning_rate_decay"
    with pytest.raises(ValueError, match=message):
        schedule(function, 0, 0, np.arange(T), T, name, positive)


@pytest.mark.parametrize(
    "function",
    [lambda: 1.0, lambda t, total: "a", lambda t, total: 1 + 1j, lambda t, total: t * (1 + 0j)],
)
def test_a_callable_that_is_no_schedule_is_a_type_error(function):
    with pytest.raises(TypeError, match="sigma_decay must map"):
        schedule(function, 0, 0, np.arange(3), 3, "sigma_decay", True)


@pytest.mark.parametrize("algorithm", ["online", "batch"])
@pytest.mark.parametrize("neighborhood", ["gaussian", "mexican_hat"])
def test_a_radius_decaying_towards_zero_trains_as_a_best_unit_only_radius(
    rng, algorithm, neighborhood
):
    # At 0.1 (a window of 0.2 cells at truncate 2) only the best unit moves, as at 1e-300,
    # whose square underflows: that was a ZeroDivisionError (or NaN) in the kernels.
    data = rng.random((30, 3))

    def train(small):
        som = SOM((3, 4), algorithm=algorithm, neighborhood=neighborhood, seed=0, verbose=False)
        som.sigma_decay = lambda t, total: np.where(t < 5, 1.5, small)
        return som.train(data, 20)

    tiny = train(1e-300)
    assert np.isfinite(tiny).all()
    np.testing.assert_array_equal(tiny, train(0.1))


def test_unknown_decay_names_list_the_choices(rng):
    with pytest.raises(ValueError, match="sigma_decay must be one of 'exponential', 'linear'"):
        SOM((3, 3), sigma_decay="cosine", verbose=False).train(rng.random((5, 2)), 3)


@pytest.mark.parametrize("neighborhood", ["triangle", "mexican_hat"])
@pytest.mark.parametrize(("sigma_decay", "lr_decay"), [("linear", "inverse"), ("power", "exp")])
def test_som_trains_with_any_schedule_as_the_oracle(rng, neighborhood, sigma_decay, lr_decay):
    """SOM.train = initial codebook, host-side order and schedules, then the oracle's steps."""
    rows, cols, steps = 4, 5, 200
    data = rng.random((25, 3))
    lr_fn = (lambda t, total: 0.5 * np.exp(-3.0 * t / total)) if lr_decay == "exp" else lr_decay
    som = SOM(
        (rows, cols),
        sigma=2.0,
        sigma_end=0.5,
        learning_rate=0.4,
        learning_rate_end=0.05,
        sigma_decay=sigma_decay,
        learning_rate_decay=lr_fn,
        neighborhood=neighborhood,
        dtype="float64",
        seed=3,
        verbose=False,
        backend="cpu",
        finish="none",
    )
    lattice = som.train(data, steps)
    gen = np.random.default_rng(3)
    codebook = initial_codebook(data, rows * cols, cols, INITS["random"], gen)
    order = sample_order(gen, len(data), steps)
    t = np.arange(steps)
    sigmas = schedule(sigma_decay, 2.0, 0.5, t, steps, "sigma_decay", True)
    lrs = schedule(lr_fn, 0.4, 0.05, t, steps, "learning_rate_decay", False)
    expected, _ = naive.online_som(
        codebook, data, order, sigmas, lrs, rows, cols, False, neighborhood, som.truncate
    )
    np.testing.assert_allclose(lattice.reshape(-1, 3), expected, **TOLERANCES[np.float64])


def test_named_decays_are_stored_and_a_callable_cannot_be(rng, tmp_path):
    data = rng.random((20, 3))
    som = SOM((3, 4), sigma_decay="linear", learning_rate_decay="inverse", seed=0, verbose=False)
    som.train(data, 100, until=40)
    loaded = SOM.load(som.save(tmp_path / "m.npz"))
    assert loaded.settings_["sigma_decay"] == "linear"
    np.testing.assert_array_equal(
        loaded.train(data, 100, resume=True), som.train(data, 100, resume=True)
    )
    som.set_params(sigma_decay=lambda t, total: 1.0 + 0 * t).fit(data)
    with pytest.raises(TypeError, match="sigma_decay is a function"):
        som.save(tmp_path / "callable.npz")


def test_a_diverging_mexican_hat_is_an_error_not_a_nan_map(rng):
    data = rng.random((200, 3)).astype(np.float32)
    # gpusom 0.1's schedules (a large final rate): the negative ring overflows
    qe_first = {"sigma_decay": "exponential", "sigma_end": 0.3, "learning_rate_end": 0.2}
    som = SOM((50, 100), seed=0, neighborhood="mexican_hat", **qe_first, verbose=False)
    with pytest.raises(ValueError, match=r"training diverged: .*Mexican hat"):
        som.train(data, 15_000)
    assert not hasattr(som, "lattice_")  # nothing half-trained is kept
    stable = SOM((10, 10), seed=0, neighborhood="mexican_hat", truncate=1.0, verbose=False)
    assert np.isfinite(stable.train(data, 2_000)).all()
