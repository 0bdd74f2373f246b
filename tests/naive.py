"""Slow, obviously correct references: the oracle for every optimised path."""

import numpy as np


def grid_distance_sq(rows, cols, bmu, is_torus):
    """Squared grid distance of every cell to flat cell ``bmu``, shape ``(rows * cols,)``."""
    r, c = np.divmod(np.arange(rows * cols), cols)
    dr, dc = np.abs(r - bmu // cols), np.abs(c - bmu % cols)
    if is_torus:
        dr, dc = np.minimum(dr, rows - dr), np.minimum(dc, cols - dc)
    return (dr * dr + dc * dc).astype(np.float64)


def bmu(codebook, x):
    """Flat index of the closest codebook row (float64 direct differences; first on ties)."""
    return int(np.argmin(((codebook.astype(np.float64) - x) ** 2).sum(axis=1)))


def online_som(
    codebook, data, order, sigmas, lrs, rows, cols, is_torus, neighborhood="gaussian", truncate=3.0
):
    """Plain online SOM, the contract in the Notes of ``gpusom.SOM``; returns ``(codebook, bmus)``.

    ``codebook`` is ``(rows * cols, dim)``; arithmetic is done in its dtype.
    """
    codebook = codebook.copy()
    data = data.astype(codebook.dtype)
    bmus = np.empty(len(order), dtype=np.int64)
    for t, i in enumerate(order):
        x = data[i]
        b = bmu(codebook, x)
        bmus[t] = b
        d2 = grid_distance_sq(rows, cols, b, is_torus)
        sigma = sigmas[t]
        radius = sigma if neighborhood in ("bubble", "triangle") else truncate * sigma
        inside = d2 <= radius * radius
        h = neighbourhood_weight(neighborhood, d2, sigma)
        gain = (lrs[t] * h[inside]).astype(codebook.dtype)[:, None]
        codebook[inside] += gain * (x - codebook[inside])
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


def u_matrix(lattice, is_torus=False):
    """Mean distance to the distinct 8-neighbours of each cell."""
    rows, cols, _ = lattice.shape
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
