"""The protocol every engine implements: one object per place that computations run.

``gpusom._backend`` hands out engines (``gpusom.cpu.ENGINE``, ``gpusom.cuda.ENGINE``); the rest
of gpusom calls their methods and never asks where an array lives (scikit-learn's
``get_namespace`` idea: resolve once, then call). An engine's arrays are those of its module
``xp`` (numpy on the CPU, cupy on a GPU); its training state (``to_device``) is private to it.
"""

import abc

from . import _batch


class Engine(abc.ABC):
    """Array helpers, online training and the exact BMU search of one engine."""

    #: Short name, recorded as ``SOM.backend_``.
    name = ""

    @property
    @abc.abstractmethod
    def xp(self):
        """The module of this engine's arrays (numpy, or cupy)."""

    @abc.abstractmethod
    def as_array(self, value, name, ndim, allow_nan=False):
        """``value`` as a finite float array of this engine, ``ndim`` dimensions, never empty.

        float32 and float64 are kept, other numbers become float64; errors name ``name``. With
        ``allow_nan``, NaN marks missing values (``gpusom._checks.checked_float_array``).
        """

    @abc.abstractmethod
    def to_numpy(self, array):
        """A numpy array with the values of this engine's ``array``."""

    @abc.abstractmethod
    def check_memory(self, n_bytes, what):
        """Raise a ``ValueError`` naming ``what`` when ``n_bytes`` will not fit in memory."""

    @abc.abstractmethod
    def to_device(self, codebook, data):
        """Training state ``(codebook, data)`` from a host ``(n_cells, dim)`` codebook and
        ``(n_samples, dim)`` data in the codebook's dtype."""

    @abc.abstractmethod
    def to_host(self, codebook, dim):
        """The ``(n_cells, dim)`` numpy codebook of the training state ``codebook``."""

    @abc.abstractmethod
    def train_online(
        self,
        codebook,
        data,
        order,
        sigmas,
        lrs,
        rows,
        cols,
        is_torus,
        neighborhood,
        truncate,
        topology=0,
        metric=0,
    ):
        """Run ``len(order)`` online steps on the training state; returns each step's BMU.

        ``order`` (int64) are sample indices, ``sigmas``/``lrs`` (float64) the radius and rate
        of each step, ``neighborhood``, ``topology`` and ``metric`` the codes of
        ``gpusom._math.NEIGHBORHOODS``, ``TOPOLOGIES`` and ``METRICS``. NaN features of the
        data are missing: a sample's distances and its update use its present features only.
        """

    def train_batch(
        self,
        codebook,
        data,
        sigmas,
        rows,
        cols,
        is_torus,
        neighborhood,
        truncate,
        topology=0,
        metric=0,
    ):
        """Run ``len(sigmas)`` epochs of the batch SOM; returns the new codebook.

        ``codebook`` ``(n_cells, dim)`` is an array of this engine in the training dtype
        (float32 or float64), ``data`` ``(n_samples, dim)`` one of the same dtype, ``sigmas``
        (float64) the radius of each epoch, ``neighborhood``, ``topology`` and ``metric`` the
        codes of ``gpusom._math.NEIGHBORHOODS``, ``TOPOLOGIES`` and ``METRICS``; NaN in
        ``data`` marks missing values, left out of the means of their features. The result
        is a new ``(n_cells, dim)`` array of this engine in ``codebook``'s dtype. Shared by
        every engine: ``gpusom._batch.train_epochs`` runs the engine's kernels (the attribute
        ``batch``); its docstring defines the algorithm and the square window of the
        separable neighbourhoods.
        """
        return _batch.train_epochs(
            self, codebook, data, sigmas, rows, cols, is_torus, neighborhood, truncate, topology,
            metric,
        )  # fmt: skip

    @abc.abstractmethod
    def find_bmus(self, data, codebook, k=1, metric=0):
        """Exact ``k`` (1 or 2) best units of each sample, ties to the lowest index.

        ``metric`` is a code of ``gpusom._math.METRICS``; NaN features of ``data`` are missing
        (``gpusom._bmu_search.blocked_bmus``). Returns ``(index, distance)`` of shape
        ``(n_samples, k)``, int64 and float64, arrays of this engine: the ranking distance
        (squared for Euclidean); a missing second unit is ``(-1, inf)``.
        """
