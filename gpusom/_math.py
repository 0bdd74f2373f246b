"""Scalar lattice helpers shared by the CPU (``@njit``) and CUDA (``@cuda.jit``) kernels.

Plain ``register_jitable`` functions compile for both targets, so the geometry of the training
contract (the Notes of ``gpusom.SOM``) is written once. Distances on the grid are handled per axis:
the Gaussian is separable, ``exp(-(dr^2 + dc^2) / 2s^2) = exp(-dr^2 / 2s^2) * exp(-dc^2 / 2s^2)``,
and the truncated window is the disk ``dr^2 + dc^2 <= radius^2``, i.e. one contiguous (or, on a
torus, circular) run of columns per row.
"""

import math

import numpy as np
from numba.extending import register_jitable

#: Features summed per pass over a distance accumulator. Both engines group a pass as
#: ``(d0^2 + d1^2) + (d2^2 + d3^2)``, so their sums round alike.
LANES = 4

#: Index of an empty (distance, index) slot: larger than every real index and packed key.
NO_INDEX = np.iinfo(np.int64).max

#: The low 32 bits of a packed key (:func:`packed_key`) hold the cell index.
INDEX_MASK = 0xFFFFFFFF
PACKED_MAX_CELLS = INDEX_MASK + 1

#: Neighbourhood functions by name; kernels see only the integer code. The first two are
#: products of per-axis factors (:func:`axis_weight`), the others functions of the grid distance
#: itself (:func:`radial_weight`).
NEIGHBORHOODS = {"gaussian": 0, "bubble": 1, "mexican_hat": 2, "triangle": 3}
GAUSSIAN = NEIGHBORHOODS["gaussian"]
BUBBLE = NEIGHBORHOODS["bubble"]
MEXICAN_HAT = NEIGHBORHOODS["mexican_hat"]
TRIANGLE = NEIGHBORHOODS["triangle"]


#: Lattice topologies by name. Hexagonal: odd rows shift right by half a cell and rows are
#: ``sqrt(3) / 2`` apart, so all six neighbours of a cell are at distance 1.
TOPOLOGIES = {"rectangular": 0, "hexagonal": 1}
RECTANGULAR = TOPOLOGIES["rectangular"]
HEXAGONAL = TOPOLOGIES["hexagonal"]


@register_jitable
def ranks_before(d1, i1, d2, i2):
    """The BMU tie rule: ``(d1, i1)`` ranks first for a smaller distance, then a lower index."""
    return d1 < d2 or (d1 == d2 and i1 < i2)


@register_jitable
def packed_key(distance_bits, index):
    """``bits << 32 | index`` for the int32 bit pattern of a non-negative float32 distance.

    Such a bit pattern orders like the float, so the smallest key is the smallest distance and,
    on ties, the lowest index: an argmin is one integer min.
    """
    return (np.int64(distance_bits) << 32) | index


@register_jitable
def axis_delta(a, b, size, is_torus):
    """Grid distance between positions ``a`` and ``b`` of one axis (minimum image on a torus)."""
    d = abs(a - b)
    if is_torus and size - d < d:
        d = size - d
    return d


@register_jitable
def quadrance(row, col, b_row, b_col, rows, cols, is_torus, topology):
    """Four times the squared grid distance between cells ``(row, col)`` and ``(b_row, b_col)``.

    An exact integer on both topologies, so window tests never depend on rounding: rectangular
    ``4 (dr^2 + dc^2)``; hexagonal ``3 dr^2 + (2 dx)^2`` with ``2 dx`` the doubled horizontal
    offset (odd rows sit half a cell to the right). On a torus each axis takes the minimum
    image (a hexagonal torus has an even number of rows, so wrapping keeps row parity).
    """
    if topology == RECTANGULAR:
        d_row = axis_delta(row, b_row, rows, is_torus)
        d_col = axis_delta(col, b_col, cols, is_torus)
        return 4 * (d_row * d_row + d_col * d_col)
    d_row, twice_dx = hex_offsets(row, col, b_row, b_col, rows, cols, is_torus)
    return 3 * d_row * d_row + twice_dx * twice_dx


@register_jitable
def hex_offsets(row, col, b_row, b_col, rows, cols, is_torus):
    """``(dr, 2 dx)`` between two cells of the hexagonal lattice: the row distance and the
    doubled horizontal offset, both non-negative integers (minimum images on a torus)."""
    d_row = axis_delta(row, b_row, rows, is_torus)
    twice_dx = abs(2 * (col - b_col) + row % 2 - b_row % 2)
    # Below 2 cols already (|2 (col - b_col)| <= 2 cols - 2, the parity adds at most 1), so the
    # minimum image needs no modulo: a 64-bit one is a subroutine call in the CUDA kernels.
    if is_torus:
        if 2 * cols - twice_dx < twice_dx:
            twice_dx = 2 * cols - twice_dx
    return d_row, twice_dx


@register_jitable
def window_radius(neighborhood, sigma, truncate):
    """Radius of the updated disk: ``truncate * sigma`` (Gaussian, Mexican hat) or ``sigma``
    (bubble, and the triangle, which is zero from there on)."""
    if neighborhood == BUBBLE or neighborhood == TRIANGLE:
        return sigma
    return truncate * sigma


@register_jitable
def is_separable(neighborhood):
    """True when the weight is the product of a row and a column factor (:func:`axis_weight`)."""
    return neighborhood == GAUSSIAN or neighborhood == BUBBLE


@register_jitable
def half_width(radius_sq, other_sq, limit):
    """Largest integer ``D <= limit`` with ``D^2 + other_sq <= radius_sq``; -1 when none exists."""
    rest = radius_sq - other_sq
    if rest < 0.0:
        return -1
    if rest >= float(limit) * float(limit):
        return limit
    d = int(math.sqrt(rest))
    # sqrt may be off by one ulp either way; settle the integer exactly.
    while d < limit and float(d + 1) * float(d + 1) + other_sq <= radius_sq:
        d += 1
    while d > 0 and float(d) * float(d) + other_sq > radius_sq:
        d -= 1
    return d


@register_jitable
def radial_weight(neighborhood, dist_sq, sigma):
    """Weight at squared grid distance ``dist_sq``: the non-separable neighbourhoods, and every
    neighbourhood on the hexagonal lattice.

    Gaussian ``exp(-d^2 / (2 sigma^2))``; bubble 1; triangle ``max(0, 1 - d / sigma)`` (a
    cone); Mexican hat ``(1 - d^2 / sigma^2) * exp(-d^2 / (2 sigma^2))``, negative beyond
    ``d = sigma``.
    """
    if neighborhood == BUBBLE:
        return 1.0
    if neighborhood == TRIANGLE:
        return max(0.0, 1.0 - math.sqrt(dist_sq) / sigma)
    s = dist_sq / (sigma * sigma)
    if neighborhood == GAUSSIAN:
        return math.exp(-0.5 * s)
    return (1.0 - s) * math.exp(-0.5 * s)


@register_jitable
def axis_weight(neighborhood, delta, sigma):
    """One axis' factor of the neighbourhood weight at grid distance ``delta``."""
    return axis_weight_sq(neighborhood, float(delta * delta), sigma)


@register_jitable
def axis_weight_sq(neighborhood, delta_sq, sigma):
    """One axis' factor of a separable weight at squared axis offset ``delta_sq``: on the
    hexagonal lattice ``0.75 dr^2`` (rows) and ``(2 dx)^2 / 4`` (columns), both exact."""
    if neighborhood == BUBBLE:
        return 1.0
    return math.exp(-delta_sq / (2.0 * sigma * sigma))


#: Distances between a sample and a codebook vector by name; kernels see only the code.
#: Euclidean is ranked by its square (the root only for reported values), Manhattan is
#: ``sum |x - w|`` and cosine ``1 - x.w / (|x| |w|)`` (:func:`cosine_distance`).
METRICS = {"euclidean": 0, "cosine": 1, "manhattan": 2}
EUCLIDEAN = METRICS["euclidean"]
COSINE = METRICS["cosine"]
MANHATTAN = METRICS["manhattan"]

#: What a NaN in the data means: an error, or a missing feature that distances and updates skip.
NAN_POLICIES = {"raise": 0, "ignore": 1}


def reported_distance(ranking, metric):
    """The distance users see from the ranking value the searches return (an array): the
    root of a squared Euclidean distance, the others as they are."""
    return ranking**0.5 if metric == EUCLIDEAN else ranking


@register_jitable
def cosine_distance(dot, norm_x_sq, norm_w_sq):
    """``1 - dot / (|x| |w|)`` clamped to ``[0, 2]``; 1 (no similarity) when a norm is zero.

    The clamp keeps a rounded cosine slightly above 1 from giving a negative distance, which
    would break the packed keys that order non-negative distances (:func:`packed_key`).
    """
    if norm_x_sq == 0.0 or norm_w_sq == 0.0:
        return 1.0
    d = 1.0 - dot / (math.sqrt(norm_x_sq) * math.sqrt(norm_w_sq))
    return min(max(d, 0.0), 2.0)


@register_jitable
def underflow_slack(dim, tiny):
    """Absolute slack for comparing sums of about ``dim`` rounded terms whose values may fall
    below the smallest normal number ``tiny`` (their relative precision lost, or flushed to
    zero): each term off by up to ``tiny``, two sums compared, a safety factor 2."""
    return 4.0 * (dim + 4) * tiny


@register_jitable
def exact_distance(data, i, codebook, j, metric):
    """The ranking distance of sample ``data[i]`` and codebook row ``codebook[j]`` in float64,
    by direct differences: squared Euclidean, Manhattan or cosine. NaN features of the sample
    are skipped (missing values); the caller scales the result for them where it reports it.
    """
    total = 0.0
    norm_x = 0.0
    norm_w = 0.0
    for f in range(data.shape[1]):
        x = np.float64(data[i, f])
        if x != x:
            continue
        w = np.float64(codebook[j, f])
        if metric == EUCLIDEAN:
            total += (x - w) * (x - w)
        elif metric == MANHATTAN:
            total += abs(x - w)
        else:
            total += x * w
            norm_x += x * x
            norm_w += w * w
    if metric == COSINE:
        return cosine_distance(total, norm_x, norm_w)
    return total
