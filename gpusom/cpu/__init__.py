"""The CPU engine: numba ``@njit`` kernels behind the protocol of ``gpusom._engine.Engine``.

Its arrays are numpy arrays; its training state is a split ``Codebook`` (see
``gpusom.cpu.kernels``) and the samples with each one's last BMU (``Data``).
"""

import numpy as np

from .. import _checks
from .._engine import Engine
from .._math import COSINE, EUCLIDEAN, RECTANGULAR
from . import batch as batch_kernels
from . import search
from .kernels import TAIL_LANES, ChunkBoxes, CompiledInt, head_rows, split_dim
from .kernels import train_online as _train_online

#: Bytes of a cache line, the alignment of the split codebook's arrays (``_aligned_zeros``).
CACHE_LINE = 64


def _aligned_zeros(shape, dtype):
    """A C-contiguous array of zeros whose data starts on a cache line.

    numpy aligns an array's data to 16 bytes only: (b)'s late steps took 2.04-2.11 us where the
    head started 48 bytes into a line (the vector loads of every head row then split across
    lines) and 1.80-1.93 us where it started on one, whichever the allocator gave the run
    (benchmarks/RESULTS.md, "The codebook's alignment").
    """
    n_bytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    raw = np.zeros(n_bytes + CACHE_LINE, np.uint8)
    offset = -raw.ctypes.data % CACHE_LINE
    return raw[offset : offset + n_bytes].view(dtype).reshape(shape)


class Codebook:
    """The internal codebook: ``head`` ``(split, stride)`` and ``tail`` ``(n_cells, width)``.

    ``tail`` holds features ``split:dim`` followed by zero columns up to a multiple of
    ``kernels.TAIL_LANES``; see ``gpusom.cpu.kernels`` for why the features are split.
    ``head``'s rows are padded with zero columns to a whole number of cache lines, ``stride``
    columns: every row then starts on a line, as the first does (``_aligned_zeros``). On maps
    whose cell count was not a multiple of a line's (16 float32), (b)'s late steps took 2.20-2.35
    us instead of 2.02-2.08 (benchmarks/RESULTS.md, "The head's rows on cache lines"). The
    kernels take the cell count from ``tail``, which has a row for every cell.
    ``boxes_for(metric)`` bound chunks of cells for the BMU search of steps under ``metric``
    (``kernels.ChunkBoxes``), or are None where they do not pay; ``cosine_norms(metric)`` is
    the scratch of the cosine steps' bound.
    """

    def __init__(self, codebook):
        n_cells, dim = codebook.shape
        split = split_dim(dim)
        per_line = CACHE_LINE // codebook.dtype.itemsize
        stride = -(-n_cells // per_line) * per_line
        self.head = _aligned_zeros((split, stride), codebook.dtype)
        self.head[:, :n_cells] = codebook[:, :split].T
        width = -(-(dim - split) // TAIL_LANES) * TAIL_LANES
        self.tail = _aligned_zeros((n_cells, width), codebook.dtype)
        self.tail[:, : dim - split] = codebook[:, split:]
        self.dim = dim
        self.boxes = {}

    def boxes_for(self, metric):
        """The ``ChunkBoxes`` of steps under ``metric``, made on first use, or None."""
        if metric not in self.boxes:
            boxes = ChunkBoxes.where_they_pay(self.head, self.tail, self.dim, metric)
            self.boxes[metric] = boxes
        return self.boxes[metric]

    def cosine_norms(self, metric):
        """Scratch for the bound of cosine steps (``kernels.pruned_cosine_argmin``) on maps
        without boxes; None for other metrics and where boxes serve the search (keeping the
        norms of the first, wide windows cost more than the bound saved there)."""
        if metric != COSINE or self.boxes_for(metric) is not None:
            return None
        return np.empty((2, self.tail.shape[0]), self.head.dtype)


class Data:
    """The internal samples, with each sample's last BMU (the pruned searches' first guess,
    ``-1`` until it is drawn) and whether it has missing (NaN) features."""

    def __init__(self, data, dtype):
        self.values = np.ascontiguousarray(data, dtype=dtype)
        self.guesses = np.full(self.values.shape[0], -1, dtype=np.int64)
        self.missing = np.isnan(self.values).any(axis=1)
        self.complete = not self.missing.any()


class CPUEngine(Engine):
    """numba ``@njit`` kernels on the host."""

    name = "cpu"

    @property
    def xp(self):
        return np

    def as_array(self, value, name, ndim, allow_nan=False):
        return _checks.as_float_array(value, name, ndim, allow_nan)

    def to_numpy(self, array):
        return np.asarray(array)

    def check_memory(self, n_bytes, what):
        _checks.check_memory(n_bytes, what)

    def to_device(self, codebook, data):
        """Split ``Codebook`` and C-ordered ``Data``, both in the codebook's dtype."""
        return Codebook(codebook), Data(data, codebook.dtype)

    def to_host(self, codebook, dim):
        n_cells, split = codebook.tail.shape[0], codebook.head.shape[0]
        head = codebook.head[:, :n_cells].T
        return np.concatenate([head, codebook.tail[:, : dim - split]], axis=1)

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
        bmus = np.empty(order.size, dtype=np.int64)
        # None compiles a path out of the kernel (kernels.train_online): the metric path for
        # Euclidean steps on complete data, the plain step's searches but the map's own (all of
        # them for other metrics), the cosine distances for other metrics, the boxes where there
        # are none, the hexagonal update on the rectangular lattice.
        missing = None if metric == EUCLIDEAN and data.complete else data.missing
        whole_head = codebook.tail.shape[1] == 0
        nearest = head_rows(codebook.head.shape[0]) if metric == EUCLIDEAN and whole_head else None
        pruned = True if metric == EUCLIDEAN and not whole_head else None
        boxes = codebook.boxes_for(metric)
        boxes = None if boxes is None else boxes.arrays()
        _train_online(
            codebook.head,
            codebook.tail,
            data.values,
            data.guesses,
            order,
            sigmas,
            lrs,
            rows,
            cols,
            is_torus,
            neighborhood,
            truncate,
            None if topology == RECTANGULAR else topology,
            CompiledInt(metric),  # a constant: the sums' kernels compile one metric's sums
            missing,
            bmus,
            boxes,
            codebook.cosine_norms(metric),
            np.empty(codebook.tail.shape[0], codebook.head.dtype) if metric == COSINE else None,
            nearest,
            pruned,
        )
        return bmus

    def find_bmus(self, data, codebook, k=1, metric=0):
        """Exact best units in blocks (``gpusom._bmu_search``), re-ranked by the CPU kernel; on
        large maps, products pruned by bounds (``gpusom.cpu.search``)."""
        return search.find_bmus(data, codebook, k, metric)

    #: The batch kernels, run by ``gpusom._batch``.
    batch = batch_kernels


ENGINE = CPUEngine()
