"""The ``SOM`` trainer: settings, validation, backend choice and the host training loop."""

from timeit import default_timer as timer

import numpy as np

from . import _backend, _checks, _config
from ._math import NEIGHBORHOODS
from .schedules import exponential_decay, sample_order

INITS = {"random": 0, "sample": 1, "pca": 2}
DTYPES = {"float32": np.float32, "float64": np.float64}


class SOM:
    """A self-organizing map trained online, one sample per step, on a grid or a torus.

    Parameters
    ----------
    som_size : tuple of int
        ``(rows, cols)`` of the lattice.
    is_torus : bool, default False
        Wrap both lattice axes, so opposite edges are neighbours.
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
        ``GPUSOM_BACKEND`` environment variable overrides "auto".
    seed : int or numpy.random.Generator, optional
        Seed of the initialisation and of the sample order; the same seed gives the same map.
    verbose : bool, default True
        Print the one-line timing messages of the original walk-through.

    Attributes
    ----------
    lattice_ : ndarray of shape (rows, cols, dim)
        The trained codebook (also returned by :meth:`train`); ``som.lattice`` is the same array.
    backend_ : str
        "cpu" or "cuda", the backend that ran the last training (``backend`` keeps the request).

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

    Examples
    --------
    >>> import numpy as np
    >>> from gpusom import SOM
    >>> data = np.random.default_rng(0).random((200, 3))
    >>> som = SOM(som_size=(10, 20), seed=0, verbose=False)
    >>> som.train(data, num_iterations=2000).shape
    (10, 20, 3)
    """

    def __init__(
        self,
        som_size,
        is_torus=False,
        *,
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

    def _settings(self, n_samples):
        """Validated settings with the documented defaults filled in."""
        rows, cols = _checks.as_som_size(self.som_size)
        if not isinstance(self.is_torus, (bool, np.bool_)):
            raise TypeError(f"is_torus must be True or False, got {self.is_torus!r}")

        def positive(value, name, default):
            return default if value is None else _checks.as_positive_float(value, name)

        sparsity = float(np.clip(np.log10(rows * cols / n_samples), 0.0, 1.0))
        sigma = positive(self.sigma, "sigma", max(rows, cols) / 4.0)
        return {
            "rows": rows,
            "cols": cols,
            "is_torus": bool(self.is_torus),
            "sigma": sigma,
            "sigma_end": positive(
                self.sigma_end, "sigma_end", min(0.55 * (0.3 / 0.55) ** sparsity, sigma)
            ),
            "learning_rate": positive(self.learning_rate, "learning_rate", 0.5),
            "learning_rate_end": positive(
                self.learning_rate_end, "learning_rate_end", 0.02 * 10.0**sparsity
            ),
            "neighborhood": _checks.as_choice(self.neighborhood, "neighborhood", NEIGHBORHOODS),
            "truncate": _checks.as_positive_float(self.truncate, "truncate"),
            "init": _checks.as_choice(self.init, "init", INITS),
            "dtype": _checks.as_choice(self.dtype, "dtype", DTYPES),
        }

    def train(self, data, num_iterations, normalize=False):
        """Train the map online and return the lattice.

        Parameters
        ----------
        data : array_like of shape (n_samples, dim)
            Training vectors (finite numbers). A GPU array (cupy) makes ``backend="auto"`` train
            on the GPU and keeps a device copy of the lattice as ``som.lattice_device``.
        num_iterations : int
            Number of online steps, one sample each.
        normalize : bool, default False
            Min-max scale each feature of ``data`` to [0, 1] first (constant features become 0).

        Returns
        -------
        lattice : ndarray of shape (rows, cols, dim)
            The trained codebook in the SOM's ``dtype``; also kept as ``som.lattice_``.
        """
        num_iterations = _checks.as_positive_int(num_iterations, "num_iterations")
        on_device = _backend.is_device_array(data)
        xp = _backend.array_namespace(data)
        # Validation, scaling and the initial codebook are host code: a GPU array is copied to the
        # host once, and the backend uploads the checked data for training.
        data = _checks.as_data(_backend.resolve("cuda").to_numpy(data) if on_device else data)
        settings = self._settings(data.shape[0])
        if normalize:
            start = timer()
            data = normalize_features(data)
            self._say(f"Data scaling took: {timer() - start:f} seconds.")
        rows, cols, dtype = settings["rows"], settings["cols"], settings["dtype"]
        itemsize = np.dtype(dtype).itemsize
        # codebook (twice: host and working copy), the data copy and one slice of schedules
        _checks.check_memory(
            2 * rows * cols * data.shape[1] * itemsize + data.size * itemsize,
            f"a {rows}x{cols} lattice of {data.shape[1]}-d vectors",
        )
        backend = _backend.resolve(self.backend, prefer_device=on_device)

        start = timer()
        rng = np.random.default_rng(self.seed)
        codebook = initial_codebook(data, rows * cols, cols, settings["init"], rng).astype(dtype)
        device_codebook, device_data = backend.to_device(codebook, data)
        for first in range(0, num_iterations, _config.STEPS_PER_SLICE):
            steps = np.arange(first, min(first + _config.STEPS_PER_SLICE, num_iterations))
            backend.train_online(
                device_codebook,
                device_data,
                sample_order(rng, data.shape[0], steps.size),
                exponential_decay(settings["sigma"], settings["sigma_end"], steps, num_iterations),
                exponential_decay(
                    settings["learning_rate"], settings["learning_rate_end"], steps, num_iterations
                ),
                rows,
                cols,
                settings["is_torus"],
                settings["neighborhood"],
                settings["truncate"],
            )
        self.lattice_ = backend.to_host(device_codebook, data.shape[1]).reshape(rows, cols, -1)
        self.lattice_device = xp.asarray(self.lattice_) if on_device else None
        self.backend_ = backend.NAME
        self._say(f"SOM training took: {timer() - start:f} seconds.")
        return self.lattice_

    def _say(self, message):
        if self.verbose:
            print(message)


def normalize_features(data):
    """Min-max scale each column of ``data`` to [0, 1]; constant columns become 0."""
    low = data.min(axis=0)
    span = data.max(axis=0) - low
    safe = np.where(span > 0, span, 1)
    return np.where(span > 0, (data - low) / safe, 0).astype(data.dtype, copy=False)


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
    major, minor = (axes[0], axes[1]) if rows >= cols else (axes[1], axes[0])
    r = np.linspace(-1.0, 1.0, rows) if rows > 1 else np.zeros(1)
    c = np.linspace(-1.0, 1.0, cols) if cols > 1 else np.zeros(1)
    grid = mean + r[:, None, None] * major + c[None, :, None] * minor
    return grid.reshape(rows * cols, -1)
