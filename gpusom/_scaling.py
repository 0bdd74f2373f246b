"""Min-max feature scaling to [0, 1] (constant features become 0), as the seed library does.

The standalone analysis functions scale each input by its own range; a ``SOM`` trained with
``normalize=True`` keeps the training data's range and scales new data with it.
"""


def feature_range(data):
    """Per-feature ``(minimum, maximum - minimum)`` of ``(n_samples, dim)`` data."""
    low = data.min(axis=0)
    return low, data.max(axis=0) - low


def scale(data, low, span, xp):
    """``(data - low) / span`` per feature, 0 where ``span`` is 0, in the data's dtype.

    ``xp`` is the module of ``data`` (numpy, or cupy for GPU arrays).
    """
    low, span = xp.asarray(low), xp.asarray(span)
    safe = xp.where(span > 0, span, 1)
    return xp.where(span > 0, (data - low) / safe, 0).astype(data.dtype, copy=False)


def normalize_features(data, xp):
    """Min-max scale each column of ``data`` (of module ``xp``) to [0, 1]; constant columns 0."""
    return scale(data, *feature_range(data), xp)
