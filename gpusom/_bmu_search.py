"""The exact batched BMU search both backends share: matrix products, then an exact re-rank.

For a block of samples, one matrix product of the centred samples and codebook gives
``score[i, j] = |w_j|^2 - 2 x_i.w_j``, which orders the cells like the squared distance (the
``|x_i|^2`` term is the same for a whole row). The product is rounded, so each backend's re-rank
kernel takes every cell whose score is within the rounding bound of the best and ranks those by
float64 direct differences, ties to the lowest index: the result equals brute force while memory
stays at one ``block x n_cells`` matrix. Centring first keeps the bound small: uncentred, a
float32 expansion picked wrong BMUs for about a quarter of the samples of data offset by +100
(``tests/test_analysis.py`` checks such data).
"""

import warnings

import numpy as np

from . import _config
from ._math import COSINE, EUCLIDEAN, MANHATTAN, underflow_slack


def block_rows(n_samples, n_cells):
    """Samples per block: a ``block x n_cells`` float64 matrix stays near
    ``_config.ANALYSIS_BLOCK_BYTES``."""
    return max(1, min(n_samples, _config.ANALYSIS_BLOCK_BYTES // (8 * max(n_cells, 1))))


def search_bytes(n_samples, n_cells, dim, k):
    """Bytes :func:`blocked_bmus` allocates at its peak, every temporary counted (upper bound).

    Per codebook element: the float64 centred copy, its squares and their float64 copy, and the
    product-precision copies of the vectors and squares (8 + 8 + 8 + 8 + 8); per block row, the
    same for the centred samples plus one row of products in float64, their widest dtype (one
    block of them: every block is written into the same array, :func:`_block_products`; float32
    products take half); per sample, the results; and the
    float64 copies of float32 inputs the CPU engine searches as float64 (at most
    ``_config.ONE_DTYPE_BYTES``). The CPU engine's pruned search (``gpusom.cpu.search``) stays
    within it (``tests/test_cpu_search.py``).
    """
    block = block_rows(n_samples, n_cells)
    codebook = 40 * n_cells * dim + 24 * n_cells
    per_block = block * (32 * dim + 8 * n_cells + 24)
    copies = min(8 * (n_samples + n_cells) * dim, _config.ONE_DTYPE_BYTES)
    return codebook + per_block + 16 * n_samples * k + copies


def blocked_bmus(data, codebook, k, xp, rerank, metric=EUCLIDEAN, scores=None):
    """Exact ``k`` (1 or 2) best units of every sample under ``metric``.

    Parameters
    ----------
    data : array of module ``xp``, shape (n_samples, dim)
        NaN marks a missing feature (already allowed by the caller): distances use the present
        features only, Euclidean and Manhattan ones scaled by ``dim / present``.
    codebook : array of module ``xp``, shape (n_cells, dim)
    k : {1, 2}
    xp : module
        numpy, or cupy for device arrays.
    rerank : callable
        ``rerank(dots, cb_sq, tolerance, data, codebook, k, metric, out_index, out_distance)``
        for one block (the backend's kernel): ``cb_sq[j] - 2 * dots[i, j]`` is the score of
        cell ``j``, within ``tolerance[i] / 2`` of the exact value up to the row's constant.
    metric : int, default Euclidean
        A code of ``gpusom._math.METRICS``.
    scores : callable, optional
        ``scores(codebook, data, xp, missing)``, the per-block scores ``rerank`` takes; by
        default the metric's own (:func:`euclidean_scores` for Euclidean distances).

    Returns
    -------
    index : int64 array of module ``xp``, shape (n_samples, k)
    distance : float64 array of module ``xp``, shape (n_samples, k)
        The ranking distance: squared Euclidean, Manhattan or cosine.
    """
    n, dim = data.shape
    n_cells = codebook.shape[0]
    # one pass finds missing values; complete data then skips every masking step below
    missing = bool(xp.isnan(data).any())
    scores = (scores or _SCORES[metric])(codebook, data, xp, missing)
    out_index = xp.empty((n, k), dtype=np.int64)
    out_distance = xp.empty((n, k), dtype=np.float64)
    block = block_rows(n, n_cells)
    for start in range(0, n, block):
        stop = min(start + block, n)
        chunk = data[start:stop]
        dots, cb_sq, tolerance = scores(chunk)
        rerank(
            dots,
            cb_sq,
            tolerance,
            chunk,
            codebook,
            k,
            metric,
            out_index[start:stop],
            out_distance[start:stop],
        )
    if missing and metric != COSINE:
        present = (~xp.isnan(data)).sum(axis=1)
        out_distance *= (dim / present)[:, None]
    return out_index, out_distance


class CentredProducts:
    """What the Euclidean scores of ``codebook`` share across blocks of ``data``.

    Attributes
    ----------
    centre : float64 array, shape (dim,)
        The codebook's mean: samples and cells are centred on it before the product.
    dtype : numpy dtype
        float32, unless a squared norm could overflow it (then float64): scores must stay finite.
    codebook : array, shape (n_cells, dim)
        The centred codebook in ``dtype``.
    cb_sq : float64 array, shape (n_cells,)
        The cells' squared norms, centred.
    cb_norm_max : float
        The largest centred cell norm.
    bound_scale : float
        :meth:`tolerance` per squared norm.
    underflow : float
        :meth:`tolerance`'s absolute part, for terms below the smallest normal number.
    missing : bool
        Whether ``data`` has NaN features (masked to 0 by :meth:`samples`).
    """

    def __init__(self, codebook, data, xp, missing):
        dim = data.shape[1]
        self.xp = xp
        self.missing = missing
        self.centre = codebook.mean(axis=0, dtype=np.float64)
        centred_cb = codebook - self.centre
        if missing:
            with warnings.catch_warnings():
                # A feature missing from every sample has no extremes: numpy warns and gives
                # NaN, which the outer nanmax leaves out, as the scores leave the feature out.
                warnings.simplefilter("ignore", RuntimeWarning)
                high, low = xp.nanmax(data, axis=0), xp.nanmin(data, axis=0)
        else:
            high, low = data.max(axis=0), data.min(axis=0)
        spread = max(
            float(xp.abs(centred_cb).max()),
            float(xp.nanmax(xp.abs(high - self.centre))),
            float(xp.nanmax(xp.abs(low - self.centre))),
        )
        self.dtype = np.float32 if spread * spread * dim < 1e36 else np.float64
        self.codebook = centred_cb.astype(self.dtype)
        self.cb_sq = (self.codebook.astype(np.float64) ** 2).sum(axis=1)
        self.cb_norm_max = float(xp.sqrt(self.cb_sq.max()))
        # Rounding bound of |x|^2 - 2 x.w + |w|^2 in the product's precision (inputs rounded,
        # then a dot product of length dim), doubled because two scores are compared, safety
        # factor 2.
        self.bound_scale = 8.0 * (dim + 4) * np.finfo(self.dtype).eps / 2
        # Products and sums below the smallest normal number lose relative precision: without
        # this, data of about 1e-21 in float32 got wrong BMUs.
        self.underflow = underflow_slack(dim, float(np.finfo(self.dtype).tiny))

    def samples(self, chunk):
        """The centred samples of ``chunk`` in ``dtype`` (missing features 0) and their float64
        norms."""
        centred = chunk - self.centre
        if self.missing:
            centred = self.xp.where(self.xp.isnan(centred), 0.0, centred)
        centred = centred.astype(self.dtype)
        return centred, self.xp.sqrt((centred.astype(np.float64) ** 2).sum(axis=1))

    def tolerance(self, x_norm, norm_max):
        """Twice the rounding bound of the scores of samples of norm ``x_norm`` against
        vectors of norm at most ``norm_max``, underflow included."""
        return self.bound_scale * (x_norm + norm_max) ** 2 + self.underflow


def _block_products(new, n_cells, dtype):
    """``take(n)``: an ``(n, n_cells)`` array of ``dtype`` made by ``new`` (``xp.empty`` or
    ``xp.zeros``) for one block's scores, the same memory for every block of a search
    (:func:`blocked_bmus` makes its first block the largest; a larger one would take new memory).

    With a fresh array per block the closing step of bench.py's (b) took 41-49 ms inside a
    training, with this one 24-30 ms (benchmarks/RESULTS.md, "The closing step's product
    block"): the blocks are megabytes, and each new one is new pages to the operating system.
    """
    held = []

    def take(n):
        if not held or held[0].shape[0] < n:
            held[:] = [new((n, n_cells), dtype=dtype)]
        return held[0][:n]

    return take


def euclidean_scores(codebook, data, xp, missing):
    """Per-block scores for squared Euclidean distances: centred matrix products.

    A sample with missing features is compared on its present ones:
    ``sum_present (x - w)^2 = sum_present w^2 - 2 x.w + const``, the first term one more product
    with the sample's mask; folded into ``dots`` so that the kernel's ``cb_sq`` is zero. The CPU
    engine's Manhattan search bounds its distances by these too
    (``gpusom.cpu.kernels.rerank``).
    """
    products = CentredProducts(codebook, data, xp, missing)
    cb_sq_product = products.cb_sq.astype(products.dtype)
    no_cb_sq = xp.zeros_like(cb_sq_product)
    if missing:
        cb_squares = (products.codebook.astype(np.float64) ** 2).astype(products.dtype)

    block_products = _block_products(xp.empty, codebook.shape[0], products.dtype)

    def scores(chunk):
        centred, x_norm = products.samples(chunk)
        dots = block_products(chunk.shape[0])
        xp.matmul(centred, products.codebook.T, out=dots)
        tolerance = products.tolerance(x_norm, products.cb_norm_max)
        if not missing:
            return dots, cb_sq_product, tolerance
        holes = xp.isnan(chunk)
        dots -= 0.5 * ((~holes).astype(products.dtype) @ cb_squares.T)
        # the rounding of the mask's product with the cells' squares (sums up to cb_norm_max**2)
        extra = products.bound_scale * products.cb_norm_max**2 + products.underflow
        return dots, no_cb_sq, tolerance + extra

    return scores


def _cosine_scores(codebook, data, xp, missing):
    """Per-block scores ``-2 cos(x, w)`` from float64 products of the normalised vectors.

    A sample with missing features is compared on its present ones, the cells' norms too (one
    more product with the sample's mask). Zero vectors have cosine 0 (distance 1).
    """
    dim = data.shape[1]
    cb = codebook.astype(np.float64)
    cb_squares = cb * cb
    cb_norm = xp.sqrt(cb_squares.sum(axis=1))
    unit_cb = cb / xp.where(cb_norm > 0, cb_norm, 1.0)[:, None]
    no_cb_sq = xp.zeros(codebook.shape[0])
    # Unit vectors: each cosine is within (dim + 4) eps of exact; scores are twice that,
    # doubled because two are compared, safety factor 2.
    tolerance_value = 8.0 * (dim + 4) * np.finfo(np.float64).eps
    block_products = _block_products(xp.empty, codebook.shape[0], np.float64)

    def scores(chunk):
        x = chunk.astype(np.float64)
        if missing:
            holes = xp.isnan(x)
            x = xp.where(holes, 0.0, x)
        x_norm = xp.sqrt((x * x).sum(axis=1))
        x = x / xp.where(x_norm > 0, x_norm, 1.0)[:, None]
        if missing:
            norms = xp.sqrt((~holes).astype(np.float64) @ cb_squares.T)
            cosines = (x @ cb.T) / xp.where(norms > 0, norms, xp.inf)
        else:
            cosines = block_products(x.shape[0])
            xp.matmul(x, unit_cb.T, out=cosines)
        return cosines, no_cb_sq, xp.full(x.shape[0], tolerance_value)

    return scores


def _manhattan_scores(codebook, data, xp, missing):
    """No product orders Manhattan distances: every cell is a candidate (zero scores, infinite
    tolerance), so the kernel's direct distances decide alone."""
    zeros = xp.zeros(codebook.shape[0], dtype=np.float32)
    # the re-rank only reads the scores: one block of zeros serves every block
    block_zeros = _block_products(xp.zeros, codebook.shape[0], np.float32)

    def scores(chunk):
        n = chunk.shape[0]
        return block_zeros(n), zeros, xp.full(n, xp.inf)

    return scores


_SCORES = {EUCLIDEAN: euclidean_scores, COSINE: _cosine_scores, MANHATTAN: _manhattan_scores}
