"""Min-max feature scaling to [0, 1] (constant features become 0), as the seed library does.

The standalone analysis functions scale each input by its own range; a ``SOM`` trained with
``normalize=True`` keeps the training data's range and scales new data with it.
"""

import numpy as np


def feature_range(data, xp=None):
    """Per-feature ``(minimum, maximum - minimum)`` of ``(n_samples, dim)`` data, missing
    (NaN) values left out; a feature with no present value gets range 0."""
    xp = xp or np
    present = ~xp.isnan(data)
    if bool(present.all()):
        low = data.min(axis=0)
        return low, data.max(axis=0) - low
    low = xp.where(present, data, xp.inf).min(axis=0)
    high = xp.where(present, data, -xp.inf).max(axis=0)
    empty = ~present.any(axis=0)
    low, high = xp.where(empty, 0, low), xp.where(empty, 0, high)
    return low.astype(data.dtype), (high - low).astype(data.dtype)


def scale(data, low, span, xp):
    """``(data - low) / span`` per feature, 0 where ``span`` is 0, in the data's dtype.

    ``xp`` is the module of ``data`` (numpy, or cupy for GPU arrays).
    """
    low, span = xp.asarray(low), xp.asarray(span)
    safe = xp.where(span > 0, span, 1)
    # data * 0 is 0, and NaN for a missing value, which stays missing.
    return xp.where(span > 0, (data - low) / safe, data * 0).astype(data.dtype, copy=False)


def normalize_features(data, xp):
    """Min-max scale each column of ``data`` (of module ``xp``) to [0, 1]; constant columns 0."""
    return scale(data, *feature_range(data, xp), xp)
