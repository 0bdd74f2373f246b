"""The host side of an online run: slices of steps, the Ctrl-C guard and the progress bar.

A run is handed to the engine in slices, each sized to take about ``_config.SLICE_SECONDS``;
the sample order of every slice comes from one random generator in sequence, so slicing never
changes the result, and Ctrl-C is honoured between slices.
"""

import signal
import sys
import threading
from timeit import default_timer as timer

import numpy as np

from . import _backend, _batch, _bmu_search, _config
from ._errors import BackendUnavailableError
from ._math import METRICS, NEIGHBORHOODS, TOPOLOGIES
from .schedules import sample_order, schedule


def run_slices(engine, codebook, data, n_samples, rng, settings, first, stop, total, verbose):
    """Online steps ``first`` to ``stop`` of a ``total``-step run, one slice per engine call.

    ``codebook`` and ``data`` are the engine's training state of ``n_samples`` samples. Returns
    ``(position, interrupted)``: the step reached, and whether Ctrl-C stopped it.
    """
    position = first
    size = min(_config.FIRST_SLICE_STEPS, _config.STEPS_PER_SLICE)
    with _DeferredInterrupt() as interrupt, _progress_bar(first, stop, verbose) as bar:
        while position < stop and not interrupt.requested:
            steps = np.arange(position, min(position + size, stop))
            before = rng.bit_generator.state
            tick = timer()
            try:
                train_slice(engine, codebook, data, n_samples, rng, settings, steps, total)
            except KeyboardInterrupt:
                # Raised by the engine call itself (Ctrl-C is deferred, so only where the SIGINT
                # handler is not Python's default): the slice counts as not run and its sample
                # order is rewound.
                rng.bit_generator.state = before
                interrupt.requested = True
                break
            position += steps.size
            bar.update(steps.size)
            size = _next_slice_size(steps.size, timer() - tick)
    return position, interrupt.requested


def run_epochs(epoch, codebook, sigmas, first, stop, verbose):
    """Batch epochs ``first`` to ``stop`` of a run whose radius at epoch ``e`` is ``sigmas[e]``.

    ``epoch(codebook, sigma)`` runs one epoch and returns the new codebook (an engine's
    ``train_batch``, or the Dask map-reduce). Ctrl-C is honoured between epochs. Returns
    ``(codebook, position, interrupted)``.
    """
    position = first
    with (
        _DeferredInterrupt() as interrupt,
        _progress_bar(first, stop, verbose, "epoch") as bar,
    ):
        while position < stop and not interrupt.requested:
            try:
                codebook = epoch(codebook, sigmas[position])
            except KeyboardInterrupt:
                interrupt.requested = True  # the epoch counts as not run
                break
            position += 1
            bar.update(1)
    return codebook, position, interrupt.requested


def epoch_sigmas(settings, total):
    """The radius of each of the ``total`` epochs of a batch run (the ``sigma_decay``)."""
    return schedule(
        settings["sigma_decay"],
        settings["sigma"],
        settings["sigma_end"],
        np.arange(total),
        total,
        "sigma_decay",
        True,
    )


def check_resumable(som, dim, names, num_iterations, normalize, until, is_dask=False):
    """Raise a ``ValueError`` unless ``som`` holds a run that these arguments can continue
    (``is_dask``: the data is a Dask collection, which trains batch epochs only)."""
    if not hasattr(som, "steps_done_"):
        raise ValueError(
            "resume=True continues an earlier run, but this SOM holds none: train it or load "
            "a model (SOM.load) first"
        )
    if is_dask and som.settings_["algorithm"] != "batch":
        raise ValueError(
            "the run trains online steps, and Dask data trains batch epochs only: resume it "
            "with in-memory data (a numpy array), or start a batch run on the Dask data"
        )
    if num_iterations != som.num_iterations_:
        raise ValueError(
            f"num_iterations must be the run's total, {som.num_iterations_}, when resuming "
            f"(got {num_iterations}): the schedules of the steps done depend on it"
        )
    if normalize != (som.data_min_ is not None):
        raise ValueError(
            f"the run was trained with normalize={not normalize}; resume it with the same"
        )
    policy = "ignore" if ignores_nan(som.settings_) else "raise"
    if som.nan_policy != policy:
        # the data was checked under som.nan_policy; the run's own decides what NaN is
        raise ValueError(
            f"the run was trained with nan_policy={policy!r}; resume it with the same "
            f"(set_params(nan_policy={policy!r}))"
        )
    if dim != som.n_features_in_:
        raise ValueError(f"data has {dim} features, but the run trains on {som.n_features_in_}")
    if until < som.steps_done_:
        raise ValueError(f"until ({until}) is before the run's step {som.steps_done_}")
    if names is not None:
        som._check_feature_names(names)


def train_slice(engine, codebook, data, n_samples, rng, settings, steps, total):
    """One engine call: the online steps numbered ``steps`` of a ``total``-step run."""
    return engine.train_online(
        codebook,
        data,
        sample_order(rng, n_samples, steps.size),
        schedule(
            settings["sigma_decay"],
            settings["sigma"],
            settings["sigma_end"],
            steps,
            total,
            "sigma_decay",
            True,
        ),
        schedule(
            settings["learning_rate_decay"],
            settings["learning_rate"],
            settings["learning_rate_end"],
            steps,
            total,
            "learning_rate_decay",
            False,
        ),
        *lattice_arguments(settings),
        metric_code(settings),
    )


#: Pseudo-count of a cell's own vector in the closing step: one sample's worth.
CLOSING_PRIOR = 1.0


def closing_step(engine, codebook, values, settings, total):
    """The closing batch step of a finished ``total``-step online run (``finish="batch"``).

    One batch epoch (``gpusom._batch``) at the radius of the run's last step, with the same
    window, lattice and metric, where each cell's vector counts as :data:`CLOSING_PRIOR` extra
    samples. ``codebook`` is the host ``(n_cells, dim)`` lattice of the run's last step,
    ``values`` the training data (host, or the engine's); returns the host codebook, in
    ``codebook``'s dtype.

    The CUDA engine runs the step with cupy. Online training on a GPU needs numba-cuda alone,
    so without cupy (then the data are on the host) the step runs on the CPU engine instead of
    failing after the run.
    """
    sigma = schedule(
        settings["sigma_decay"],
        settings["sigma"],
        settings["sigma_end"],
        np.array([total - 1]),
        total,
        "sigma_decay",
        True,
    )
    try:
        xp = engine.xp
    except BackendUnavailableError:
        engine = _backend.cpu_engine()
        xp = engine.xp
    closed = _batch.train_epochs(
        engine,
        xp.asarray(codebook),
        xp.asarray(values.astype(codebook.dtype, copy=False)),
        sigma,
        *lattice_arguments(settings),
        metric_code(settings),
        prior=CLOSING_PRIOR,
    )
    return engine.to_numpy(closed)


def lattice_arguments(settings):
    """``(rows, cols, is_torus, neighborhood, truncate, topology)`` of a run, as every engine's
    ``train_online`` and ``train_batch`` take them (option codes, not names)."""
    return (
        settings["rows"],
        settings["cols"],
        settings["is_torus"],
        NEIGHBORHOODS[settings["neighborhood"]],
        settings["truncate"],
        TOPOLOGIES[settings["topology"]],
    )


def metric_code(settings):
    """The run's ``gpusom._math.METRICS`` code."""
    return METRICS[settings["metric"]]


def ignores_nan(settings):
    """True when the run treats NaN as a missing value (``nan_policy="ignore"``)."""
    return settings["nan_policy"] == "ignore"


def _progress_bar(position, stop, verbose, unit="step"):
    """A tqdm bar of the steps up to ``stop`` from ``position``, on a terminal only.

    It appears once the run has taken ``_config.PROGRESS_MIN_SECONDS`` (short runs print
    nothing) and shows the average rate since the run began, compiling included, so the rate
    agrees with the run's total time.
    """
    from tqdm.auto import tqdm

    return tqdm(
        total=stop,
        initial=position,
        unit=unit,
        unit_scale=True,
        desc="SOM training",
        file=sys.stderr,
        disable=None if verbose else True,
        delay=_config.PROGRESS_MIN_SECONDS,
        smoothing=0,
    )


def _next_slice_size(steps, elapsed):
    """Steps for the next slice to take about ``_config.SLICE_SECONDS`` at the last one's pace."""
    if elapsed <= 0:
        return _config.STEPS_PER_SLICE
    return int(np.clip(steps * _config.SLICE_SECONDS / elapsed, 1, _config.STEPS_PER_SLICE))


class _DeferredInterrupt:
    """Holds Ctrl-C (SIGINT) during training as a flag the host loop reads between slices.

    Installed only in the main thread and only over Python's default handler (the one that
    raises KeyboardInterrupt); elsewhere nothing changes.
    """

    def __enter__(self):
        self.requested = False
        self._installed = (
            threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler
        )
        if self._installed:
            signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        self.requested = True

    def __exit__(self, *exc_info):
        if self._installed:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        return False


#: Values per cell of an online run's scratch, in the codebook's dtype: the CPU kernel's
#: distances and norms, and the cosine bound's two norms and scores (``gpusom.cpu``).
ONLINE_CELL_SCRATCH = 5


def peak_bytes(n_cells, dim, itemsize, settings, n_samples):
    """Host memory a run of ``settings`` takes at its peak, for ``_checks.check_memory``.

    Online: the float64 initial codebook beside its copy in the training dtype, later the
    engine's copy beside the host's (measured with tracemalloc on a 3000x3000x3 map: 12.8 and
    18.3 bytes per codebook value in float32 and float64; counted: 16 and 24). Batch: up to four
    codebooks in the dtype beside the larger of the exact search's temporaries
    (``gpusom._bmu_search.search_bytes``) and the float64 sums, counts and smoothing buffers of
    ``gpusom._batch`` (measured 58 and 69 bytes per value on that map, 1,000 samples; counted:
    80 and 96; ``tests/test_validation.py`` checks the bound on a smaller map). An online run
    with the closing batch step (``finish="batch"``) counts as batch, the larger bound: that
    step is one batch epoch, run after the online state is freed. ``n_samples`` rows of data
    held in memory (0 for Dask) add the engine's copy, and the PCA start's float64 centred copy.
    Online steps also hold ``ONLINE_CELL_SCRATCH`` values per cell (numba's allocations, which
    tracemalloc does not see), counted apart: below 3 features (5 in float64) the rest of the
    bound would not cover them. The CPU engine's padding of the tail (from 32 features on) is
    within it.
    """
    per_sample = (itemsize + (16 if settings["init"] == "pca" else 0)) * dim
    if settings["algorithm"] == "batch" or settings["finish"] == "batch":
        buffers = max(
            _bmu_search.search_bytes(n_samples, n_cells, dim, 1), 48 * (dim + 1) * n_cells
        )
        return n_cells * 4 * itemsize * dim + buffers + n_samples * per_sample
    scratch = ONLINE_CELL_SCRATCH * itemsize
    return n_cells * ((8 + 2 * itemsize) * dim + scratch) + n_samples * per_sample
