"""The batch SOM (``gpusom._batch``) on every engine, against the plain-numpy oracle."""

import naive
import numpy as np
import pytest
from conftest import TOLERANCES
from engines import ENGINE_NAMES, prepared_engine

from gpusom import SOM, _batch, _training, schedules
from gpusom._math import METRICS, NEIGHBORHOODS, TOPOLOGIES

DTYPES = [np.float32, np.float64]


def clustered(rng, n, dim, dtype):
    """``n`` samples around four centres, so some cells get many samples and some none."""
    centres = rng.normal(size=(4, dim)) * 3.0
    return (centres[rng.integers(0, 4, n)] + rng.normal(size=(n, dim))).astype(dtype)


def run_batch(engine, codebook, data, sigmas, rows, cols, is_torus, neighborhood, truncate,
              topology="rectangular"):  # fmt: skip
    """``engine.train_batch`` on host arrays; the result as a numpy array."""
    xp = engine.xp
    out = engine.train_batch(
        xp.asarray(codebook),
        xp.asarray(data),
        np.asarray(sigmas, dtype=np.float64),
        rows,
        cols,
        is_torus,
        NEIGHBORHOODS[neighborhood],
        truncate,
        TOPOLOGIES[topology],
    )
    return engine.to_numpy(out)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("neighborhood", list(NEIGHBORHOODS))
@pytest.mark.parametrize("is_torus", [False, True])
@pytest.mark.parametrize("topology", list(TOPOLOGIES))
def test_every_engine_matches_the_oracle(engine, rng, topology, is_torus, neighborhood, dtype):
    # 4 x 5: on a torus the first epoch's window (radius 3) is wider than the map, the second's
    # (1.6) wraps around the edges in two runs.
    rows, cols, dim = 4, 5, 3
    data = clustered(rng, 40, dim, dtype)
    codebook = rng.normal(size=(rows * cols, dim)).astype(dtype)
    settings = (rows, cols, is_torus, neighborhood, 2.0, topology)
    # Epoch by epoch from the same codebook: cells whose windows hold the same single source get
    # equal vectors up to rounding, and rounding may then break the next epoch's BMU tie either
    # way.
    for sigma in [1.5, 0.8]:
        got = run_batch(engine, codebook, data, [sigma], *settings)
        expected = naive.batch_som(codebook, data, [sigma], *settings)
        assert got.dtype == dtype and got.shape == codebook.shape
        np.testing.assert_allclose(got, expected, **TOLERANCES[dtype])
        codebook = got


def test_epochs_follow_one_another(engine, rng):
    data = clustered(rng, 40, 3, np.float64)
    codebook = rng.normal(size=(12, 3))
    settings = (3, 4, True, "gaussian", 2.0)
    both = run_batch(engine, codebook, data, [1.2, 0.7], *settings)
    first = run_batch(engine, codebook, data, [1.2], *settings)
    np.testing.assert_array_equal(both, run_batch(engine, first, data, [0.7], *settings))


@pytest.mark.parametrize("dtype", DTYPES)
def test_bmu_sums_of_two_halves_add_up_to_the_whole(engine, rng, dtype):
    xp = engine.xp
    data = xp.asarray(clustered(rng, 50, 4, dtype))
    codebook = xp.asarray(rng.normal(size=(12, 4)).astype(dtype))
    sums, counts = _batch.bmu_sums(engine, data, codebook)
    first = _batch.bmu_sums(engine, data[:23], codebook)
    second = _batch.bmu_sums(engine, data[23:], codebook)
    assert sums.dtype == counts.dtype == np.float64
    assert sums.shape == (12, 4) and counts.shape == (12,)
    np.testing.assert_array_equal(
        engine.to_numpy(counts), engine.to_numpy(first[1]) + engine.to_numpy(second[1])
    )
    np.testing.assert_allclose(
        engine.to_numpy(sums),
        engine.to_numpy(first[0]) + engine.to_numpy(second[0]),
        rtol=1e-12,
        atol=1e-12,
    )
    assert engine.to_numpy(counts).sum() == 50


@pytest.mark.parametrize("neighborhood", list(NEIGHBORHOODS))
@pytest.mark.parametrize("topology", list(TOPOLOGIES))
def test_a_cell_with_no_samples_in_its_window_keeps_its_vector(engine, rng, topology,
                                                                neighborhood):  # fmt: skip
    rows, cols, dim = 6, 7, 3
    codebook = rng.normal(size=(rows * cols, dim)).astype(np.float32)
    # Every sample is a copy of cell 0's vector (plus noise), so only cell 0 has samples.
    data = (codebook[0] + 1e-3 * rng.normal(size=(20, dim))).astype(np.float32)
    got = run_batch(engine, codebook, data, [1.0], rows, cols, False, neighborhood, 1.5, topology)
    radius = 1.0 if neighborhood in ("bubble", "triangle") else 1.5
    # Outside the square |dr|, |dc| <= radius, hence outside the disk too.
    far = naive.grid_distance_sq(rows, cols, 0, False, topology) > 2 * radius * radius
    assert far.sum() > 20
    np.testing.assert_array_equal(got[far], codebook[far])
    assert not np.array_equal(got[0], codebook[0])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("neighborhood", list(NEIGHBORHOODS))
@pytest.mark.parametrize("topology", list(TOPOLOGIES))
def test_a_tiny_sigma_gives_each_cells_mean(engine, rng, topology, neighborhood, dtype):
    rows, cols, dim = 4, 6, 5
    data = clustered(rng, 60, dim, dtype)
    codebook = data[rng.choice(60, rows * cols, replace=False)].copy()
    got = run_batch(engine, codebook, data, [0.1], rows, cols, True, neighborhood, 2.0, topology)
    bmus = np.argmin(naive.all_distances_sq(data, codebook), axis=1)
    expected = codebook.copy()
    for b in np.unique(bmus):
        total = np.zeros(dim)
        for x in data[bmus == b]:  # in sample order, in float64, as the contract says
            total += x
        expected[b] = total / np.count_nonzero(bmus == b)
    np.testing.assert_array_equal(got, expected)


def test_a_mexican_hat_with_a_negative_denominator_keeps_the_vector(engine):
    xp = engine.xp
    rows, cols, dim = 1, 7, 2
    codebook = np.arange(rows * cols * dim, dtype=np.float64).reshape(-1, dim)
    sums = np.zeros((rows * cols, dim))
    counts = np.zeros(rows * cols)
    sums[3], counts[3] = [6.0, -4.0], 2.0
    got = engine.to_numpy(
        _batch.smooth(
            engine,
            xp.asarray(sums),
            xp.asarray(counts),
            xp.asarray(codebook),
            1.0,
            rows,
            cols,
            False,
            NEIGHBORHOODS["mexican_hat"],
            3.0,
            TOPOLOGIES["rectangular"],
        )
    )
    # h = 0 at distance 1 and negative at 2 and 3: only the source cell itself moves.
    np.testing.assert_array_equal(got[3], [3.0, -2.0])
    others = np.arange(rows * cols) != 3
    np.testing.assert_array_equal(got[others], codebook[others])


def test_no_epochs_return_the_codebook(engine, rng):
    codebook = rng.normal(size=(6, 2))
    got = run_batch(engine, codebook, rng.normal(size=(5, 2)), [], 2, 3, False, "gaussian", 2.0)
    np.testing.assert_array_equal(got, codebook)


def closing_settings(rows, cols, **params):
    """The run settings of an online run with the closing step, for ``_training.closing_step``:
    its radius falls linearly from 3 to 1.2 cells, so the step's radius is 1.2."""
    som = SOM((rows, cols), finish="batch", sigma=3.0, sigma_end=1.2, sigma_decay="linear",
              truncate=2.0, **params)  # fmt: skip
    return schedules.settings(som.get_params(), 0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("neighborhood", list(NEIGHBORHOODS))
@pytest.mark.parametrize("is_torus", [False, True])
@pytest.mark.parametrize("topology", list(TOPOLOGIES))
def test_the_closing_step_of_every_engine_matches_the_oracle(engine, rng, topology, is_torus,
                                                             neighborhood, dtype):  # fmt: skip
    # Fewer samples than cells: most windows hold few samples, where the prior matters most.
    rows, cols, dim = 4, 6, 3
    data = clustered(rng, 15, dim, dtype)
    codebook = rng.normal(size=(rows * cols, dim)).astype(dtype)
    settings = closing_settings(
        rows, cols, is_torus=is_torus, topology=topology, neighborhood=neighborhood
    )
    got = _training.closing_step(engine, codebook, data, settings, 50)
    expected = naive.closing_step(
        codebook, data, 1.2, rows, cols, is_torus, neighborhood, 2.0, topology
    )
    assert got.dtype == dtype and got.shape == codebook.shape
    np.testing.assert_allclose(got, expected, **TOLERANCES[dtype])


@pytest.mark.parametrize("metric", list(METRICS))
def test_the_closing_step_of_every_engine_means_the_present_values(engine, rng, metric):
    rows, cols, dim = 4, 5, 4
    data = clustered(rng, 30, dim, np.float64)
    data[::3, 1] = np.nan
    data[1::4, 3] = np.nan
    codebook = rng.normal(size=(rows * cols, dim))
    settings = closing_settings(rows, cols, metric=metric, nan_policy="ignore")
    got = _training.closing_step(engine, codebook, data, settings, 80)
    expected = naive.closing_step(
        codebook, data, 1.2, rows, cols, False, "gaussian", 2.0, metric=metric
    )
    np.testing.assert_allclose(got, expected, **TOLERANCES[np.float64])


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_closing_step_moves_a_lone_sample_s_unit_half_way(engine, dtype):
    # Three samples on a 5 x 6 map, each the only one in its unit's window (radius 2 * 0.4
    # cells: no neighbour): each unit moves to the midpoint of its vector and its sample, every
    # other cell keeps its vector.
    rows, cols = 5, 6
    codebook = np.stack(np.divmod(np.arange(rows * cols), cols), axis=1).astype(dtype) * 10
    units = [0, 14, 29]
    data = codebook[units] + np.asarray([[1.0, 2.0], [-3.0, 1.5], [0.25, -0.5]], dtype=dtype)
    assert data.dtype == dtype
    som = SOM((rows, cols), finish="batch", sigma=2.0, sigma_end=0.4)
    settings = schedules.settings(som.get_params(), 0)
    got = _training.closing_step(engine, codebook, data, settings, 100)
    expected = codebook.copy()
    expected[units] = (codebook[units].astype(np.float64) + data.astype(np.float64)) / 2
    np.testing.assert_array_equal(got, expected)


def test_a_zero_prior_is_the_batch_epoch_bit_for_bit(engine, rng):
    xp = engine.xp
    rows, cols, dim = 4, 5, 3
    data = xp.asarray(clustered(rng, 30, dim, np.float32))
    codebook = xp.asarray(rng.normal(size=(rows * cols, dim)).astype(np.float32))
    sums, counts = _batch.bmu_sums(engine, data, codebook)
    for neighborhood in NEIGHBORHOODS.values():
        args = (sums, counts, codebook, 1.3, rows, cols, True, neighborhood, 2.0, 0)
        batch = engine.to_numpy(_batch.smooth(engine, *args))
        assert batch.tobytes() == engine.to_numpy(_batch.smooth(engine, *args, 0.0)).tobytes()
        assert not np.array_equal(batch, engine.to_numpy(_batch.smooth(engine, *args, 1.0)))


@pytest.mark.skipif("cuda" not in ENGINE_NAMES, reason="needs numba's CUDA simulator or a GPU")
@pytest.mark.parametrize(
    ("neighborhood", "topology", "is_torus"),
    [
        ("gaussian", "rectangular", True),
        ("bubble", "rectangular", False),
        ("mexican_hat", "rectangular", True),
        ("gaussian", "hexagonal", True),
        ("triangle", "hexagonal", False),
    ],
)
def test_cpu_and_cuda_agree_in_float64(monkeypatch, rng, neighborhood, topology, is_torus):
    rows, cols, dim = 6, 7, 4
    data = clustered(rng, 100, dim, np.float64)
    codebook = rng.normal(size=(rows * cols, dim))
    cpu, cuda = (next(prepared_engine(name, monkeypatch)) for name in ("cpu", "cuda"))
    settings = (rows, cols, is_torus, neighborhood, 2.5, topology)
    for sigma in [2.0, 1.0]:  # epoch by epoch, as in the oracle test
        expected = run_batch(cpu, codebook, data, [sigma], *settings)
        got = run_batch(cuda, codebook, data, [sigma], *settings)
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
        codebook = expected
