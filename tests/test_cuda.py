"""The CUDA backend against the CPU backend and the oracle, in numba's simulator or on a GPU.

The simulator is slow (a Python thread per CUDA thread), so maps here are tiny and blocks hold
32 threads: an 8x8 map then spans two blocks (the global BMU stage) and one block owns two cells
per thread (the grid-stride loops). ``GPUSOM_TEST_CUDASIM=0`` runs the same tests on a GPU.
"""

import importlib
import importlib.util
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import naive
import numpy as np
import pytest
from conftest import TOLERANCES
from engines import SIMULATOR, needs_cuda, needs_device, on_device, to_numpy, train_with
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numba import cuda

import gpusom
from gpusom import _backend
from gpusom._errors import GPUFallbackWarning
from gpusom._math import NEIGHBORHOODS
from gpusom.cuda import kernels as cuda_kernels
from gpusom.schedules import exponential_decay

REPO = Path(__file__).resolve().parent.parent
CPU = _backend.cpu_engine()


@pytest.fixture
def gpu_arrays(gpu):
    """The CUDA engine where its arrays work: in the simulator, or on a GPU with cupy."""
    if not SIMULATOR:
        pytest.importorskip("cupy")
    return gpu


CASES = {
    # id: (driver, rows, cols, dim, is_torus, dtype, sigma at the first step, neighbourhood)
    "step-plane-f32": ("per_step", 4, 5, 11, False, np.float32, 2.0, "gaussian"),
    "step-torus-f64": ("per_step", 3, 4, 5, True, np.float64, 1.5, "gaussian"),
    "step-2blocks-torus-f32": ("per_step", 8, 8, 2, True, np.float32, 3.0, "gaussian"),
    "step-2blocks-plane-f64": ("per_step", 8, 8, 9, False, np.float64, 3.0, "gaussian"),
    "step-1xN-torus-f64": ("per_step", 1, 7, 3, True, np.float64, 2.0, "gaussian"),
    "step-wide-window-f32": ("per_step", 2, 3, 3, False, np.float32, 20.0, "gaussian"),
    "persistent-torus-f32": ("persistent", 5, 6, 3, True, np.float32, 2.0, "gaussian"),
    "persistent-plane-f64": ("persistent", 6, 5, 10, False, np.float64, 2.0, "gaussian"),
    "persistent-1xN-f32": ("persistent", 1, 8, 3, False, np.float32, 2.0, "gaussian"),
    "persistent-gridstride-f32": ("persistent", 8, 8, 3, False, np.float32, 3.0, "gaussian"),
    "persistent-wide-torus-f64": ("persistent", 3, 4, 3, True, np.float64, 20.0, "gaussian"),
    "persistent-bubble-torus-f32": ("persistent", 4, 4, 3, True, np.float32, 2.0, "bubble"),
}


def random_run(rng, rows, cols, dim, dtype, steps, n_samples, sigma, sigma_end):
    """Random codebook and data, and the leading arguments of ``train_with`` for a short run."""
    data = rng.random((n_samples, dim)).astype(dtype)
    codebook = rng.random((rows * cols, dim)).astype(dtype)
    args = (
        rng.integers(0, len(data), steps),
        exponential_decay(sigma, sigma_end, np.arange(steps), steps),
        exponential_decay(0.5, 0.05, np.arange(steps), steps),
        rows,
        cols,
    )
    return codebook, data, args


@needs_cuda
@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_training_matches_cpu_and_oracle(gpu, monkeypatch, rng, case):
    driver, rows, cols, dim, is_torus, dtype, sigma, neighborhood = CASES[case]
    monkeypatch.setattr(gpu.config, "DRIVER", driver)
    codebook, data, args = random_run(rng, rows, cols, dim, dtype, 16, 30, sigma, 0.5)
    args = (*args, is_torus, neighborhood)
    got, bmus = train_with(gpu, codebook, data, *args)
    expected, expected_bmus = train_with(CPU, codebook, data, *args)
    oracle, oracle_bmus = naive.online_som(codebook, data, *args)
    np.testing.assert_array_equal(bmus, expected_bmus)
    np.testing.assert_array_equal(bmus, oracle_bmus)
    np.testing.assert_allclose(got, expected, **TOLERANCES[dtype])
    np.testing.assert_allclose(got, oracle, **TOLERANCES[dtype])


@needs_cuda
@pytest.mark.parametrize("topology", ["rectangular", "hexagonal"])
@pytest.mark.parametrize("driver", ["per_step", "persistent"])
def test_cells_past_the_grid_stride_wrap_into_the_next_row(gpu, monkeypatch, rng, driver, topology):
    """One block of 32 threads on a 6x7 lattice: a thread's second cell is 32 cells on, 4 rows
    and 4 columns, so threads in columns 3-6 step past the row's end into the next one (the
    32-bit (row, column) stepping of ``gpusom.cuda.kernels._phase``)."""
    monkeypatch.setattr(gpu.config, "DRIVER", driver)
    monkeypatch.setattr(gpu.config, "MAX_BLOCKS", 1)
    codebook, data, args = random_run(rng, 6, 7, 5, np.float64, 12, 20, 3.0, 0.5)
    args = (*args, False, "gaussian", 3.0, topology)
    got, bmus = train_with(gpu, codebook, data, *args)
    expected, expected_bmus = train_with(CPU, codebook, data, *args)
    np.testing.assert_array_equal(bmus, expected_bmus)
    np.testing.assert_allclose(got, expected, **TOLERANCES[np.float64])


@needs_cuda
@pytest.mark.parametrize("shared_bytes", [63, 64], ids=["global", "shared"])
@pytest.mark.parametrize("driver", ["per_step", "persistent"])
def test_rows_too_wide_for_the_shared_memory_are_read_from_global_memory(
    gpu, monkeypatch, rng, driver, shared_bytes
):
    """The step's two float32 rows of 5 features (padded to 8) take 64 bytes: one byte less in
    ``SHARED_ROWS_BYTES`` and the kernels read them from global memory. Either way they train
    as the CPU does, on complete data (the packed kernels) and with missing values (the general
    ones)."""
    monkeypatch.setattr(gpu.config, "DRIVER", driver)
    monkeypatch.setattr(gpu.config, "SHARED_ROWS_BYTES", shared_bytes)
    codebook, data, args = random_run(rng, 4, 5, 5, np.float32, 10, 15, 2.0, 0.5)
    holes = data.copy()
    holes[[1, 4, 9], [2, 0, 4]] = np.nan
    for values in (data, holes):
        got, bmus = train_with(gpu, codebook, values, *args, True, "gaussian")
        expected, expected_bmus = train_with(CPU, codebook, values, *args, True, "gaussian")
        np.testing.assert_array_equal(bmus, expected_bmus)
        np.testing.assert_allclose(got, expected, **TOLERANCES[np.float32])


#: Batched late steps against plain steps: (rows, cols, dim, is_torus, topology,
#: neighbourhood, sigma at the first step, steps, steps per block).
LATE_CASES = {
    "plane-gaussian": (5, 6, 3, False, "rectangular", "gaussian", 2.0, 12, 5),
    "hex-torus-bubble": (8, 8, 5, True, "hexagonal", "bubble", 2.0, 12, 5),
    "torus-mexican-hat": (6, 6, 2, True, "rectangular", "mexican_hat", 2.0, 12, 5),
    "hex-triangle-window-over-the-map": (3, 4, 3, False, "hexagonal", "triangle", 20.0, 12, 1),
    "hex-torus-one-block": (4, 5, 9, True, "hexagonal", "gaussian", 0.3, 12, 50),
    # 1200 cells: two groups of 32 tiles of 32 cells, the second one partial.
    "two-groups-torus": (40, 30, 2, True, "rectangular", "gaussian", 1.0, 6, 3),
}


def count_calls(monkeypatch, module, name):
    """A list that receives the arguments of every call of ``module.name`` from now on."""
    calls, original = [], getattr(module, name)

    def counted(*args):
        calls.append(args)
        return original(*args)

    monkeypatch.setattr(module, name, counted)
    return calls


@needs_cuda
@pytest.mark.parametrize("case", list(LATE_CASES), ids=list(LATE_CASES))
def test_batched_late_steps_train_as_plain_steps(gpu, monkeypatch, rng, case):
    """Every step batched (``gpusom.cuda.late``): the same BMUs and the same codebook, bit for
    bit, as plain steps, on both lattices, planes and tori, every neighbourhood shape, windows
    from the BMU alone to the whole map, blocks of one step to more than the run."""
    from gpusom.cuda import late

    rows, cols, dim, is_torus, topology, neighborhood, sigma, steps, block = LATE_CASES[case]
    codebook, data, args = random_run(rng, rows, cols, dim, np.float32, steps, 30, sigma, 0.5)
    args = (*args, is_torus, neighborhood, 3.0, topology)
    monkeypatch.setattr(gpu.config, "LATE_STEPS", "never")
    expected, expected_bmus = train_with(gpu, codebook, data, *args)
    monkeypatch.setattr(gpu.config, "LATE_STEPS", "always")
    monkeypatch.setattr(gpu.config, "LATE_BLOCK", block)
    blocks = count_calls(monkeypatch, late, "run_block")
    got, bmus = train_with(gpu, codebook, data, *args)
    assert len(blocks) == -(-steps // block)
    np.testing.assert_array_equal(bmus, expected_bmus)
    np.testing.assert_array_equal(got, expected)


def _measure_each(codebook, data, order, first, out):
    """``out[j, n]``: the plain search's distance of cell ``n`` to ``data[order[first + j]]``."""
    n = cuda.grid(1)
    if n < codebook.shape[1]:
        for j in range(out.shape[0]):
            out[j, n] = cuda_kernels._measure(codebook, np.uint64(n), data[order[first + j]])


@needs_cuda
def test_batched_distances_are_the_plain_search_s_bit_for_bit(gpu, rng):
    """``late_distances`` (four samples per pass) against ``_measure`` (the plain search) on 70
    cells (the last tile partial), 11 features (one padded pass), 7 samples (a partial group of
    four), two blocks striding over three blocks' cells; and the tiles' minimum keys."""
    from gpusom.cuda import late

    measure_each = cuda.jit(_measure_each)
    codebook, values = rng.random((70, 11), np.float32), rng.random((9, 11), np.float32)
    device_codebook, data = gpu.to_device(codebook, values)
    order = cuda.to_device(rng.permutation(9))
    scratch = late.Scratch(7, 70)
    cuda_kernels.late_distances[2, 32](
        device_codebook, data.values, order, 2, scratch.distances, scratch.tile_keys
    )
    expected = cuda.device_array((7, 70), np.float32)
    measure_each[3, 32](device_codebook, data.values, order, 2, expected)
    distances = scratch.distances.copy_to_host()
    np.testing.assert_array_equal(distances, expected.copy_to_host())
    keys = (distances.view(np.int32).astype(np.int64) << 32) | np.arange(70)
    tiles = [keys[:, t : t + 32].min(axis=1) for t in range(0, 70, 32)]
    np.testing.assert_array_equal(scratch.tile_keys.copy_to_host(), np.stack(tiles, axis=1))


@needs_cuda
def test_plain_and_batched_stretches_of_one_run_train_as_plain_steps(gpu, monkeypatch, rng):
    """A run that switches between plain and batched steps, and back, in blocks of 1 to 3."""
    from gpusom.cuda import late

    codebook, data, args = random_run(rng, 6, 5, 3, np.float32, 11, 20, 2.0, 0.5)
    args = (*args, False, "gaussian")
    monkeypatch.setattr(gpu.config, "LATE_STEPS", "never")
    expected, expected_bmus = train_with(gpu, codebook, data, *args)
    plan = np.array([0, 0, 2, 2, 2, 0, 3, 1, 2, 1, 0])
    monkeypatch.setattr(late, "plan", lambda *_: plan)
    blocks = count_calls(monkeypatch, late, "run_block")
    got, bmus = train_with(gpu, codebook, data, *args)
    assert [(first, stop) for _, _, first, stop, _ in blocks] == [(2, 4), (4, 5), (6, 9), (9, 10)]
    np.testing.assert_array_equal(bmus, expected_bmus)
    np.testing.assert_array_equal(got, expected)


@needs_cuda
@pytest.mark.parametrize(
    ("dtype", "holes"), [(np.float64, False), (np.float32, True)], ids=["float64", "missing"]
)
def test_batched_late_steps_take_only_float32_euclidean_complete_runs(
    gpu, monkeypatch, rng, dtype, holes
):
    from gpusom.cuda import late

    monkeypatch.setattr(gpu.config, "LATE_STEPS", "always")
    blocks = count_calls(monkeypatch, late, "run_block")
    codebook, data, args = random_run(rng, 4, 5, 3, dtype, 6, 10, 2.0, 0.5)
    if holes:
        data[2, 1] = np.nan
    got, bmus = train_with(gpu, codebook, data, *args, False, "gaussian")
    expected, expected_bmus = train_with(CPU, codebook, data, *args, False, "gaussian")
    assert blocks == []
    np.testing.assert_array_equal(bmus, expected_bmus)
    np.testing.assert_allclose(got, expected, **TOLERANCES[dtype])


def late_plan(sigmas, rows, cols, width, free_bytes=100 * 2**30, neighborhood="gaussian"):
    from gpusom.cuda import late

    return late.plan(sigmas, NEIGHBORHOODS[neighborhood], 3.0, 0, rows, cols, width, free_bytes)


def test_the_cost_model_batches_only_the_late_steps_of_large_maps(gpu):
    """A 1000x1000x64 map batches the steps of small windows, none of the early ones; the
    walk-through's map (5,000 cells) none."""
    steps = np.arange(100_000)
    sigmas = exponential_decay(250.0, 1.0, steps, steps.size)
    blocks = late_plan(sigmas, 1000, 1000, 64)
    assert set(np.unique(blocks)) <= {0, 16, 32, 64, 128, 256}
    assert blocks[0] == 0 and blocks[-1] > 0
    # The window shrinks: batched steps are one final stretch, in blocks that grow with it.
    switch = np.argmax(blocks > 0)
    assert (blocks[switch:] > 0).all() and 0.5 < switch / steps.size < 0.95
    assert (np.diff(blocks[switch:]) >= 0).all() and blocks[-1] > blocks[switch]
    assert not late_plan(exponential_decay(25.0, 1.0, steps, steps.size), 50, 100, 4).any()


@pytest.mark.parametrize("topology", [0, 1], ids=["rectangular", "hexagonal"])
@pytest.mark.parametrize("neighborhood", ["gaussian", "bubble"])
def test_the_cost_model_counts_the_cells_the_walk_visits(gpu, topology, neighborhood):
    from gpusom.cuda import late

    sigmas = np.array([1e-3, 0.3, 0.5, 1.0, 1.2, 2.5, 3.4, 7.0, 40.0, 1e300])
    cells = late.window_cells(sigmas, NEIGHBORHOODS[neighborhood], 2.5, topology, 30, 20)
    radii = sigmas * (2.5 if neighborhood == "gaussian" else 1.0)
    boxes = [cuda_kernels.window_box(r, topology, 30, 20) for r in radii]
    np.testing.assert_array_equal(cells, [rows * cols for rows, cols in boxes])


def test_the_cost_model_fits_the_blocks_in_a_quarter_of_the_free_memory(gpu):
    sigmas = np.full(1000, 0.5)
    free = 4 * 4 * 1_000_000 * 40  # a quarter holds the distances of 40 steps
    assert (late_plan(sigmas, 1000, 1000, 64, free_bytes=free) == 32).all()
    assert not late_plan(sigmas, 1000, 1000, 64, free_bytes=free // 40).any()


def test_bad_late_step_settings_are_named(gpu, monkeypatch):
    monkeypatch.setattr(gpu.config, "LATE_STEPS", "sometimes")
    with pytest.raises(ValueError, match=r"LATE_STEPS must be 'auto', 'always' or 'never'"):
        late_plan(np.ones(3), 10, 10, 4)
    monkeypatch.setattr(gpu.config, "LATE_STEPS", "always")
    monkeypatch.setattr(gpu.config, "LATE_BLOCK", 0)
    with pytest.raises(ValueError, match=r"LATE_BLOCK must be positive; got 0"):
        late_plan(np.ones(3), 10, 10, 4)


def test_stretches_split_batched_runs_into_blocks(gpu):
    from gpusom.cuda import late

    blocks = np.array([0, 0, 2, 2, 2, 2, 2, 0, 4])
    assert list(late.stretches(blocks)) == [
        (0, 2, False),
        (2, 4, True),
        (4, 6, True),
        (6, 7, True),
        (7, 8, False),
        (8, 9, True),
    ]


def test_lattice_axes_of_2_31_cells_are_refused(gpu):
    state = gpu.to_device(np.zeros((4, 2), np.float32), np.zeros((3, 2), np.float32))
    one = np.ones(1)
    with pytest.raises(ValueError, match=r"at most 2147483647 rows and columns"):
        gpu.train_online(*state, np.zeros(1, np.int64), one, one, 1, 2**31, False, 0, 3.0)


@given(
    rows=st.integers(1, 5),
    cols=st.integers(1, 6),
    dim=st.integers(1, 10),
    is_torus=st.booleans(),
    dtype=st.sampled_from([np.float32, np.float64]),
    driver=st.sampled_from(["per_step", "persistent", "batched"]),
    neighborhood=st.sampled_from(sorted(NEIGHBORHOODS)),
    topology=st.sampled_from(["rectangular", "hexagonal"]),
    sigma=st.floats(0.3, 8.0),
    truncate=st.floats(0.5, 3.0),
    seed=st.integers(0, 2**32 - 1),
)
@settings(
    max_examples=20,
    deadline=None,
    # The fixture only switches the backend's launch settings, the same for every example.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
def test_cuda_training_agrees_with_the_cpu(
    gpu, rows, cols, dim, is_torus, dtype, driver, neighborhood, topology, sigma, truncate, seed
):
    """Any small map, topology, window and dtype: the same BMU of every step, codebooks within
    tolerance. ``batched``: every float32 step in blocks of 4 (``gpusom.cuda.late``)."""
    if is_torus and topology == "hexagonal":
        rows += rows % 2  # a hexagonal torus has an even number of rows
    rng = np.random.default_rng(seed)
    codebook, data, args = random_run(rng, rows, cols, dim, dtype, 6, 12, sigma, 0.3)
    args = (*args, is_torus, neighborhood, truncate, topology)
    with pytest.MonkeyPatch.context() as patch:
        if driver == "batched":
            patch.setattr(gpu.config, "LATE_STEPS", "always")
            patch.setattr(gpu.config, "LATE_BLOCK", 4)
        else:
            patch.setattr(gpu.config, "DRIVER", driver)
        got, bmus = train_with(gpu, codebook, data, *args)
    expected, expected_bmus = train_with(CPU, codebook, data, *args)
    np.testing.assert_array_equal(bmus, expected_bmus)
    np.testing.assert_allclose(got, expected, **TOLERANCES[dtype])


@pytest.mark.parametrize(
    ("driver", "dtype", "packed"),
    [
        ("per_step", np.float32, True),
        ("per_step", np.float32, False),  # as a float32 map of more than 2^32 cells would
        ("per_step", np.float64, False),
        ("persistent", np.float64, False),
        ("batched", np.float32, True),  # batched late steps: the cells in different tiles
    ],
)
def test_ties_go_to_the_lowest_index(gpu, monkeypatch, driver, dtype, packed):
    """Two equal best cells in different blocks: every step picks the lower index."""
    if driver == "batched":
        monkeypatch.setattr(gpu.config, "LATE_STEPS", "always")
        monkeypatch.setattr(gpu.config, "LATE_BLOCK", 4)
    else:
        monkeypatch.setattr(gpu.config, "DRIVER", driver)
    if not packed:
        monkeypatch.setattr(importlib.import_module("gpusom.cuda"), "PACKED_MAX_CELLS", 0)
    rows, cols, steps = 8, 8, 6
    data = np.full((4, 3), 0.5)
    codebook = np.full((rows * cols, 3), 9.0, dtype=dtype)
    codebook[[50, 20]] = 0.25  # cell 20 in the first block of 32 threads, 50 in the second
    sigmas = np.ones(steps)
    lrs = np.zeros(steps)  # nothing moves, so the tie stays exact
    got, bmus = train_with(
        gpu, codebook, data, np.arange(steps) % 4, sigmas, lrs, rows, cols, False, "gaussian"
    )
    np.testing.assert_array_equal(bmus, np.full(steps, 20))
    np.testing.assert_array_equal(got, codebook)


@pytest.mark.parametrize("k", [1, 2])
def test_find_bmus_matches_cpu_and_brute_force(gpu_arrays, rng, k):
    # Far from the origin, where an uncentred float32 norm expansion picks wrong BMUs.
    data = 100.0 + rng.random((12, 5))
    codebook = 100.0 + rng.random((10, 5))
    codebook[7] = codebook[2]  # an exact tie: the lower index wins
    data[0] = codebook[2]
    index, distance = gpu_arrays.find_bmus(data, codebook, k)
    expected_index, expected_distance = CPU.find_bmus(data, codebook, k)
    np.testing.assert_array_equal(gpu_arrays.to_numpy(index), expected_index)
    np.testing.assert_allclose(
        gpu_arrays.to_numpy(distance), expected_distance, rtol=1e-12, atol=1e-12
    )
    brute = naive.all_distances_sq(data, codebook)
    np.testing.assert_array_equal(gpu_arrays.to_numpy(index)[:, 0], brute.argmin(axis=1))


def test_find_bmus_of_a_single_cell_has_no_second_unit(gpu_arrays, rng):
    index, distance = gpu_arrays.find_bmus(rng.random((3, 2)), rng.random((1, 2)), 2)
    np.testing.assert_array_equal(gpu_arrays.to_numpy(index)[:, 1], -1)
    assert np.isinf(gpu_arrays.to_numpy(distance)[:, 1]).all()


def test_analysis_of_device_arrays_matches_cpu(rng, gpu_arrays):
    data = rng.random((10, 3))
    lattice = rng.random((2, 3, 3))
    expected = {
        "bmus": gpusom.find_bmus(data, lattice),
        "qe": gpusom.quantization_error(data, lattice),
        "te": gpusom.topographic_error(data, lattice, is_torus=True),
        "projection": gpusom.project_on_lattice(data, lattice, verbose=False),
        "closest": gpusom.lattice_closest_vectors(data, lattice, verbose=False),
        "activations": gpusom.lattice_activations(data, lattice, exponent=2, verbose=False),
    }
    data, lattice = on_device(data), on_device(lattice)
    bmus = gpusom.find_bmus(data, lattice)
    assert isinstance(bmus, gpu_arrays.xp.ndarray)  # device in, device out
    np.testing.assert_array_equal(to_numpy(bmus), expected["bmus"])
    assert gpusom.quantization_error(data, lattice) == pytest.approx(expected["qe"], rel=1e-12)
    assert gpusom.topographic_error(data, lattice, is_torus=True) == expected["te"]
    projection = gpusom.project_on_lattice(data, lattice, verbose=False)
    assert {cell: len(items) for cell, items in projection.items()} == {
        cell: len(items) for cell, items in expected["projection"].items()
    }
    closest = gpusom.lattice_closest_vectors(data, lattice, verbose=False)
    for cell, vector in expected["closest"].items():
        np.testing.assert_array_equal(closest[cell], vector)
    activations = gpusom.lattice_activations(data, lattice, exponent=2, verbose=False)
    np.testing.assert_allclose(to_numpy(activations), expected["activations"], atol=1e-12)
    with pytest.raises(ValueError, match="NaN or infinite"):
        gpusom.find_bmus(on_device(np.full((2, 3), np.nan)), lattice)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"neighborhood": "mexican_hat", "sigma_decay": "linear", "learning_rate_decay": "power"},
        {"neighborhood": "triangle", "sigma_decay": "inverse", "sigma": 3.0},
    ],
)
def test_som_trains_on_cuda_like_the_cpu(gpu, rng, options):
    data = rng.random((25, 3))
    settings = {"som_size": (3, 4), "is_torus": True, "seed": 3, "verbose": False, **options}
    cuda_som = gpusom.SOM(**settings, backend="cuda")
    got = cuda_som.train(data, 20)
    expected = gpusom.SOM(**settings, backend="cpu").train(data, 20)
    assert cuda_som.backend_ == "cuda"
    assert isinstance(got, np.ndarray)
    assert cuda_som.lattice_device is None
    np.testing.assert_allclose(got, expected, **TOLERANCES[np.float32])


def test_device_data_makes_auto_train_on_the_gpu(rng, gpu_arrays):
    som = gpusom.SOM((2, 3), seed=0, verbose=False)
    lattice = som.train(on_device(rng.random((15, 2))), 12)
    assert som.backend_ == "cuda"
    assert isinstance(lattice, np.ndarray)
    assert isinstance(som.lattice_device, gpu_arrays.xp.ndarray)
    np.testing.assert_array_equal(to_numpy(som.lattice_device), lattice)


def test_device_memory_is_checked_before_allocating(gpu, monkeypatch):
    monkeypatch.setattr(importlib.import_module("gpusom.cuda"), "free_memory", lambda: 1000)
    codebook = np.zeros((100, 3), np.float32)
    with pytest.raises(ValueError, match=r"needs 1600 bytes .* only 1000 bytes"):
        gpu.to_device(codebook, np.zeros((0, 3)))


def test_bad_launch_settings_are_named(gpu, monkeypatch):
    codebook, data = gpu.to_device(np.zeros((4, 2), np.float32), np.zeros((3, 2)))
    args = (codebook, data, np.zeros(2, np.int64), np.ones(2), np.ones(2), 2, 2, False, 0, 3.0)
    monkeypatch.setattr(gpu.config, "DRIVER", "warp-speed")
    with pytest.raises(ValueError, match="'persistent', 'per_step'"):
        gpu.train_online(*args)
    monkeypatch.setattr(gpu.config, "THREADS_PER_BLOCK", 4096)
    with pytest.raises(ValueError, match="THREADS_PER_BLOCK"):
        gpu.train_online(*args)


def run_without_simulator(script):
    """Run ``script`` in a fresh interpreter with no CUDA simulator; skip where a GPU exists."""
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="0", PYTHONPATH=str(REPO))
    env.pop(_backend.ENV_VAR, None)
    prologue = "import sys\nfrom gpusom import _backend\n"
    prologue += "if _backend.cuda_device_present():\n    print('DEVICE')\n    sys.exit(0)\n"
    result = subprocess.run(
        [sys.executable, "-c", prologue + textwrap.dedent(script)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    if result.stdout.strip() == "DEVICE":
        pytest.skip("a CUDA device is present")
    return result.stdout


def test_auto_picks_the_cpu_without_a_device_and_never_imports_cupy():
    out = run_without_simulator(
        """
        import numpy as np
        import gpusom
        assert "cupy" not in sys.modules and "gpusom.cuda" not in sys.modules
        som = gpusom.SOM((3, 4), seed=0, verbose=False)
        som.train(np.random.default_rng(0).random((20, 3)), 10)
        print(som.backend_, "cupy" in sys.modules)
        """
    )
    assert out.split() == ["cpu", "False"]


def test_auto_on_a_large_map_without_a_driver_never_imports_numba_cuda():
    """The device check of a large map costs a failed ``dlopen``, not numba.cuda's import."""
    out = run_without_simulator(
        """
        import numpy as np
        import gpusom
        if _backend.cuda_driver_loads():
            print("DRIVER")
            sys.exit(0)
        som = gpusom.SOM((100, 100), seed=0, verbose=False)  # 10**5 elements: the GPU's size
        som.train(np.random.default_rng(0).random((50, 10)), 10)
        print(som.backend_, "numba.cuda" in sys.modules)
        """
    )
    if out.strip() == "DRIVER":
        pytest.skip("the CUDA driver library is here: numba decides")
    assert out.split() == ["cpu", "False"]


@pytest.mark.parametrize(
    ("opens", "env", "expected"),
    [(set(), "", False), ({"libcuda.so.1"}, "", True), ({"/usr/lib64/libcuda.so"}, "", True),
     (set(), "/opt/driver/libcuda.so", True)],
)  # fmt: skip
def test_the_driver_check_tries_numba_cudas_names(monkeypatch, opens, env, expected):
    tried = []

    def loader(path):
        tried.append(path)
        if path not in opens:
            raise OSError(f"{path}: cannot open shared object file")

    monkeypatch.setattr(_backend.sys, "platform", "linux")
    monkeypatch.setattr(_backend.ctypes, "CDLL", loader)
    monkeypatch.setenv("NUMBA_CUDA_DRIVER", env)
    _backend.cuda_driver_loads.cache_clear()
    try:
        assert _backend.cuda_driver_loads() is expected
    finally:
        _backend.cuda_driver_loads.cache_clear()
    if not env:
        names = ["libcuda.so", "libcuda.so.1", "/usr/lib/libcuda.so", "/usr/lib/libcuda.so.1"]
        names += ["/usr/lib64/libcuda.so", "/usr/lib64/libcuda.so.1"]
        assert tried == names[: len(tried)]
        assert len(tried) == (names.index(min(opens)) + 1 if opens else len(names))


def test_cuda_without_a_device_says_what_to_install():
    out = run_without_simulator(
        """
        import numpy as np
        import gpusom
        try:
            gpusom.SOM((3, 4), backend="cuda", verbose=False).train(np.zeros((5, 2)), 3)
        except _backend.BackendUnavailableError as error:
            print(error)
        """
    )
    assert "no CUDA driver or device" in out
    assert "gpusom[cuda12]" in out


@pytest.mark.parametrize(
    ("blocks_needed", "configured", "expected"), [(50, None, 10), (50, 4, 4), (3, None, 3)]
)
def test_persistent_grid_fits_the_cooperative_limit(
    monkeypatch, blocks_needed, configured, expected
):
    """The persistent launch never exceeds what the device runs at once (its barrier would hang).

    A stand-in kernel plays the device, whose limit here is 1000 threads; the simulator always
    launches one block, so this is the only place the sizing runs without a GPU.
    """
    from gpusom import cuda as cuda_backend

    launches = []

    class Kernel:
        def typeof_pyval(self, value):
            return type(value).__name__

        def compile(self, argtypes):
            assert argtypes == ("int", "float")
            return types.SimpleNamespace(
                max_cooperative_grid_blocks=lambda threads, shared: 1000 // threads
            )

        def __getitem__(self, launch):
            return lambda *args: launches.append((launch, args))

    monkeypatch.setattr(cuda_backend, "SIMULATOR", False)
    monkeypatch.setattr(cuda_backend.kernels, "train_persistent", Kernel())
    monkeypatch.setattr(cuda_backend.config, "PERSISTENT_BLOCKS", configured)
    cuda_backend._persistent((7, 0.5), "pairs", 100, blocks_needed, 64)
    assert launches == [((expected, 100, 0, 64), (7, 0.5))]


@needs_cuda
def test_gpu_crossover_table(gpu, monkeypatch, tmp_path):
    """The crossover stage of ci/gpu-check.sh writes one row per map shape, on tiny maps."""
    spec = importlib.util.spec_from_file_location("gpu_bench", REPO / "benchmarks/gpu_bench.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    monkeypatch.setattr(gpu.config, "DRIVER", gpu.config.DRIVER)  # the script sets both
    monkeypatch.setattr(gpu.config, "THREADS_PER_BLOCK", 32)
    monkeypatch.setattr(bench, "CROSSOVER_SHAPES", [(2, 3, 3), (3, 2, 4)])
    monkeypatch.setattr(bench, "CROSSOVER_STEPS", (3, 3))
    out = tmp_path / "crossover.md"
    bench.main(["--crossover", "--out", str(out)])
    rows = [line.split(" | ") for line in out.read_text().splitlines()[2:]]
    assert [(r[0], r[1]) for r in rows] == [("| 2x3x3", "3"), ("| 3x2x4", "3")]
    for row in rows:
        cpu, cuda, ratio = (float(v.strip(" |").replace(",", "")) for v in row[2:])
        assert ratio == pytest.approx(cpu / cuda, rel=0.01, abs=0.01)


@needs_cuda
def test_gpu_benchmark_runs_and_writes_its_table(gpu, monkeypatch, tmp_path):
    """``benchmarks/gpu_bench.py`` (the last stage of ci/gpu-check.sh) end to end, on tiny maps.

    A device session is short: the script must not first fail there. Timings are not checked.
    """
    spec = importlib.util.spec_from_file_location("gpu_bench", REPO / "benchmarks/gpu_bench.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    # The script sets these.
    monkeypatch.setattr(gpu.config, "DRIVER", gpu.config.DRIVER)
    monkeypatch.setattr(gpu.config, "LATE_STEPS", gpu.config.LATE_STEPS)
    monkeypatch.setattr(bench, "COPY_BYTES", 1 << 12)
    tiny = {"shape": (2, 3), "dim": 3, "samples": 10}
    hexagonal = {**tiny, "steps": 4, "options": {"topology": "hexagonal"}}
    workloads = {
        "small": {**tiny, "steps": 4},
        "big": {**tiny, "cpu_steps": True},
        "hex": hexagonal,
    }
    monkeypatch.setattr(bench, "WORKLOADS", workloads)
    topologies = []
    real_som = bench.SOM
    monkeypatch.setattr(
        bench, "SOM", lambda *a, **kw: topologies.append(kw.get("topology")) or real_som(*a, **kw)
    )
    monkeypatch.setattr(bench, "VARIANTS", [(*v[:3], v[3] and 32, v[4]) for v in bench.VARIANTS])
    out = tmp_path / "table.md"
    bench.main(["--steps", "3", "--cpu-steps", "5", "--out", str(out)])
    rows = [line.split(" | ") for line in out.read_text().splitlines() if line.startswith("| ")]
    assert rows[0][1:3] == ["backend", "steps"]
    body = rows[2:]
    assert [(r[0], r[1]) for r in body] == [
        (f"| {w}", v[0]) for w in ("small", "big", "hex") for v in bench.VARIANTS
    ]
    assert topologies.count("hexagonal") == 3 * len(bench.VARIANTS)  # warm-up, one step, run
    steps = {(r[0], r[1]): r[2] for r in body}
    assert steps["| small", "cpu"] == "4" and steps["| big", "cpu"] == "5"
    assert steps["| big", "cuda per-step, 128 threads/block"] == "3"
    for row in body:
        float(row[3].replace(",", ""))  # microseconds per step, a number
        ratio_to_floor, modelled = row[5], row[6].rstrip(" |")
        if row[1] == "cpu":
            assert ratio_to_floor == modelled == "-"
        else:
            float(ratio_to_floor)
            # The cost model's floor for a step this small (gpusom.cuda.late.DEVICE).
            assert modelled == "5.7"


def test_gpu_bench_says_what_auto_picks(gpu, capsys):
    spec = importlib.util.spec_from_file_location("gpu_bench", REPO / "benchmarks/gpu_bench.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.main(["--auto"])
    out = capsys.readouterr().out.splitlines()
    expected = "cpu" if SIMULATOR else "cuda"  # the simulator is no GPU for "auto"
    assert out[0].startswith(f"auto trained on {expected} in ")
    assert out[-1] == "backend='cuda' runs here"


@pytest.mark.parametrize("refusal", ["launch", "no block fits"])
def test_a_refused_cooperative_launch_falls_back_to_per_step(monkeypatch, refusal):
    """The device refuses the persistent driver: the slice runs per step, and so do later ones."""
    cuda_module = importlib.import_module("gpusom.cuda")
    per_step = []

    class Kernel:
        def typeof_pyval(self, value):
            return value

        def compile(self, argtypes):
            limit = 0 if refusal == "no block fits" else 8
            return types.SimpleNamespace(max_cooperative_grid_blocks=lambda threads, shared: limit)

        def __getitem__(self, launch):
            def refuse(*args):
                error = RuntimeError("cooperative launch too large")
                error.code = cuda_module.COOPERATIVE_REFUSALS[0]
                raise error

            return refuse

    monkeypatch.setattr(cuda_module, "SIMULATOR", False)
    monkeypatch.setattr(cuda_module.kernels, "train_persistent", Kernel())
    monkeypatch.setattr(cuda_module, "_per_step", lambda *args: per_step.append(args))
    monkeypatch.setattr(cuda_module.config, "DRIVER", "persistent")
    monkeypatch.setitem(cuda_module.DRIVERS, "per_step", cuda_module._per_step)
    with pytest.warns(RuntimeWarning, match="per-step driver"):
        cuda_module._persistent((7, 0.5), "pairs", 100, 50, 64)
    assert per_step == [((7, 0.5), "pairs", 100, 50, 64)]
    assert cuda_module.config.DRIVER == "per_step"


@needs_device
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_persistent_kernel_on_many_blocks(gpu, rng, monkeypatch, dtype):
    """The headline shape: grid-wide sync across more blocks than multiprocessors, each thread
    owning several cells; the same steps as one launch per step.

    Both drivers run the same arithmetic, so they agree bit for bit. Against the CPU, whose
    rounding differs (FMA), a float32 near-tie may flip one BMU in thousands of steps and the
    maps diverge from there; float64 makes that negligible, so it is compared with the CPU.
    """
    from numba import cuda

    processors = cuda.get_current_device().MULTIPROCESSOR_COUNT
    monkeypatch.setattr(gpu.config, "THREADS_PER_BLOCK", 64)
    monkeypatch.setattr(gpu.config, "PERSISTENT_BLOCKS", 2 * processors)
    # 10 features: the read-only distance loop runs both its two-pass body and its tail.
    rows, cols, steps, dim = 200, 200, 2000, 10
    assert rows * cols >= 2 * (2 * processors * 64)  # at least two cells per thread
    data = rng.random((500, dim)).astype(dtype)
    codebook = rng.random((rows * cols, dim)).astype(dtype)
    args = (
        rng.integers(0, len(data), steps),
        exponential_decay(40.0, 0.5, np.arange(steps), steps),
        exponential_decay(0.5, 0.01, np.arange(steps), steps),
        rows,
        cols,
        True,
        "gaussian",
    )
    results = {}
    for driver in ("persistent", "per_step"):
        monkeypatch.setattr(gpu.config, "DRIVER", driver)
        results[driver] = train_with(gpu, codebook, data, *args)
    np.testing.assert_array_equal(results["persistent"][1], results["per_step"][1])
    np.testing.assert_array_equal(results["persistent"][0], results["per_step"][0])
    if dtype == np.float64:
        expected, expected_bmus = train_with(CPU, codebook, data, *args)
        np.testing.assert_array_equal(results["persistent"][1], expected_bmus)
        np.testing.assert_allclose(results["persistent"][0], expected, rtol=1e-9, atol=1e-11)


@needs_device
def test_cupy_arrays_stay_on_the_device(rng):
    cupy = pytest.importorskip("cupy")
    data = cupy.asarray(rng.random((300, 3)))
    som = gpusom.SOM((6, 7), seed=0, verbose=False)
    lattice = som.train(data, 500)
    assert som.backend_ == "cuda"
    assert isinstance(lattice, np.ndarray)
    assert isinstance(som.lattice_device, cupy.ndarray)
    bmus = gpusom.find_bmus(data, som.lattice_device)
    assert isinstance(bmus, cupy.ndarray)
    np.testing.assert_array_equal(bmus.get(), gpusom.find_bmus(data.get(), lattice))
    assert gpusom.quantization_error(data, lattice) == pytest.approx(
        gpusom.quantization_error(data.get(), lattice), rel=1e-9
    )
    activations = gpusom.lattice_activations(data, lattice, verbose=False)
    assert isinstance(activations, cupy.ndarray)
    np.testing.assert_allclose(
        activations.get(), gpusom.lattice_activations(data.get(), lattice, verbose=False), atol=1e-9
    )


def test_a_map_trained_on_cuda_is_analysed_there(gpu, rng, monkeypatch):
    """On the CUDA engine, with the lattice uploaded once for all calls."""
    data = rng.random((30, 3))
    som = gpusom.SOM(
        (3, 4), seed=1, num_iterations=20, normalize=True, verbose=False, backend="cuda"
    )
    som.fit(data)
    with pytest.MonkeyPatch.context() as undo:
        undo.setattr(som, "backend_", "cpu")
        expected = (som.predict(data), som.quantization_error(data), som.topographic_error(data))
    searched, real = [], gpu.find_bmus
    monkeypatch.setattr(gpu, "find_bmus", lambda *a: searched.append(a[1]) or real(*a))
    np.testing.assert_array_equal(som.predict(data), expected[0])
    assert som.quantization_error(data) == pytest.approx(expected[1], rel=1e-12)
    assert som.topographic_error(data) == expected[2]
    assert len(searched) == 3
    assert all(codebook.base is searched[0].base for codebook in searched)  # one upload


def test_auto_falls_back_to_the_cpu_with_one_warning(monkeypatch, rng, recwarn):
    """A GPU that fails the start-up check: one warning naming the cause, and the CPU trains."""
    monkeypatch.setattr(_backend, "cuda_device_present", lambda: True)
    monkeypatch.setattr(_backend, "_cuda_status", lambda: (None, "OSError: libnvrtc missing"))
    _backend._warn_once.cache_clear()
    monkeypatch.setattr(_backend, "AUTO_GPU_MIN_ELEMENTS", 1)
    data = rng.random((20, 3))
    for _ in range(2):
        som = gpusom.SOM((3, 4), seed=0, verbose=False)
        np.testing.assert_array_equal(
            som.train(data, 30),
            gpusom.SOM((3, 4), seed=0, verbose=False, backend="cpu").train(data, 30),
        )
        assert som.backend_ == "cpu"
    warned = [w for w in recwarn if issubclass(w.category, GPUFallbackWarning)]
    assert len(warned) == 1
    assert "libnvrtc missing" in str(warned[0].message)
    assert "backend='cpu'" in str(warned[0].message)
    with pytest.raises(gpusom._errors.BackendUnavailableError, match="libnvrtc missing"):
        gpusom.SOM((3, 4), verbose=False, backend="cuda").train(data, 3)
    _backend._warn_once.cache_clear()


@pytest.mark.parametrize(("elements", "expected"), [(99_999, "cpu"), (100_000, "cuda")])
def test_auto_keeps_small_maps_on_the_cpu(monkeypatch, elements, expected):
    monkeypatch.setattr(_backend, "cuda_device_present", lambda: True)
    monkeypatch.setattr(_backend, "usable_cuda_or_cpu", lambda: types.SimpleNamespace(
        name="cuda", check_memory=lambda n_bytes, what: None
    ))  # fmt: skip
    assert _backend.training_engine("auto", elements, 0).name == expected
    assert _backend.training_engine("auto", 10, 0, on_device=True).name == "cuda"


def test_auto_trains_on_the_cpu_when_the_gpu_memory_is_short(monkeypatch):
    def short(n_bytes, what):
        raise ValueError(f"{what} needs {n_bytes} bytes of GPU memory")

    monkeypatch.setattr(_backend, "cuda_device_present", lambda: True)
    gpu_engine = types.SimpleNamespace(name="cuda", check_memory=short)
    monkeypatch.setattr(_backend, "usable_cuda_or_cpu", lambda: gpu_engine)
    with pytest.warns(GPUFallbackWarning, match="needs 10 bytes"):
        assert _backend.training_engine("auto", 10**6, 10).name == "cpu"
