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

from .. import _config
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
    """Exact best matching units, computed in blocks.

    Scores come from one float32 matrix product per block on centred data (the BLAS does the
    heavy lifting); every candidate within the product's rounding bound of the best is then
    re-ranked with float64 direct differences, so the result equals brute force (ties to the
    lowest index) while memory stays at one ``block x n_cells`` score matrix.

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
    n, dim = data.shape
    n_cells = codebook.shape[0]
    centre = codebook.mean(axis=0, dtype=np.float64)
    # float32 products unless a squared norm could overflow it: the scores must stay finite.
    spread = max(np.abs(codebook - centre).max(), np.abs(data - centre).max())
    product_dtype = np.float32 if spread * spread * dim < 1e36 else np.float64
    centred_cb = (codebook - centre).astype(product_dtype)
    cb_sq = np.einsum("ij,ij->i", centred_cb, centred_cb, dtype=np.float64)
    cb_norm_max = np.sqrt(cb_sq.max())
    cb_sq_product = cb_sq.astype(product_dtype)
    # Rounding bound of |x|^2 - 2 x.w + |w|^2 in the product's precision (inputs rounded, then a
    # dot product of length dim), doubled because two scores are compared, safety factor 2.
    unit = np.finfo(product_dtype).eps / 2
    bound_scale = 8.0 * (dim + 4) * unit
    out_index = np.empty((n, k), dtype=np.int64)
    out_distance = np.empty((n, k), dtype=np.float64)
    block = max(1, min(n, _config.ANALYSIS_BLOCK_BYTES // (8 * max(n_cells, 1))))
    for start in range(0, n, block):
        stop = min(start + block, n)
        chunk = data[start:stop]
        centred = (chunk - centre).astype(product_dtype)
        dots = centred @ centred_cb.T
        x_norm = np.sqrt(np.einsum("ij,ij->i", centred, centred, dtype=np.float64))
        tolerance = bound_scale * (x_norm + cb_norm_max) ** 2
        rerank(
            dots,
            cb_sq_product,
            tolerance,
            chunk,
            codebook,
            k,
            out_index[start:stop],
            out_distance[start:stop],
        )
    return out_index, out_distance
