"""Host-side pieces of the training contract that every backend shares.

Both backends receive the same sample order and the same per-step sigma and learning rate, so
their results differ only by floating-point rounding (DESIGN.md section 2).
"""

import numpy as np


def exponential_decay(start, end, steps, total):
    """Values of ``start * (end / start) ** f`` with ``f = t / max(total - 1, 1)``.

    Parameters
    ----------
    start, end : float
        Value at the first and at the last step; both positive.
    steps : array_like of int
        The step numbers ``t`` to evaluate.
    total : int
        Number of steps of the whole run, ``T``.

    Returns
    -------
    numpy.ndarray of float64, the shape of ``steps``.
    """
    f = np.asarray(steps, dtype=np.float64) / max(total - 1, 1)
    return start * (end / start) ** f


def sample_order(rng, n_samples, count):
    """Draw ``count`` sample indices uniformly with replacement (the seed library's order)."""
    return rng.integers(0, n_samples, size=count, dtype=np.int64)
