"""Slow, obviously correct references: the oracle for every optimised path."""

import numpy as np


def cell_positions(rows, cols, topology="rectangular"):
    """``(x, y)`` of every cell, row-major: odd hexagonal rows half a cell to the right and
    rows ``sqrt(3) / 2`` apart; the period of the plane in x and y for a torus."""
    r, c = np.divmod(np.arange(rows * cols), cols)
    if topology == "rectangular":
        return c.astype(float), r.astype(float), (cols, rows)
    height = np.sqrt(3) / 2
    return c + 0.5 * (r % 2), r * height, (cols, rows * height)


def grid_distance_sq(rows, cols, bmu, is_torus, topology="rectangular"):
    """Squared grid distance of every cell to flat cell ``bmu``, shape ``(rows * cols,)``.

    From the cells' positions (minimum image on a torus); every such distance is a multiple of
    1/4 on both lattices, so the float result is rounded to it.
    """
    x, y, (width, height) = cell_positions(rows, cols, topology)
    dx, dy = np.abs(x - x[bmu]), np.abs(y - y[bmu])
    if is_torus:
        dx, dy = np.minimum(dx, width - dx), np.minimum(dy, height - dy)
    return np.round(4 * (dx * dx + dy * dy)) / 4


def distances(codebook, x, metric="euclidean"):
    """Ranking distance of ``x`` to every codebook row in float64, present (non-NaN) features
    only: squared Euclidean, Manhattan, or ``1 - cos`` (1 where a norm is zero)."""
    present = ~np.isnan(x)
    w = codebook.astype(np.float64)[:, present]
    x = np.asarray(x, dtype=np.float64)[present]
    if metric == "euclidean":
        return ((w - x) ** 2).sum(axis=1)
    if metric == "manhattan":
        return np.abs(w - x).sum(axis=1)
    norms = np.sqrt((w * w).sum(axis=1)) * np.sqrt((x * x).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        cosine = np.where(norms > 0, (w @ x) / norms, 0.0)
    return np.clip(1.0 - cosine, 0.0, 2.0)


def bmu(codebook, x, metric="euclidean"):
    """Flat index of the closest codebook row (float64 direct differences; first on ties)."""
    return int(np.argmin(distances(codebook, x, metric)))


def online_som(
    codebook,
    data,
    order,
    sigmas,
    lrs,
    rows,
    cols,
    is_torus,
    neighborhood="gaussian",
    truncate=3.0,
    topology="rectangular",
    metric="euclidean",
):
    """Plain online SOM, the contract in the Notes of ``gpusom.SOM``; returns ``(codebook, bmus)``.

    ``codebook`` is ``(rows * cols, dim)``; arithmetic is done in its dtype. NaN features of a
    sample are missing: its distances skip them and its update leaves them alone.
    """
    codebook = codebook.copy()
    data = data.astype(codebook.dtype)
    bmus = np.empty(len(order), dtype=np.int64)
    for t, i in enumerate(order):
        x = data[i]
        b = bmu(codebook, x, metric)
        bmus[t] = b
        d2 = grid_distance_sq(rows, cols, b, is_torus, topology)
        sigma = sigmas[t]
        radius = sigma if neighborhood in ("bubble", "triangle") else truncate * sigma
        inside = d2 <= radius * radius
        h = neighbourhood_weight(neighborhood, d2, sigma)
        gain = (lrs[t] * h[inside]).astype(codebook.dtype)[:, None]
        present = ~np.isnan(x)
        moved = codebook[np.ix_(inside, present)]
        codebook[np.ix_(inside, present)] = moved + gain * (x[present] - moved)
    return codebook, bmus


def neighbourhood_weight(neighborhood, d2, sigma):
    """``h`` at squared grid distances ``d2``, by the formulas in ``SOM``'s docstring."""
    if neighborhood == "gaussian":
        return np.exp(-d2 / (2 * sigma**2))
    if neighborhood == "bubble":
        return np.ones_like(d2)
    if neighborhood == "triangle":
        return np.maximum(0.0, 1.0 - np.sqrt(d2) / sigma)
    return (1 - d2 / sigma**2) * np.exp(-d2 / (2 * sigma**2))  # Mexican hat


def u_matrix(lattice, is_torus=False, topology="rectangular"):
    """Mean distance to the distinct 8-neighbours (or, hexagonal, the cells at distance 1)."""
    rows, cols, _ = lattice.shape
    if topology == "hexagonal":
        vectors = lattice.reshape(rows * cols, -1)
        out = np.zeros(rows * cols)
        for cell in range(rows * cols):
            near = np.flatnonzero(grid_distance_sq(rows, cols, cell, is_torus, topology) == 1)
            if near.size:
                out[cell] = np.linalg.norm(vectors[near] - vectors[cell], axis=1).mean()
        return out.reshape(rows, cols)
    out = np.zeros((rows, cols))
    for r in range(rows):
        for c in range(cols):
            neighbours = set()
            for dr in (-1, 0, 1):
                for dc in (-1, 0, 1):
                    rr, cc = r + dr, c + dc
                    if is_torus:
                        rr, cc = rr % rows, cc % cols
                    elif not (0 <= rr < rows and 0 <= cc < cols):
                        continue
                    if (rr, cc) != (r, c):
                        neighbours.add((rr, cc))
            if neighbours:
                out[r, c] = np.mean(
                    [np.linalg.norm(lattice[r, c] - lattice[n]) for n in neighbours]
                )
    return out


def all_distances_sq(data, codebook):
    """``(n_samples, n_cells)`` float64 squared distances by direct differences."""
    diff = data.astype(np.float64)[:, None, :] - codebook.astype(np.float64)[None, :, :]
    return (diff * diff).sum(axis=2)


def batch_weights(b, sigma, rows, cols, is_torus, neighborhood, truncate, topology):
    """The batch window's weight ``h(d(b, n))`` of source cell ``b`` at every cell ``n``: the
    square ``|dr|, |dc| <= radius`` for the Gaussian and the bubble on the rectangular lattice,
    the disk ``d <= radius`` otherwise."""
    d2 = grid_distance_sq(rows, cols, b, is_torus, topology)
    radius = sigma if neighborhood in ("bubble", "triangle") else truncate * sigma
    if topology == "rectangular" and neighborhood in ("gaussian", "bubble"):
        x, y, (width, height) = cell_positions(rows, cols, topology)
        dx, dy = np.abs(x - x[b]), np.abs(y - y[b])
        if is_torus:
            dx, dy = np.minimum(dx, width - dx), np.minimum(dy, height - dy)
        inside = (dx <= radius) & (dy <= radius)
    else:
        inside = d2 <= radius * radius
    return np.where(inside, neighbourhood_weight(neighborhood, d2, sigma), 0.0)


def batch_som(
    codebook,
    data,
    sigmas,
    rows,
    cols,
    is_torus,
    neighborhood="gaussian",
    truncate=3.0,
    topology="rectangular",
):
    """Plain batch SOM (``gpusom._batch``), dense weights, float64; returns the codebook.

    Each epoch: BMUs by :func:`bmu`'s rule, then ``w_n = sum_b h_bn S_b / sum_b h_bn C_b`` over
    the cells ``b`` with samples, in ascending ``b``; a cell whose denominator is not positive
    keeps its vector. The window: :func:`batch_weights`.
    """
    dtype = codebook.dtype
    codebook = codebook.astype(np.float64)
    data = data.astype(dtype).astype(np.float64)
    n_cells = rows * cols
    window = (rows, cols, is_torus, neighborhood, truncate, topology)
    for sigma in sigmas:
        bmus = np.argmin(all_distances_sq(data, codebook), axis=1)
        sums, counts = np.zeros_like(codebook), np.zeros(n_cells)
        for i, b in enumerate(bmus):
            sums[b] += data[i]
            counts[b] += 1
        num, den = np.zeros_like(codebook), np.zeros(n_cells)
        for b in np.flatnonzero(counts):
            h = batch_weights(b, sigma, *window)
            num += h[:, None] * sums[b]
            den += h * counts[b]
        update = den > 0
        codebook[update] = num[update] / den[update, None]
        codebook = codebook.astype(dtype).astype(np.float64)
    return codebook.astype(dtype)


def closing_step(
    codebook,
    data,
    sigma,
    rows,
    cols,
    is_torus,
    neighborhood="gaussian",
    truncate=3.0,
    topology="rectangular",
    metric="euclidean",
    prior=1.0,
):
    """The closing batch step of an online run (``SOM``'s ``finish="batch"``), float64.

    BMUs by :func:`bmu`'s rule over present features, then per cell ``n`` and feature ``f``:
    ``w_nf = (sum_i h(b_i, n) x_if + prior * w_nf) / (sum_i h(b_i, n) + prior)`` over the
    samples ``i`` whose feature ``f`` is present, from a dense ``(n_cells, n_cells)`` weight
    matrix ``h`` (:func:`batch_weights`); a cell whose denominator is not positive keeps
    its vector. Returns the codebook in ``codebook``'s dtype.
    """
    dtype = codebook.dtype
    w = codebook.astype(np.float64)
    data = data.astype(dtype).astype(np.float64)
    window = (rows, cols, is_torus, neighborhood, truncate, topology)
    # weights[b, n] = h(d(b, n))
    weights = np.array([batch_weights(b, sigma, *window) for b in range(rows * cols)])
    out = w.copy()
    bmus = [bmu(codebook, sample, metric) for sample in data]
    for n in range(rows * cols):
        for f in range(w.shape[1]):
            num, den = prior * w[n, f], prior
            for sample, b in zip(data, bmus, strict=True):
                if not np.isnan(sample[f]):
                    num += weights[b, n] * sample[f]
                    den += weights[b, n]
            if den > 0:
                out[n, f] = num / den
    return out.astype(dtype)
