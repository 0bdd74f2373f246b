"""The CPU backend: numba ``@njit`` kernels behind the interface every backend offers.

Interface (mirrored by ``gpusom.cuda``):

``to_device(codebook, data)``
    Internal copies (``Codebook``, ``Data``) of a ``(n_cells, dim)`` codebook and
    ``(n_samples, dim)`` data.
``train_online(codebook, data, order, sigmas, lrs, rows, cols, is_torus, neighborhood, truncate)``
    Run one slice of online steps in place; returns the BMU of every step.
``to_host(codebook, dim)``
    The ``(n_cells, dim)`` numpy codebook.
``find_bmus(data, codebook, k)``
    Exact ``k`` best matching units (``k`` = 1 or 2) of each sample: ``(index, squared distance)``.
"""

import numpy as np

from .._bmu_search import blocked_bmus
from .kernels import TAIL_LANES, rerank, split_dim
from .kernels import train_online as _train_online

NAME = "cpu"


class Codebook:
    """The internal codebook: ``head`` ``(split, n_cells)`` and ``tail`` ``(n_cells, width)``.

    ``tail`` holds features ``split:dim`` followed by zero columns up to a multiple of
    ``kernels.TAIL_LANES``; see ``gpusom.cpu.kernels`` for why the features are split.
    """

    def __init__(self, codebook):
        n_cells, dim = codebook.shape
        split = split_dim(dim)
        self.head = np.ascontiguousarray(codebook[:, :split].T)
        width = -(-(dim - split) // TAIL_LANES) * TAIL_LANES
        self.tail = np.zeros((n_cells, width), dtype=codebook.dtype)
        self.tail[:, : dim - split] = codebook[:, split:]


class Data:
    """The internal samples, with each sample's last BMU (the partial distance search's guess)."""

    def __init__(self, data, dtype):
        self.values = np.ascontiguousarray(data, dtype=dtype)
        self.guesses = np.zeros(self.values.shape[0], dtype=np.int64)


def to_device(codebook, data):
    """Split ``Codebook`` and C-ordered ``Data``, both in the codebook's dtype."""
    return Codebook(codebook), Data(data, codebook.dtype)


def train_online(codebook, data, order, sigmas, lrs, rows, cols, is_torus, neighborhood, truncate):
    """Run ``len(order)`` online steps on the internal codebook; returns the BMU indices."""
    bmus = np.empty(order.size, dtype=np.int64)
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
        bmus,
    )
    return bmus


def to_host(codebook, dim):
    """The ``(n_cells, dim)`` numpy codebook, a new array."""
    split = codebook.head.shape[0]
    return np.concatenate([codebook.head.T, codebook.tail[:, : dim - split]], axis=1)


def find_bmus(data, codebook, k=1):
    """Exact best matching units, computed in blocks (``gpusom._bmu_search``).

    Parameters
    ----------
    data : ndarray, shape (n_samples, dim)
    codebook : ndarray, shape (n_cells, dim)
    k : {1, 2}
        How many best units to return per sample.

    Returns
    -------
    index : ndarray of int64, shape (n_samples, k)
    squared_distance : ndarray of float64, shape (n_samples, k)
    """
    return blocked_bmus(data, codebook, k, np, rerank)
