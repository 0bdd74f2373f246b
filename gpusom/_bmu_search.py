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

import numpy as np

from . import _config


def block_rows(n_samples, n_cells):
    """Samples per block: a ``block x n_cells`` float64 matrix stays near
    ``_config.ANALYSIS_BLOCK_BYTES``."""
    return max(1, min(n_samples, _config.ANALYSIS_BLOCK_BYTES // (8 * max(n_cells, 1))))


def search_bytes(n_samples, n_cells, dim, k):
    """Bytes :func:`blocked_bmus` allocates at its peak, every temporary counted (upper bound).

    Per codebook element: the float64 centred copy, its squares and their float64 copy, and the
    product-precision copy (8 + 8 + 8 + 8); per block row, the same for the centred samples plus
    one row of products; per sample, the results.
    """
    block = block_rows(n_samples, n_cells)
    codebook = 32 * n_cells * dim + 24 * n_cells
    per_block = block * (32 * dim + 8 * n_cells + 24)
    return codebook + per_block + 16 * n_samples * k


def blocked_bmus(data, codebook, k, xp, rerank):
    """Exact ``k`` (1 or 2) best units of every sample.

    Parameters
    ----------
    data : array of module ``xp``, shape (n_samples, dim)
    codebook : array of module ``xp``, shape (n_cells, dim)
    k : {1, 2}
    xp : module
        numpy, or cupy for device arrays.
    rerank : callable
        ``rerank(dots, cb_sq, tolerance, data, codebook, k, out_index, out_distance)`` for one
        block (the backend's kernel): ``cb_sq[j] - 2 * dots[i, j]`` is the score of cell ``j``,
        within ``tolerance[i] / 2`` of the exact value up to the row's constant.

    Returns
    -------
    index : int64 array of module ``xp``, shape (n_samples, k)
    squared_distance : float64 array of module ``xp``, shape (n_samples, k)
    """
    n, dim = data.shape
    n_cells = codebook.shape[0]
    centre = codebook.mean(axis=0, dtype=np.float64)
    centred_cb = codebook - centre
    # float32 products unless a squared norm could overflow them: scores must stay finite.
    spread = max(
        float(xp.abs(centred_cb).max()),
        float(xp.abs(data.max(axis=0) - centre).max()),
        float(xp.abs(data.min(axis=0) - centre).max()),
    )
    product_dtype = np.float32 if spread * spread * dim < 1e36 else np.float64
    centred_cb = centred_cb.astype(product_dtype)
    cb_sq = (centred_cb.astype(np.float64) ** 2).sum(axis=1)
    cb_norm_max = float(xp.sqrt(cb_sq.max()))
    cb_sq_product = cb_sq.astype(product_dtype)
    # Rounding bound of |x|^2 - 2 x.w + |w|^2 in the product's precision (inputs rounded, then a
    # dot product of length dim), doubled because two scores are compared, safety factor 2.
    bound_scale = 8.0 * (dim + 4) * np.finfo(product_dtype).eps / 2
    out_index = xp.empty((n, k), dtype=np.int64)
    out_distance = xp.empty((n, k), dtype=np.float64)
    block = block_rows(n, n_cells)
    for start in range(0, n, block):
        stop = min(start + block, n)
        chunk = data[start:stop]
        centred = (chunk - centre).astype(product_dtype)
        dots = centred @ centred_cb.T
        x_norm = xp.sqrt((centred.astype(np.float64) ** 2).sum(axis=1))
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
