"""The ``SOM`` estimator: its settings, ``train``/``fit`` and scikit-learn's verbs.

The pieces behind it live beside it: ``schedules`` (defaults, initialisation, schedules),
``_training`` (the slice loop, Ctrl-C, progress bar), ``_model_file`` (save and load) and
``_backend`` (which engine runs).
"""

import copy
import os
from timeit import default_timer as timer

import numpy as np

from . import _backend, _checks, _dask, _model_file, _training, analysis, io, schedules
from ._errors import NotFittedError
from ._estimator import ParamsMixin
from ._math import reported_distance
from ._scaling import feature_range, scale
from .analysis import group_by_cell
from .schedules import DTYPES, INITS

__all__ = ["SOM", "NotFittedError"]


class SOM(ParamsMixin):
    """A self-organizing map trained online, one sample per step, on a grid or a torus.

    Follows scikit-learn's estimator conventions (``fit``, ``predict``, ``transform``, ``score``,
    ``get_params``/``set_params``, learned attributes ending in ``_``) without depending on it,
    and keeps the original library's ``train(data, num_iterations)``.

    Parameters
    ----------
    som_size : tuple of int
        ``(rows, cols)`` of the lattice.
    is_torus : bool, default False
        Wrap both lattice axes, so opposite edges are neighbours.
    topology : {"rectangular", "hexagonal"}, default "rectangular"
        Cells on a square grid (eight neighbours for the topographic error and the u-matrix), or
        on a hexagonal one: odd rows shift right by half a cell and rows are ``sqrt(3) / 2``
        apart, so all six neighbours are at distance 1. A hexagonal torus needs an even number
        of rows.
    algorithm : {"online", "batch"}, default "online"
        "online": one sample per step, the cells of its window move towards it (Notes).
        "batch": per epoch, the exact best unit of every sample, then each cell becomes the
        neighbourhood-weighted mean of the samples, ``w_n = sum_i h(d(b_i, n)) x_i / sum_i
        h(d(b_i, n))``, with the epoch's radius from ``sigma_decay`` (the learning rate is
        unused); a cell with no weight keeps its vector. On the rectangular lattice the
        Gaussian and the bubble are cut to the square ``|dr|, |dc| <= radius`` (separable, so
        an epoch costs ``O(cells * (rows + cols) * dim)`` after the search), elsewhere to the
        disk (``gpusom._batch``). Batch epochs parallelise across cores, GPUs and Dask
        workers; a Dask array always trains this way. ``num_iterations`` then counts epochs.
    finish : {"batch", "none"}, default "batch"
        What an online run does after its last step. "batch": one closing batch step at the
        run's final radius (the ``sigma_decay`` value of step ``T - 1``, with the run's window,
        lattice and metric) where each cell's current vector counts as one more sample: ``w_n
        = (sum_i h(d(b_i, n)) x_i + w_n) / (sum_i h(d(b_i, n)) + 1)``, per present feature
        under ``nan_policy="ignore"``; a cell whose denominator is not positive (the Mexican
        hat's negative weights) keeps its vector. The pseudo-count keeps cells with few samples
        in their window from collapsing onto them: they move only part of the way (the best
        unit of a single sample with no other sample in its window, half way), where a plain
        batch step would set them onto their samples, the flat tiles the defaults avoid. Costs
        one exact BMU search over the data and one smoothing of the lattice. Applied when the
        run reaches its last step, by whichever call gets there, so ``until=`` and resuming
        still give the lattice of the whole run. Batch runs (``algorithm="batch"``) and Dask
        data (which trains batch epochs only) ignore it. With the default final radius and rate
        it gives every benchmark map a lower quantization and topographic error than plain
        online steps (benchmarks/RESULTS.md, "The closing step as the default"); "none" skips
        it (5-20 % of a run's time).
    num_iterations : int, optional
        Online steps (or batch epochs) run by :meth:`fit`. Batch default: 20 epochs. Online
        default ``max(10 * n_samples, min(500 * n_cells, 75 * n_samples))``: Kohonen's 500 steps per
        cell, but no sample drawn more than about 75 times (with few samples per cell, more
        steps only pull cells onto the samples: flat tiles) and every sample about 10 times at
        least; measured on the quality panel (benchmarks/RESULTS.md). :meth:`train` takes its
        own ``num_iterations`` argument instead.
    normalize : bool, default False
        :meth:`fit` min-max scales each feature to [0, 1] first, as ``train(..., normalize=True)``.
    sigma : float, optional
        Neighbourhood radius (in cells) at the first step. Default ``max(rows, cols) / 4``.
    sigma_end : float, optional
        Radius at the last step (or epoch). Default 0.86 online, with the closing step of
        ``finish``, and 1 in batch training (or ``sigma``, if that is smaller).
    learning_rate : float in (0, 1], optional
        Learning rate at the first step. Default 0.5.
    learning_rate_end : float in (0, 1], optional
        Learning rate at the last step. Default 0.0045.
    neighborhood : {"gaussian", "bubble", "mexican_hat", "triangle"}, default "gaussian"
        ``h(d)`` at grid distance ``d`` (Euclidean, between grid positions), and where it is cut:

        - gaussian: ``exp(-d^2 / (2 sigma_t^2))`` for ``d <= truncate * sigma_t``;
        - bubble: ``1`` for ``d <= sigma_t``;
        - mexican_hat: ``(1 - d^2 / sigma_t^2) exp(-d^2 / (2 sigma_t^2))`` for
          ``d <= truncate * sigma_t``: negative beyond ``sigma_t`` (those cells move away from
          the sample), lowest at ``sqrt(3) sigma_t`` (-0.45); ``truncate`` below 1 keeps only
          the positive part. Online training with the negative part is unstable: the cells
          pushed away are pushed again, further each time (on the walk-through, values reach
          1e35 at ``learning_rate=0.05`` and overflow at 0.2), so a run that ends with inf or
          NaN values is a ``ValueError``;
        - triangle: ``1 - d / sigma_t``, zero from ``d = sigma_t`` on (a cone).
    sigma_decay, learning_rate_decay : str or callable, default "inverse" and "exponential"
        How the radius and the rate go from their start to their end values over the run, with
        ``f = t / max(T - 1, 1)``: "exponential" ``start * (end / start) ** f``; "linear"
        ``start + (end - start) * f``; "inverse" ``start / (1 + f * (start / end - 1))`` (as
        MiniSom's decay to one, for any end); "power" ``start * (1 + t) ** -k`` with ``k`` such
        that the last step has ``end``. A callable ``f(t, T)`` gives the value itself: it is
        called on the host with an int64 array of step numbers (or, where that fails, one step
        at a time) and must return finite values, positive for the radius, non-negative for the
        rate; the start and end settings are then unused. A map trained with a callable cannot
        be saved to a model file (the function is not data).
    truncate : float, default 2.0
        The Gaussian is cut at ``truncate * sigma_t`` cells, where it has fallen to
        ``exp(-truncate^2 / 2)`` (13.5% at 2): the window is what keeps steps cheap. On the
        benchmark workloads 2.0 gave a lower quantization error than the uncut Gaussian and a
        topographic error within 0.004 of it, at half the cells per step of 3.0.
    init : {"random", "sample", "pca"}, default "random"
        Initial codebook: uniform within each feature's range, random training samples, or a
        grid on the plane of the data's first two principal components (+-2 standard deviations).
    dtype : {"float32", "float64"}, default "float32"
        Precision of the codebook and of all training arithmetic. Training data it cannot
        hold, or whose squared differences (Euclidean) would overflow it or underflow to 0, is a
        ``ValueError`` naming the remedy.
    backend : {"auto", "cpu", "cuda"}, default "auto"
        Where training runs. "auto" trains on the GPU when the data is a GPU array or the map
        has at least 100,000 codebook values (``rows * cols * dim``; smaller maps are faster on
        the CPU) and the CUDA engine passes a start-up check; else on the CPU, with one warning
        when a GPU was present but unusable. "cuda" fails with the cause instead. The
        ``GPUSOM_BACKEND`` environment variable overrides "auto". A Dask array trains each
        chunk on the engine of its arrays (numpy: CPU, cupy: GPU); "cpu" or "cuda" that its
        chunks do not match is a ``ValueError``. Kept as given; ``backend_`` records what ran.
    metric : {"euclidean", "cosine", "manhattan"}, default "euclidean"
        The distance that picks each sample's best matching unit, in training and in every
        method (pass it to ``gpusom.u_matrix`` for the map's u-matrix): ``||x - w||``,
        ``1 - x.w / (|x| |w|)`` (1 where a norm is zero: no similarity) or ``sum |x - w|``.
        The update is the same for all: ``w`` moves towards ``x``. The best unit is exact
        under each, ties to the lowest index.
    nan_policy : {"raise", "ignore"}, default "raise"
        What a NaN in the data is (scipy's word): an error naming the input, or a missing
        value. With "ignore", a sample's distance uses its present features only, Euclidean and
        Manhattan ones scaled by ``dim / present`` (a cosine is scale-free and is not); its
        update moves only the present features of each cell; the initial codebook takes a
        missing value as its feature's mean; every method accepts NaN the same way. A sample
        with no present feature is an error naming its row, and so is a feature with no present
        value in the training data. inf is always an error.
    seed : int or numpy.random.Generator, optional
        Seed of the initialisation and of the sample order; the same integer seed gives the
        same map on every fit. A Generator is drawn from (its state advances, as scikit-learn
        treats a ``RandomState``), so each fit with it gives another map.
    verbose : bool, default True
        Print the one-line timing messages of the original walk-through, and, on a terminal, a
        progress bar once a run has taken a second.

    Attributes
    ----------
    lattice_ : ndarray of shape (rows, cols, dim)
        The trained codebook (also returned by :meth:`train`); ``som.lattice`` is the same array.
    backend_ : str
        "cpu" or "cuda", the backend that ran the last training.
    n_features_in_ : int
        Number of features of the training data.
    feature_names_in_ : ndarray of str objects
        The column names of a training DataFrame whose names are all strings; absent otherwise.
    data_min_, data_range_ : ndarray of shape (n_features_in_,) or None
        Per-feature minimum and ``max - min`` of the training data when it was normalised (a
        range of 0 means the feature maps to 0), else None. Every method that takes data applies
        this same scaling to it.
    settings_ : dict
        The run's settings with the defaults filled in (rows, cols, sigmas, rates, ...).
    num_iterations_ : int
        Total steps ``T`` of the run the schedules are computed for.
    steps_done_ : int
        Steps of that run done so far (less than ``num_iterations_`` after ``until=`` or Ctrl-C).
    lattice_device_ : GPU array or None
        A cupy copy of the lattice when the training data was a cupy array; also
        ``som.lattice_device``.

    Notes
    -----
    Step ``t`` of ``T`` draws a sample uniformly at random (with replacement), finds its best
    matching unit ``b = argmin_n ||x - w_n||^2`` (ties to the lowest flat index ``r * cols + c``)
    and moves every cell within the window towards it: ``w_n += lr_t * h(d(b, n)) * (x - w_n)``.
    Radius and rate follow ``sigma_decay`` and ``learning_rate_decay``; by default
    ``sigma_t = sigma / (1 + f * (sigma / sigma_end - 1))`` and
    ``lr_t = learning_rate * (learning_rate_end / learning_rate) ** f`` with
    ``f = t / max(T - 1, 1)``. On a torus each axis uses the minimum-image distance and every
    cell is updated at most once per step, even when the window is wider than the map.

    The defaults favour ordered, smooth maps over the lowest quantization error
    (``gpusom.schedules.settings``). The QE-first maps of gpusom 0.1, whose cells settle onto
    single samples, come from ``sigma_decay="exponential", sigma_end=0.55,
    learning_rate_end=0.02`` (with fewer samples than cells, 0.1 samples per cell or less:
    ``sigma_end=0.3, learning_rate_end=0.2``).

    Training runs in slices of steps (``gpusom._training``), so slicing never changes the
    result. Ctrl-C (SIGINT) during training is held until the slice in flight has finished:
    training then stops, the SOM keeps the lattice and position of that step (ready for
    :meth:`save` or ``train(..., resume=True)``), and ``KeyboardInterrupt`` is raised again
    with a message saying how far training got, so scripts still stop.

    Examples
    --------
    >>> import numpy as np
    >>> from gpusom import SOM
    >>> data = np.random.default_rng(0).random((200, 3))
    >>> som = SOM(som_size=(10, 20), seed=0, verbose=False)
    >>> som.train(data, num_iterations=2000).shape
    (10, 20, 3)
    >>> som.transform(data[:2]).shape
    (2, 2)
    """

    def __init__(
        self,
        som_size,
        is_torus=False,
        *,
        topology="rectangular",
        algorithm="online",
        finish="batch",
        num_iterations=None,
        normalize=False,
        sigma=None,
        sigma_end=None,
        learning_rate=None,
        learning_rate_end=None,
        neighborhood="gaussian",
        sigma_decay="inverse",
        learning_rate_decay="exponential",
        truncate=2.0,
        init="random",
        dtype="float32",
        backend="auto",
        metric="euclidean",
        nan_policy="raise",
        seed=None,
        verbose=True,
    ):
        self.som_size = som_size
        self.is_torus = is_torus
        self.topology = topology
        self.algorithm = algorithm
        self.finish = finish
        self.num_iterations = num_iterations
        self.normalize = normalize
        self.sigma = sigma
        self.sigma_end = sigma_end
        self.learning_rate = learning_rate
        self.learning_rate_end = learning_rate_end
        self.neighborhood = neighborhood
        self.sigma_decay = sigma_decay
        self.learning_rate_decay = learning_rate_decay
        self.truncate = truncate
        self.init = init
        self.dtype = dtype
        self.backend = backend
        self.metric = metric
        self.nan_policy = nan_policy
        self.seed = seed
        self.verbose = verbose

    @property
    def lattice(self):
        """The trained ``(rows, cols, dim)`` lattice, or None before training."""
        return getattr(self, "lattice_", None)

    @property
    def lattice_device(self):
        """The GPU copy of the lattice (``lattice_device_``), or None."""
        return getattr(self, "lattice_device_", None)

    # -- training --------------------------------------------------------------------------------

    def train(self, data, num_iterations, normalize=False, *, resume=False, until=None):
        """Train the map online and return the lattice.

        Parameters
        ----------
        data : array_like of shape (n_samples, dim)
            Training vectors (finite numbers): a numpy array, nested lists or a pandas DataFrame
            of numeric columns (its string column names become ``feature_names_in_``). A GPU
            array (cupy) makes ``backend="auto"`` train on the GPU and keeps a device copy of the
            lattice as ``som.lattice_device``.
        num_iterations : int
            Total online steps ``T`` of the run, one sample each; the schedules run over them.
            When resuming, the same total as the run being resumed.
        normalize : bool, default False
            Min-max scale each feature of ``data`` to [0, 1] first (constant features become 0)
            and keep the scaling (``data_min_``, ``data_range_``) for new data.
        resume : bool, default False
            Continue the run this SOM holds (after ``until=``, Ctrl-C or :meth:`load`) from step
            ``steps_done_`` with its settings, lattice and random sample order:
            ``train(d, T, until=k)`` then ``train(d, T, resume=True)`` gives the lattice of
            ``train(d, T)``, bit for bit on the CPU. ``normalize`` and ``nan_policy`` must be
            as in the run.
            Resuming a finished run changes nothing.
        until : int, optional
            Stop after step ``until`` of the run (default ``num_iterations``, the end). The
            closing step of ``finish="batch"`` runs only in the call that reaches the end.

        Returns
        -------
        lattice : ndarray of shape (rows, cols, dim)
            The trained codebook in the SOM's ``dtype``; also kept as ``som.lattice_``.

        Raises
        ------
        KeyboardInterrupt
            On Ctrl-C, after the slice in flight has finished and the SOM holds the lattice and
            position reached (see Notes of :class:`SOM`).
        """
        num_iterations = _checks.as_positive_int(num_iterations, "num_iterations")
        until = num_iterations if until is None else _checks.as_positive_int(until, "until")
        if until > num_iterations:
            raise ValueError(f"until ({until}) must not exceed num_iterations ({num_iterations})")
        normalize = _checks.as_bool(normalize, "normalize")
        resume = _checks.as_bool(resume, "resume")
        return self._train(self._input(data, "data"), num_iterations, normalize, resume, until)

    def fit(self, X, y=None):
        """Train a new map on ``X`` for ``num_iterations`` steps (see the class parameters).

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
            As ``data`` of :meth:`train`.
        y : None
            Ignored; scikit-learn's signature.

        Returns
        -------
        SOM
            This SOM, trained.
        """
        data = self._input(X, "X")
        batch = _checks.as_choice(self.algorithm, "algorithm", schedules.ALGORITHMS) == 1
        if self.num_iterations is None and (batch or data.is_dask):
            num_iterations = schedules.DEFAULT_EPOCHS
        elif self.num_iterations is None:
            rows, cols = _checks.as_som_size(self.som_size)
            num_iterations = schedules.default_num_iterations(data.values.shape[0], rows * cols)
        else:
            num_iterations = _checks.as_positive_int(self.num_iterations, "num_iterations")
        normalize = _checks.as_bool(self.normalize, "normalize")
        self._train(data, num_iterations, normalize, False, num_iterations)
        return self

    def _input(self, data, name):
        """Training data as an ``_Input`` (a ``_DaskInput`` for Dask collections), NaN allowed
        under ``nan_policy="ignore"``."""
        allow_nan = _checks.allows_nan(self.nan_policy)
        if _dask.is_dask(data):
            # Dask data trains on the engines of its chunks, never through
            # _backend.training_engine: the setting is checked here instead. The environment
            # override of "auto" is a preference, not a demand, so only an explicit setting
            # that the chunks cannot follow is an error.
            _backend.as_backend(self.backend)
            values = _DaskInput(data, name, allow_nan)
            _backend.check_chunk_backend(self.backend, values.values._meta)
            return values
        return _Input(data, name, allow_nan)

    def _train(self, data, num_iterations, normalize, resume, until):
        """The training run behind :meth:`train` and :meth:`fit`, on validated arguments."""
        values = data.values
        if resume:
            _training.check_resumable(
                self, values.shape[1], data.names, num_iterations, normalize, until, data.is_dask
            )
            settings, first = self.settings_, self.steps_done_
            low, span = self.data_min_, self.data_range_
            if first == until:
                self._say(f"Nothing to resume: the run is at step {first} of {num_iterations}.")
                return self.lattice_
        else:
            params = self.get_params()
            if data.is_dask:  # trains batch epochs only (a resumed run was one: check_resumable)
                params["algorithm"] = "batch"
            settings, first = schedules.settings(params, values.shape[0]), 0
            low = span = None
        if normalize:
            start = timer()
            if not resume:
                low, span = data.feature_range()
            values = data.scaled(low, span)
            self._say(f"Data scaling took: {timer() - start:f} seconds.")
        rows, cols, dtype = settings["rows"], settings["cols"], DTYPES[settings["dtype"]]
        n_samples, dim = values.shape
        if not data.is_dask:
            _checks.check_in_range(
                values, dtype, "the training data", settings["metric"], resolution=True
            )
        itemsize = np.dtype(dtype).itemsize
        _checks.check_memory(
            _training.peak_bytes(
                rows * cols, dim, itemsize, settings, 0 if data.is_dask else n_samples
            ),
            f"a {rows}x{cols} lattice of {dim}-d vectors",
        )
        engine = data.engine or _backend.training_engine(
            self.backend,
            rows * cols * dim,
            itemsize * (rows * cols + n_samples) * (dim + 4),
            data.on_device,
        )

        start = timer()
        if resume:
            # The run's own generator, copied so that a failed call leaves the SOM as it was.
            rng = copy.deepcopy(self._rng)
            codebook = self.lattice_.reshape(rows * cols, dim).astype(dtype)
        else:
            rng = _checks.as_generator(self.seed)
            init = INITS[settings["init"]]
            codebook = schedules.initial_codebook(
                data.initial_sample(values, rng), rows * cols, cols, init, rng
            )
            codebook = codebook.astype(dtype)
        if settings["algorithm"] == "batch":
            codebook, position, interrupted = _training.run_epochs(
                _batch_epoch(engine, values, codebook.dtype, settings),
                engine.xp.asarray(codebook),
                _training.epoch_sigmas(settings, num_iterations),
                first,
                until,
                self.verbose,
            )
            lattice = engine.to_numpy(codebook).reshape(rows, cols, dim)
        else:
            state = engine.to_device(codebook, values)
            del codebook  # the engine trains its own copy: one codebook less at the peak
            position, interrupted = _training.run_slices(
                engine, *state, n_samples, rng, settings, first, until, num_iterations, self.verbose
            )
            codebook = engine.to_host(state[0], dim)
            del state  # the closing step needs memory of a batch epoch (_training.peak_bytes)
            # Only at the run's end, whichever call reaches it (a Ctrl-C in its last slice
            # too): a run stopped earlier and resumed gets the step exactly once, so resuming
            # still gives the lattice of the whole run.
            if position == num_iterations and settings["finish"] == "batch":
                _check_converged(codebook, settings)  # before a BMU search over inf and NaN
                codebook = _training.closing_step(
                    engine, codebook, values, settings, num_iterations
                )
            lattice = codebook.reshape(rows, cols, dim)
        _check_converged(lattice, settings)
        # Everything the run changes is recorded together, also after an interrupt. The
        # generator is copied: the run's state stays its own, whatever the caller then draws
        # from a Generator given as seed.
        self._set_trained(
            lattice=lattice,
            backend=engine.name,
            settings=settings,
            names=data.names if data.names is not None or not resume else self._names(),
            scaling=(None, None) if low is None else (np.asarray(low), np.asarray(span)),
            position=(position, num_iterations),
            rng=copy.deepcopy(rng),
        )
        if data.on_device:
            self.lattice_device_ = data.device_engine.xp.asarray(self.lattice_)
        if interrupted:
            raise KeyboardInterrupt(
                f"SOM training interrupted at step {position:,} of {num_iterations:,} "
                f"({100 * position / num_iterations:.1f}%); the SOM holds the lattice of that "
                f"step: save it (som.save) or continue with "
                f"som.train(data, {num_iterations}, resume=True)"
            )
        self._say(f"SOM training took: {timer() - start:f} seconds.")
        return self.lattice_

    def _set_trained(self, *, lattice, backend, settings, names, scaling, position, rng):
        """Record a trained state (from a run or a model file), all learned attributes at once."""
        self.lattice_, self.lattice_device_ = lattice, None
        self._forget_resident()
        self.backend_, self.settings_ = backend, settings
        self.n_features_in_ = lattice.shape[2]
        if names is not None:
            self.feature_names_in_ = names
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        self.data_min_, self.data_range_ = scaling
        self.steps_done_, self.num_iterations_ = position
        self._rng = rng

    def _say(self, message):
        if self.verbose:
            print(message)

    # -- using the trained map -------------------------------------------------------------------

    def _check_fitted(self):
        if not hasattr(self, "lattice_"):
            raise NotFittedError(
                "this SOM is not trained yet: call fit or train first, or load a model with "
                "SOM.load"
            )

    def _validated(self, X, name):
        """``(X, scaled X, engine of X)``: ``X`` validated against the map (its feature count
        and names) and scaled as the training data, on the engine where ``X`` is."""
        self._check_fitted()
        names = _checks.feature_names(X)
        if names is not None:
            self._check_feature_names(names)
        own = _backend.array_engine(X)
        X = own.as_array(X, name, 2, self._allows_nan())
        self._check_n_features(X, name)
        scaled = X if self.data_min_ is None else scale(X, self.data_min_, self.data_range_, own.xp)
        return X, scaled, own

    def _check_n_features(self, X, name):
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"{name} has {X.shape[1]} features, but SOM is expecting {self.n_features_in_} "
                "features as input"
            )

    def _prepare(self, X, name):
        """``(X, scaled X, engine)``: ``X`` validated against the map, scaled as the training
        data, and the engine that searches it (where the map was trained, or where ``X`` is)."""
        X, scaled, own = self._validated(X, name)
        engine = _backend.analysis_engine(self.backend_, own)
        scaled = engine.as_array(scaled, name, 2, self._allows_nan())
        # As gpusom.analysis._prepare: the searches' float64 distances must not overflow.
        _checks.check_in_range(
            scaled,
            np.float64,
            f"{name} with the lattice",
            self.settings_["metric"],
            cell_bounds=self._lattice_bounds(engine),
            remedy=analysis.RANGE_REMEDY,
            tiny=False,
            xp=engine.xp,
        )
        return X, scaled, engine

    def _allows_nan(self):
        return _training.ignores_nan(self.settings_)

    def _metric(self):
        return _training.metric_code(self.settings_)

    def _forget_resident(self):
        """Start the copies of ``_lattice_on`` and ``_lattice_bounds`` afresh, for the current
        ``lattice_``."""
        self._resident = {}  # the lattice on each analysis engine, uploaded once
        self._bounds = {}  # and its per-feature bounds there, read once
        self._resident_of = self.lattice_

    def _lattice_on(self, engine):
        """The lattice as an array of ``engine``, uploaded once per lattice: a new array
        assigned to ``lattice_`` is uploaded again (and the GPU copy of the old one dropped)."""
        if self._resident_of is not self.lattice_:
            self.lattice_device_ = None
            self._forget_resident()
        if engine.name not in self._resident:
            device = self.lattice_device_
            self._resident[engine.name] = engine.as_array(
                self.lattice_ if device is None else device, "lattice", 3
            )
        return self._resident[engine.name]

    def _lattice_bounds(self, engine):
        """``gpusom._checks.feature_bounds`` of the lattice on ``engine``, read once per trained
        map: a prediction of one sample would otherwise read the whole lattice again."""
        lattice = self._lattice_on(engine)  # first: it forgets the bounds of a replaced lattice
        if engine.name not in self._bounds:
            self._bounds[engine.name] = _checks.feature_bounds(lattice, engine.xp)
        return self._bounds[engine.name]

    def _lazy(self, X):
        """``(X, scaled X, codebook, metric, allow_nan)`` for the lazy ``gpusom._dask``
        functions, or None when ``X`` is not a Dask collection."""
        if not _dask.is_dask(X):
            return None
        self._check_fitted()
        X, names = _dask.as_dask_array(X, "X", self._allows_nan())
        if names is not None:
            self._check_feature_names(names)
        self._check_n_features(X, "X")
        scaled = X
        if self.data_min_ is not None:
            scaled = _dask.scaled(X, self.data_min_, self.data_range_)
        codebook = self.lattice_.reshape(-1, self.n_features_in_)
        return X, scaled, codebook, self._metric(), self._allows_nan()

    def _bmus(self, X, name="X", k=1):
        """``(X, flat BMU indices, squared distances)``, both ``(n, k)`` numpy arrays."""
        X, scaled, engine = self._prepare(X, name)
        lattice = self._lattice_on(engine)
        codebook = lattice.reshape(-1, lattice.shape[-1])
        index, distance = engine.find_bmus(scaled, codebook, k, self._metric())
        return X, engine.to_numpy(index), engine.to_numpy(distance)

    def scale(self, X):
        """``X`` scaled as the training data was: the space the lattice lives in.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features_in_)

        Returns
        -------
        ndarray of shape (n_samples, n_features_in_)
            Min-max scaled with the training data's ``data_min_`` and ``data_range_`` when the
            map was trained with ``normalize=True``; else a validated float copy of ``X``.
            Never ``X`` itself: writing to the result leaves the caller's array as it was.
        """
        X, scaled, _ = self._validated(X, "X")
        # without scaling the validated array may be the caller's own, or a view of it
        return scaled.copy() if scaled is X else scaled

    def predict(self, X):
        """Flat index ``row * cols + col`` of each sample's best matching unit.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features_in_)
            Scaled with the training data's scaling when the map was normalised.

        Returns
        -------
        ndarray of int64, shape (n_samples,)
            A lazy dask array when ``X`` is a Dask collection.
        """
        lazy = self._lazy(X)
        if lazy is not None:
            _, scaled, codebook, metric, allow_nan = lazy
            return _dask.predict(scaled, codebook, metric, allow_nan)
        return self._bmus(X)[1][:, 0]

    def transform(self, X):
        """Grid coordinates ``(row, col)`` of each sample's best matching unit.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features_in_)
            Scaled with the training data's scaling when the map was normalised.

        Returns
        -------
        ndarray of int64, shape (n_samples, 2)
            The 2-D embedding of the samples on the lattice; lazy (dask) for Dask input.
        """
        lazy = self._lazy(X)
        if lazy is not None:
            _, scaled, codebook, metric, allow_nan = lazy
            return _dask.transform(scaled, codebook, self.lattice_.shape[1], metric, allow_nan)
        return np.stack(np.divmod(self.predict(X), self.lattice_.shape[1]), axis=1)

    def fit_transform(self, X, y=None):
        """:meth:`fit` on ``X``, then :meth:`transform` it.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
        y : None
            Ignored; scikit-learn's signature.

        Returns
        -------
        ndarray of int64, shape (n_samples, 2)
            Grid coordinates ``(row, col)`` of each sample's best matching unit.
        """
        return self.fit(X).transform(X)

    def score(self, X, y=None):
        """Negative quantization error of ``X`` (higher is better, as scikit-learn expects).

        The error is measured where the map lives: in the training data's min-max scaled space
        when it was trained with ``normalize=True``, and under its ``metric``. So scores rank
        maps that share ``normalize`` and ``metric``; across those settings they are in
        different units and do not compare.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features_in_)
        y : None
            Ignored; scikit-learn's signature.

        Returns
        -------
        float
        """
        return -self.quantization_error(X)

    def get_feature_names_out(self, input_features=None):
        """Names of the two columns of :meth:`transform`, for scikit-learn pipelines.

        Parameters
        ----------
        input_features : array_like of str, optional
            Ignored: the columns are the grid coordinates, whatever the input.

        Returns
        -------
        ndarray of object, ``["som_row", "som_col"]``
        """
        self._check_fitted()
        return np.asarray(["som_row", "som_col"], dtype=object)

    def winner(self, x):
        """``(row, col)`` of the best matching unit of one sample (MiniSom's name).

        Parameters
        ----------
        x : array_like of shape (n_features_in_,)

        Returns
        -------
        tuple of int
        """
        self._check_fitted()
        x = _checks.as_float_array(x, "x", 1, self._allows_nan())
        flat = int(self._bmus(x[None, :], "x")[1][0, 0])
        return divmod(flat, self.lattice_.shape[1])

    def quantization_error(self, X):
        """Mean distance of each sample (scaled as in training) to its best matching unit,
        under the map's metric.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features_in_)

        Returns
        -------
        float
            A lazy dask scalar when ``X`` is a Dask collection.
        """
        lazy = self._lazy(X)
        if lazy is not None:
            _, scaled, codebook, metric, allow_nan = lazy
            return _dask.quantization_error(scaled, codebook, metric, allow_nan, name="X")
        return float(reported_distance(self._bmus(X)[2][:, 0], self._metric()).mean())

    def topographic_error(self, X):
        """Fraction of samples whose two best units are not neighbours (torus- and
        topology-aware: 8 neighbours on the rectangular lattice, 6 on the hexagonal one).

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features_in_)

        Returns
        -------
        float
            A lazy dask scalar when ``X`` is a Dask collection.
        """
        lazy = self._lazy(X)
        if lazy is not None:
            _, scaled, codebook, metric, allow_nan = lazy
            rows, cols = self.lattice_.shape[:2]
            topology = self.settings_["topology"]
            return _dask.topographic_error(
                scaled, codebook, rows, cols, self.settings_["is_torus"], topology, metric,
                allow_nan, name="X",
            )  # fmt: skip
        self._check_fitted()
        rows, cols = self.lattice_.shape[:2]
        if rows * cols == 1:
            self._prepare(X, "X")
            return 0.0
        index = self._bmus(X, k=2)[1]
        topology = self.settings_["topology"]
        return analysis.non_adjacent_share(index, rows, cols, self.settings_["is_torus"], topology)

    def project(self, X, labels=None):
        """Group samples by their best matching unit, as :func:`gpusom.project_on_lattice`.

        Unlike that function, the samples are compared in the space of the lattice: scaled with
        the stored training scaling when the map was normalised.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features_in_)
        labels : sequence, optional
            One label per sample; when given, the cells hold labels instead of sample vectors.

        Returns
        -------
        dict
            ``{(row, col): [...]}`` for every cell in row-major order: the samples (unscaled) or
            labels landing there, in data order; an empty list where none lands. Dask input is
            computed (the result holds the samples).
        """
        lazy = self._lazy(X)
        if lazy is not None:
            X, scaled, codebook, metric, allow_nan = lazy
            shape = self.lattice_.shape[:2]
            return _dask.project(scaled, codebook, shape, labels, X, metric, allow_nan, name="X")
        X, index, _ = self._bmus(X)
        labels = _checks.as_labels(labels, X.shape[0], "labels", of="X")
        items = labels if labels is not None else _backend.array_engine(X).to_numpy(X)
        return group_by_cell(index[:, 0], self.lattice_.shape[:2], items)

    # -- the model file --------------------------------------------------------------------------

    def save(self, path):
        """Save the trained map to one versioned model file, atomically.

        The file (an ``.npz`` archive; the path is used as given) holds a JSON header (format
        ``"gpusom-model"``, version 1, the parameters, ``settings_``, the feature count and
        names, the backend that ran, the position ``steps_done_`` of ``num_iterations_`` and the
        state of the sample-order generator) and the arrays ``lattice`` and, for a normalised
        map, ``data_min`` and ``data_range``. A ``seed`` given as a Generator is stored as None;
        the sample order continues from the stored state anyway.

        Parameters
        ----------
        path : str or os.PathLike

        Returns
        -------
        str
            The path written.
        """
        self._check_fitted()
        path = io.write_model(path, *_model_file.model_contents(self))
        self._say(f"SOM model saved at {path}")
        return path

    @classmethod
    def load(cls, path):
        """A SOM from a model file written by :meth:`save`, ready to use or to resume.

        Parameters
        ----------
        path : str or os.PathLike

        Returns
        -------
        SOM

        Raises
        ------
        ValueError
            When the file is not a gpusom model, is truncated or damaged, or has another format
            version.
        """
        header, arrays = io.read_model(path)
        try:
            som = _model_file.restore(cls, header, arrays)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"{os.fspath(path)} is not a valid gpusom model: {exc}") from None
        som._say(f"SOM model loaded from {os.fspath(path)}")
        return som


class _Input:
    """Training data as a validated host array, with its feature names and its engine."""

    is_dask = False
    engine = None  # chosen by _backend.training_engine

    def __init__(self, data, name, allow_nan=False):
        self.device_engine = _backend.array_engine(data)
        self.on_device = self.device_engine.name != "cpu"
        self.names = _checks.feature_names(data)
        # Validation, scaling and the initial codebook are host code: a GPU array is checked
        # where it lives and copied to the host once; the training engine uploads it again.
        array = self.device_engine.as_array(data, name, 2, allow_nan)
        self.values = self.device_engine.to_numpy(array)

    def feature_range(self):
        return feature_range(self.values)

    def scaled(self, low, span):
        return scale(self.values, low, span, np)

    def initial_sample(self, values, rng):
        return values


class _DaskInput:
    """Training data as a validated Dask array (``gpusom._dask``): it stays in its chunks."""

    is_dask = True
    on_device = False

    def __init__(self, data, name, allow_nan=False):
        self.values, self.names = _dask.as_dask_array(data, name, allow_nan)
        if np.isnan(self.values.shape[0]):
            # A filtered array does not know its length; the sample draw and the engine's
            # memory estimate need it. One pass computes the chunks' lengths (of this validated
            # copy, never the caller's array).
            self.values.compute_chunk_sizes()
            if self.values.shape[0] == 0:  # a filter that kept no sample
                raise _dask._empty_error(name, self.values.shape)
        self.engine = _DaskEngine()

    def feature_range(self):
        dask = _dask._dask()
        low, high = dask.compute(
            dask.array.nanmin(self.values, axis=0), dask.array.nanmax(self.values, axis=0)
        )
        return low, high - low

    def scaled(self, low, span):
        return _dask.scaled(self.values, low, span)

    def initial_sample(self, values, rng):
        """At most ``INIT_SAMPLE_ROWS`` rows, drawn at random, for the initial codebook."""
        n = values.shape[0]
        if n <= INIT_SAMPLE_ROWS:
            return np.asarray(values.compute())
        rows = np.sort(rng.choice(n, INIT_SAMPLE_ROWS, replace=False))
        return np.asarray(values[rows].compute())


#: Rows of a Dask data set that the initial codebook is computed from.
INIT_SAMPLE_ROWS = 10_000


class _DaskEngine:
    """What ``SOM._train`` asks of the engine of Dask data: its name, and where the codebook
    lives between epochs (the client: numpy)."""

    name = "dask"
    xp = np
    to_numpy = staticmethod(np.asarray)


def _batch_epoch(engine, values, dtype, settings):
    """``epoch(codebook, sigma)``: one batch epoch of the run on ``engine``, or one map-reduce
    over the chunks for Dask data (``gpusom._dask``)."""
    lattice, metric = _training.lattice_arguments(settings), _training.metric_code(settings)
    if engine.name == "dask":
        allow_nan = _training.ignores_nan(settings)
        return lambda codebook, sigma: _dask.train_batch(
            values, codebook, [sigma], *lattice, metric=metric, allow_nan=allow_nan
        )
    data = engine.xp.asarray(values.astype(dtype, copy=False))
    return lambda codebook, sigma: engine.train_batch(codebook, data, [sigma], *lattice, metric)


def _check_converged(lattice, settings):
    """Raise a ``ValueError`` for a lattice that training drove to inf or NaN (kept nowhere)."""
    bad = int(np.count_nonzero(~np.isfinite(lattice)))
    if not bad:
        return
    why = (
        "the Mexican hat's negative weights push the cells beyond sigma away from every "
        "sample, further each time; use a much smaller learning_rate, truncate <= 1 (its "
        "positive part only) or another neighborhood"
        if settings["neighborhood"] == "mexican_hat"
        else "lower learning_rate or scale the data (normalize=True)"
    )
    raise ValueError(f"training diverged: {bad} lattice values are inf or NaN; {why}")
