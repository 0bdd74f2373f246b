"""Scalar lattice helpers shared by the CPU (``@njit``) and CUDA (``@cuda.jit``) kernels.

Plain ``register_jitable`` functions compile for both targets, so the geometry of the training
contract (DESIGN.md section 2) is written once. Distances on the grid are handled per axis: the
Gaussian is separable, ``exp(-(dr^2 + dc^2) / 2s^2) = exp(-dr^2 / 2s^2) * exp(-dc^2 / 2s^2)``, and
the truncated window is the disk ``dr^2 + dc^2 <= radius^2``, i.e. one contiguous (or, on a torus,
circular) run of columns per row.
"""

import math

from numba.extending import register_jitable

#: Neighbourhood functions by name; kernels see only the integer code.
NEIGHBORHOODS = {"gaussian": 0, "bubble": 1}
GAUSSIAN = NEIGHBORHOODS["gaussian"]
BUBBLE = NEIGHBORHOODS["bubble"]


@register_jitable
def axis_delta(a, b, size, is_torus):
    """Grid distance between positions ``a`` and ``b`` of one axis (minimum image on a torus)."""
    d = abs(a - b)
    if is_torus and size - d < d:
        d = size - d
    return d


@register_jitable
def window_radius(neighborhood, sigma, truncate):
    """Radius of the updated disk: ``truncate * sigma`` (Gaussian) or ``sigma`` (bubble)."""
    if neighborhood == BUBBLE:
        return sigma
    return truncate * sigma


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
def axis_weight(neighborhood, delta, sigma):
    """One axis' factor of the neighbourhood weight at grid distance ``delta``."""
    if neighborhood == BUBBLE:
        return 1.0
    return math.exp(-(delta * delta) / (2.0 * sigma * sigma))
