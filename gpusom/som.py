"""The ``SOM`` estimator: settings, the host training loop, resuming, the model file, and
scikit-learn's conventions."""

import copy
import inspect
import os
import signal
import threading
from timeit import default_timer as timer

import numpy as np

from . import _backend, _checks, _config, analysis, io
from ._math import NEIGHBORHOODS
from ._scaling import feature_range, scale
from .analysis import _bmus, _host, group_by_cell
from .schedules import exponential_decay, sample_order

INITS = {"random": 0, "sample": 1, "pca": 2}
DTYPES = {"float32": np.float32, "float64": np.float64}


class NotFittedError(ValueError, AttributeError):
    """A method that needs a trained map was called before ``fit``, ``train`` or ``SOM.load``."""


class SOM:
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
    num_iterations : int, optional
        Online steps run by :meth:`fit`. Default ``max(10 * n_samples, 10 * rows * cols)``: every
        sample drawn about ten times, and at least ten steps per cell so that each cell is pulled
        into place even when there are fewer samples than cells. :meth:`train` takes its own
        ``num_iterations`` argument instead.
    normalize : bool, default False
        :meth:`fit` min-max scales each feature to [0, 1] first, as ``train(..., normalize=True)``.
    sigma : float, optional
        Neighbourhood radius (in cells) at the first step. Default ``max(rows, cols) / 4``.
    sigma_end : float, optional
        Radius at the last step. Default 0.55 when there are at least as many training samples
        as cells, falling geometrically to 0.3 at one sample per ten cells (see Notes).
    learning_rate : float, optional
        Learning rate at the first step. Default 0.5.
    learning_rate_end : float, optional
        Learning rate at the last step. Default 0.02 with at least one sample per cell, rising
        geometrically to 0.2 at one sample per ten cells (see Notes).
    neighborhood : {"gaussian", "bubble"}, default "gaussian"
        ``h(d) = exp(-d^2 / (2 sigma_t^2))`` for ``d <= truncate * sigma_t``, or ``h = 1`` for
        ``d <= sigma_t`` (bubble); ``d`` is the Euclidean distance between grid positions.
    truncate : float, default 2.0
        The Gaussian is cut at ``truncate * sigma_t`` cells, where it has fallen to
        ``exp(-truncate^2 / 2)`` (13.5% at 2): the window is what keeps steps cheap. On the
        benchmark workloads 2.0 gave a lower quantization error than the uncut Gaussian and a
        topographic error within 0.004 of it, at half the cells per step of 3.0.
    init : {"random", "sample", "pca"}, default "random"
        Initial codebook: uniform within each feature's range, random training samples, or a
        grid on the plane of the data's first two principal components (+-2 standard deviations).
    dtype : {"float32", "float64"}, default "float32"
        Precision of the codebook and of all training arithmetic.
    backend : {"auto", "cpu", "cuda"}, default "auto"
        Where training runs. "auto" picks CUDA when a CUDA device is present, else the CPU; the
        ``GPUSOM_BACKEND`` environment variable overrides "auto". Kept as given; ``backend_``
        records what ran.
    seed : int or numpy.random.Generator, optional
        Seed of the initialisation and of the sample order; the same seed gives the same map.
    verbose : bool, default True
        Print the one-line timing messages of the original walk-through, and a progress bar for
        runs expected to take more than about a second.

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
    Both radius and rate decay exponentially,
    ``sigma_t = sigma * (sigma_end / sigma) ** f`` and
    ``lr_t = learning_rate * (learning_rate_end / learning_rate) ** f`` with
    ``f = t / max(T - 1, 1)``. On a torus each axis uses the minimum-image distance and every cell
    is updated at most once per step, even when the window is wider than the map.

    The default end points were chosen by measurement (``benchmarks/``): with many samples per
    cell a small final radius or a large final rate crumples the map (topographic error rises),
    while with fewer samples than cells a large final rate lets cells settle onto the samples
    (quantization error falls towards 0) without harming the order. With ``rho`` samples per
    cell and ``s = clip(log10(1 / rho), 0, 1)``: ``sigma_end = 0.55 * (0.3 / 0.55) ** s`` and
    ``learning_rate_end = 0.02 * 10 ** s``.

    Training runs on the host in slices of steps, each handed to the backend in one call and
    sized to take about ``gpusom._config.SLICE_SECONDS``; the sample order of every slice comes
    from one random generator in sequence, so slicing never changes the result. Ctrl-C
    (SIGINT) during training is held until the slice in flight has finished: training then
    stops, the SOM keeps the lattice and position of that step (ready for :meth:`save` or
    ``train(..., resume=True)``), and ``KeyboardInterrupt`` is raised again with a message
    saying how far training got, so scripts still stop.

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
        num_iterations=None,
        normalize=False,
        sigma=None,
        sigma_end=None,
        learning_rate=None,
        learning_rate_end=None,
        neighborhood="gaussian",
        truncate=2.0,
        init="random",
        dtype="float32",
        backend="auto",
        seed=None,
        verbose=True,
    ):
        self.som_size = som_size
        self.is_torus = is_torus
        self.num_iterations = num_iterations
        self.normalize = normalize
        self.sigma = sigma
        self.sigma_end = sigma_end
        self.learning_rate = learning_rate
        self.learning_rate_end = learning_rate_end
        self.neighborhood = neighborhood
        self.truncate = truncate
        self.init = init
        self.dtype = dtype
        self.backend = backend
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

    # -- scikit-learn's parameter protocol -------------------------------------------------------

    @classmethod
    def _param_names(cls):
        parameters = list(inspect.signature(cls.__init__).parameters.values())[1:]
        return sorted(p.name for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD))

    def get_params(self, deep=True):
        """The constructor's parameters, as scikit-learn's ``BaseEstimator.get_params``.

        Parameters
        ----------
        deep : bool, default True
            Accepted for scikit-learn; a SOM holds no sub-estimators, so it changes nothing.

        Returns
        -------
        dict
            Parameter name to value.
        """
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params):
        """Set constructor parameters; they are checked when training starts, not here.

        Parameters
        ----------
        **params
            Parameter names and their new values.

        Returns
        -------
        SOM
            This SOM.
        """
        valid = self._param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(
                    f"invalid parameter {name!r} for SOM; valid parameters are: {', '.join(valid)}"
                )
            setattr(self, name, value)
        return self

    def __repr__(self):
        defaults = inspect.signature(type(self).__init__).parameters
        shown = [
            f"{name}={value!r}"
            for name, value in self.get_params().items()
            if defaults[name].default is inspect.Parameter.empty
            or repr(value) != repr(defaults[name].default)
        ]
        return f"{type(self).__name__}({', '.join(shown)})"

    def __sklearn_tags__(self):
        """Tags for scikit-learn's estimator checks; only scikit-learn calls this."""
        from sklearn.utils import Tags, TargetTags, TransformerTags

        # transform gives integer grid coordinates, whatever the input dtype.
        return Tags(
            estimator_type=None,
            target_tags=TargetTags(required=False),
            transformer_tags=TransformerTags(preserves_dtype=[]),
        )

    # -- training --------------------------------------------------------------------------------

    def _settings(self, n_samples):
        """Validated settings with the documented defaults filled in (option names, not codes)."""
        rows, cols = _checks.as_som_size(self.som_size)
        is_torus = _checks.as_bool(self.is_torus, "is_torus")
        for name, choices in (("neighborhood", NEIGHBORHOODS), ("init", INITS), ("dtype", DTYPES)):
            _checks.as_choice(getattr(self, name), name, choices)

        def positive(value, name, default):
            return default if value is None else _checks.as_positive_float(value, name)

        sparsity = float(np.clip(np.log10(rows * cols / n_samples), 0.0, 1.0))
        sigma = positive(self.sigma, "sigma", max(rows, cols) / 4.0)
        return {
            "rows": rows,
            "cols": cols,
            "is_torus": is_torus,
            "sigma": sigma,
            "sigma_end": positive(
                self.sigma_end, "sigma_end", min(0.55 * (0.3 / 0.55) ** sparsity, sigma)
            ),
            "learning_rate": positive(self.learning_rate, "learning_rate", 0.5),
            "learning_rate_end": positive(
                self.learning_rate_end, "learning_rate_end", 0.02 * 10.0**sparsity
            ),
            "neighborhood": self.neighborhood,
            "truncate": _checks.as_positive_float(self.truncate, "truncate"),
            "init": self.init,
            "dtype": self.dtype,
        }

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
            ``steps_done_`` with its settings, lattice and random sample order, instead of
            starting a new one: ``train(d, T, until=k)`` then ``train(d, T, resume=True)`` gives
            the lattice of ``train(d, T)``, bit for bit on the CPU, when ``d`` is the same data.
            ``normalize`` must be as in the run (the stored scaling is applied). Resuming a
            finished run changes nothing.
        until : int, optional
            Stop after step ``until`` of the run (default ``num_iterations``, the end).

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
        return self._train(_Input(data, "data"), num_iterations, normalize, resume, until)

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
        data = _Input(X, "X")
        if self.num_iterations is None:
            rows, cols = _checks.as_som_size(self.som_size)
            num_iterations = 10 * max(data.values.shape[0], rows * cols)
        else:
            num_iterations = _checks.as_positive_int(self.num_iterations, "num_iterations")
        normalize = _checks.as_bool(self.normalize, "normalize")
        self._train(data, num_iterations, normalize, False, num_iterations)
        return self

    def _train(self, data, num_iterations, normalize, resume, until):
        """The training run behind :meth:`train` and :meth:`fit`, on validated arguments."""
        values, names = data.values, data.names
        if resume:
            self._check_resumable(values, names, num_iterations, normalize, until)
            settings, first = self.settings_, self.steps_done_
            low, span = self.data_min_, self.data_range_
            if first == until:
                self._say(f"Nothing to resume: the run is at step {first} of {num_iterations}.")
                return self.lattice_
        else:
            settings, first = self._settings(values.shape[0]), 0
            low = span = None
        if normalize:
            start = timer()
            if not resume:
                low, span = feature_range(values)
            values = scale(values, low, span)
            self._say(f"Data scaling took: {timer() - start:f} seconds.")
        rows, cols, dtype = settings["rows"], settings["cols"], DTYPES[settings["dtype"]]
        n_samples, dim = values.shape
        itemsize = np.dtype(dtype).itemsize
        # codebook (twice: host and working copy), the data copy and one slice of schedules
        _checks.check_memory(
            2 * rows * cols * dim * itemsize + values.size * itemsize,
            f"a {rows}x{cols} lattice of {dim}-d vectors",
        )
        backend = _backend.resolve(self.backend, prefer_device=data.on_device)

        start = timer()
        if resume:
            # The run's own generator, copied so that a failed call leaves the SOM as it was.
            rng = copy.deepcopy(self._rng)
            codebook = self.lattice_.reshape(rows * cols, dim).astype(dtype)
        else:
            rng = np.random.default_rng(self.seed)
            codebook = initial_codebook(values, rows * cols, cols, INITS[settings["init"]], rng)
            codebook = codebook.astype(dtype)
        device_codebook, device_data = backend.to_device(codebook, values)
        position, interrupted = self._run_slices(
            backend,
            device_codebook,
            device_data,
            n_samples,
            rng,
            settings,
            first,
            until,
            num_iterations,
        )

        # Everything the run changes is recorded here, together, also after an interrupt.
        self.lattice_ = backend.to_host(device_codebook, dim).reshape(rows, cols, dim)
        self.lattice_device_ = data.namespace.asarray(self.lattice_) if data.on_device else None
        self.backend_ = backend.NAME
        self.settings_ = settings
        self.n_features_in_ = dim
        if names is not None:
            self.feature_names_in_ = names
        elif not resume and hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        self.data_min_, self.data_range_ = low, span
        self.num_iterations_, self.steps_done_ = num_iterations, position
        # A copy: a Generator given as seed stays the caller's to use.
        self._rng = copy.deepcopy(rng)
        if interrupted:
            raise KeyboardInterrupt(
                f"SOM training interrupted at step {position:,} of {num_iterations:,} "
                f"({100 * position / num_iterations:.1f}%); the SOM holds the lattice of that "
                f"step: save it (som.save) or continue with "
                f"som.train(data, {num_iterations}, resume=True)"
            )
        self._say(f"SOM training took: {timer() - start:f} seconds.")
        return self.lattice_

    def _check_resumable(self, values, names, num_iterations, normalize, until):
        if not hasattr(self, "steps_done_"):
            raise ValueError(
                "resume=True continues an earlier run, but this SOM holds none: train it or load "
                "a model (SOM.load) first"
            )
        if num_iterations != self.num_iterations_:
            raise ValueError(
                f"num_iterations must be the run's total, {self.num_iterations_}, when resuming "
                f"(got {num_iterations}): the schedules of the steps done depend on it"
            )
        if normalize != (self.data_min_ is not None):
            raise ValueError(
                f"the run was trained with normalize={not normalize}; resume it with the same"
            )
        if values.shape[1] != self.n_features_in_:
            raise ValueError(
                f"data has {values.shape[1]} features, but the run trains on {self.n_features_in_}"
            )
        if until < self.steps_done_:
            raise ValueError(f"until ({until}) is before the run's step {self.steps_done_}")
        if names is not None:
            self._check_feature_names(names)

    def _run_slices(self, backend, codebook, data, n_samples, rng, settings, first, stop, total):
        """Online steps ``first`` to ``stop`` of a ``total``-step run, one slice per backend call.

        ``data`` is the backend's copy of ``n_samples`` samples. Returns ``(position,
        interrupted)``: the step reached, and whether Ctrl-C stopped it.
        """
        position = first
        size = min(_config.FIRST_SLICE_STEPS, _config.STEPS_PER_SLICE)
        bar = None
        with _DeferredInterrupt() as interrupt:
            try:
                while position < stop and not interrupt.requested:
                    steps = np.arange(position, min(position + size, stop))
                    before = rng.bit_generator.state
                    tick = timer()
                    try:
                        _train_slice(
                            backend, codebook, data, n_samples, rng, settings, steps, total
                        )
                    except KeyboardInterrupt:
                        # Raised by the backend call itself (Ctrl-C is deferred, so only where the
                        # SIGINT handler is not Python's default): the slice counts as not run and
                        # its sample order is rewound.
                        rng.bit_generator.state = before
                        interrupt.requested = True
                        break
                    elapsed = timer() - tick
                    # The first slice also pays for loading or compiling the kernels, so the
                    # run's length is judged from the pace of the later ones.
                    expected = elapsed * (stop - first) / steps.size
                    if bar is None and position > first and self.verbose:
                        if expected > _config.PROGRESS_MIN_SECONDS:
                            bar = _progress_bar(position, stop)
                    position += steps.size
                    if bar is not None:
                        bar.update(steps.size)
                    size = _next_slice_size(steps.size, elapsed)
            finally:
                if bar is not None:
                    bar.close()
        return position, interrupt.requested

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

    def _check_feature_names(self, names):
        fitted = getattr(self, "feature_names_in_", None)
        if fitted is None or (len(fitted) == len(names) and (fitted == names).all()):
            return
        raise ValueError(_names_mismatch(fitted, names))

    def _prepare(self, X, name):
        """``(X, X scaled as the training data)``, validated against the trained map."""
        self._check_fitted()
        names = _checks.feature_names(X)
        if names is not None:
            self._check_feature_names(names)
        if _backend.is_device_array(X):
            X = _backend.resolve("cuda").as_device_array(X, name, 2)
        else:
            X = _checks.as_data(X, name)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"{name} has {X.shape[1]} features, but SOM is expecting {self.n_features_in_} "
                "features as input"
            )
        if self.data_min_ is None:
            return X, X
        return X, scale(X, self.data_min_, self.data_range_)

    def _on_training_device(self, scaled):
        """``(samples, lattice)`` where the map lives: on the GPU after training there.

        Keeps the analysis beside the lattice; a model trained on a GPU and loaded on a machine
        without one (or without cupy) is analysed on the CPU.
        """
        if self.backend_ != "cuda" and self.lattice_device_ is None:
            return scaled, self.lattice_
        try:
            device = _backend.resolve("cuda")
            xp = device.array_module()
        except _backend.BackendUnavailableError:
            return scaled, self.lattice_
        lattice = self.lattice_device_ if self.lattice_device_ is not None else self.lattice_
        return device.as_device_array(scaled, "X", 2), xp.asarray(lattice)

    def _flat_bmus(self, X, name="X"):
        index, _ = _bmus(*self._on_training_device(self._prepare(X, name)[1]))
        return index[:, 0]

    def scale(self, X):
        """``X`` scaled as the training data was: the space the lattice lives in.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features_in_)

        Returns
        -------
        ndarray of shape (n_samples, n_features_in_)
            Min-max scaled with the training data's ``data_min_`` and ``data_range_`` when the
            map was trained with ``normalize=True``; else ``X`` as a validated float array.
        """
        return self._prepare(X, "X")[1]

    def predict(self, X):
        """Flat index ``row * cols + col`` of each sample's best matching unit.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features_in_)
            Scaled with the training data's scaling when the map was normalised.

        Returns
        -------
        ndarray of int64, shape (n_samples,)
        """
        return self._flat_bmus(X)

    def transform(self, X):
        """Grid coordinates ``(row, col)`` of each sample's best matching unit.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features_in_)
            Scaled with the training data's scaling when the map was normalised.

        Returns
        -------
        ndarray of int64, shape (n_samples, 2)
            The 2-D embedding of the samples on the lattice.
        """
        return np.stack(np.divmod(self._flat_bmus(X), self.lattice_.shape[1]), axis=1)

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
        """
        return self.fit(X).transform(X)

    def score(self, X, y=None):
        """Negative quantization error of ``X`` (higher is better, as scikit-learn expects).

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

    def winner(self, x):
        """``(row, col)`` of the best matching unit of one sample (MiniSom's name).

        Parameters
        ----------
        x : array_like of shape (n_features_in_,)

        Returns
        -------
        tuple of int
        """
        x = _checks.as_float_array(x, "x", 1)
        row, col = divmod(int(self._flat_bmus(x[None, :], "x")[0]), self.lattice_.shape[1])
        return row, col

    def quantization_error(self, X):
        """Mean distance of each sample (scaled as in training) to its best matching unit.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features_in_)

        Returns
        -------
        float
        """
        return analysis.quantization_error(*self._on_training_device(self._prepare(X, "X")[1]))

    def topographic_error(self, X):
        """Fraction of samples whose two best units are not neighbours (torus-aware).

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features_in_)

        Returns
        -------
        float
        """
        scaled, lattice = self._on_training_device(self._prepare(X, "X")[1])
        return analysis.topographic_error(scaled, lattice, self.settings_["is_torus"])

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
            labels landing there, in data order; an empty list where none lands.
        """
        X, scaled = self._prepare(X, "X")
        labels = _checks.as_labels(labels, X.shape[0], "labels")
        index, _ = _bmus(*self._on_training_device(scaled))
        items = labels if labels is not None else _host(X)
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
        names = getattr(self, "feature_names_in_", None)
        header = {
            "params": self.get_params(),
            "settings": self.settings_,
            "n_features_in": self.n_features_in_,
            "feature_names_in": None if names is None else [str(name) for name in names],
            "backend": self.backend_,
            "position": {"steps_done": self.steps_done_, "num_iterations": self.num_iterations_},
            "sample_order_state": self._rng.bit_generator.state,
        }
        arrays = {"lattice": self.lattice_}
        if self.data_min_ is not None:
            arrays.update(data_min=self.data_min_, data_range=self.data_range_)
        path = io.write_model(path, header, arrays)
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
            som = cls._from_model(header, arrays)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"{os.fspath(path)} is not a valid gpusom model: {exc}") from None
        som._say(f"SOM model loaded from {os.fspath(path)}")
        return som

    @classmethod
    def _from_model(cls, header, arrays):
        params = dict(header["params"])
        params["som_size"] = tuple(params["som_size"])
        som = cls(**params)
        settings = dict(header["settings"])
        lattice = _checks.as_lattice(arrays["lattice"], "the lattice")
        if lattice.shape[:2] != (settings["rows"], settings["cols"]) or lattice.dtype != np.dtype(
            DTYPES[settings["dtype"]]
        ):
            raise ValueError(
                f"the lattice {lattice.shape} {lattice.dtype} contradicts the settings"
            )
        position = header["position"]
        steps_done, total = int(position["steps_done"]), int(position["num_iterations"])
        if not 0 <= steps_done <= total:
            raise ValueError(f"position {steps_done} of {total} steps is impossible")
        dim = lattice.shape[2]
        som.lattice_, som.lattice_device_ = lattice, None
        som.backend_ = str(header["backend"])
        som.settings_ = settings
        som.n_features_in_ = dim
        if header["feature_names_in"] is not None:
            som.feature_names_in_ = np.asarray(header["feature_names_in"], dtype=object)
        som.data_min_, som.data_range_ = arrays.get("data_min"), arrays.get("data_range")
        if som.data_min_ is not None and (som.data_min_.shape, som.data_range_.shape) != (
            (dim,),
            (dim,),
        ):
            raise ValueError("the normalisation does not match the lattice's features")
        som.num_iterations_, som.steps_done_ = total, steps_done
        som._rng = _generator(header["sample_order_state"])
        return som


class _Input:
    """Training data as a validated host array, with its feature names and where it came from."""

    def __init__(self, data, name):
        self.on_device = _backend.is_device_array(data)
        self.namespace = _backend.array_namespace(data)
        self.names = _checks.feature_names(data)
        # Validation, scaling and the initial codebook are host code: a GPU array is copied to
        # the host once, and the backend uploads the checked data for training.
        host = _backend.resolve("cuda").to_numpy(data) if self.on_device else data
        self.values = _checks.as_data(host, name)


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


def _train_slice(backend, codebook, data, n_samples, rng, settings, steps, total):
    """One backend call: the online steps numbered ``steps`` of a ``total``-step run."""
    backend.train_online(
        codebook,
        data,
        sample_order(rng, n_samples, steps.size),
        exponential_decay(settings["sigma"], settings["sigma_end"], steps, total),
        exponential_decay(settings["learning_rate"], settings["learning_rate_end"], steps, total),
        settings["rows"],
        settings["cols"],
        settings["is_torus"],
        NEIGHBORHOODS[settings["neighborhood"]],
        settings["truncate"],
    )


def _progress_bar(position, stop):
    """A tqdm bar (terminal or notebook) of the steps up to ``stop``, starting at ``position``."""
    from tqdm.auto import tqdm

    return tqdm(total=stop, initial=position, unit="step", unit_scale=True, desc="SOM training")


def _next_slice_size(steps, elapsed):
    """Steps for the next slice to take about ``_config.SLICE_SECONDS`` at the last one's pace."""
    if elapsed <= 0:
        return _config.STEPS_PER_SLICE
    return int(np.clip(steps * _config.SLICE_SECONDS / elapsed, 1, _config.STEPS_PER_SLICE))


def _names_mismatch(fitted, names):
    """scikit-learn's message for feature names that differ from those seen in training."""
    unseen = sorted(set(names) - set(fitted))
    missing = sorted(set(fitted) - set(names))
    lines = ["The feature names should match those that were passed during fit."]
    if not unseen and not missing:
        lines.append("Feature names must be in the same order as they were in fit.")
    if unseen:
        lines += ["Feature names unseen at fit time:", *(f"- {name}" for name in unseen)]
    if missing:
        lines += ["Feature names seen at fit time, yet now missing:", *(f"- {n}" for n in missing)]
    return "\n".join(lines) + "\n"


def _generator(state):
    """A numpy Generator in the stored ``bit_generator.state``."""
    bit_generator = getattr(np.random, str(state["bit_generator"]), None)
    if not (isinstance(bit_generator, type) and issubclass(bit_generator, np.random.BitGenerator)):
        raise ValueError(f"unknown bit generator {state['bit_generator']!r}")
    rng = np.random.Generator(bit_generator())
    rng.bit_generator.state = state
    return rng


def initial_codebook(data, n_cells, cols, init, rng):
    """The ``(n_cells, dim)`` float64 starting codebook for init code ``init``."""
    dim = data.shape[1]
    if init == INITS["sample"]:
        return data[rng.integers(0, data.shape[0], size=n_cells)].astype(np.float64)
    if init == INITS["pca"]:
        return _pca_grid(data.astype(np.float64), n_cells // cols, cols)
    low = data.min(axis=0).astype(np.float64)
    high = data.max(axis=0).astype(np.float64)
    return low + (high - low) * rng.random((n_cells, dim))


def _pca_grid(data, rows, cols):
    """A grid spanning +-2 standard deviations along the first two principal components.

    The longer lattice axis follows the first component.
    """
    mean = data.mean(axis=0)
    centred = data - mean
    _, singular, components = np.linalg.svd(centred, full_matrices=False)
    std = singular / np.sqrt(max(data.shape[0] - 1, 1))
    axes = np.zeros((2, data.shape[1]))
    for i in range(min(2, components.shape[0])):
        axes[i] = 2.0 * std[i] * components[i]
    # A constant feature must stay exactly constant: the SVD's rounding noise there would only
    # decay towards the data during training, through float32 subnormals that are slow on CPUs.
    axes[:, np.ptp(data, axis=0) == 0] = 0.0
    major, minor = (axes[0], axes[1]) if rows >= cols else (axes[1], axes[0])
    r = np.linspace(-1.0, 1.0, rows) if rows > 1 else np.zeros(1)
    c = np.linspace(-1.0, 1.0, cols) if cols > 1 else np.zeros(1)
    grid = mean + r[:, None, None] * major + c[None, :, None] * minor
    return grid.reshape(rows * cols, -1)
