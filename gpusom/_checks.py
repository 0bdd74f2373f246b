"""Input validation shared by every public function.

Everything a user passes is checked here, in plain Python, before any jitted code runs, so that a
mistake surfaces as a ``TypeError``/``ValueError`` naming the argument rather than as a numba
typing error or a silently NaN map.
"""

import math
import numbers
import os
import warnings

import numpy as np

from ._math import NAN_POLICIES

#: A lattice is the one 3-D array gpusom reads; it has no missing values (``nan_policy`` is
#: about the samples).
LATTICE_NDIM = 3
NAN_POLICY_HINT = 'to treat NaN as missing values, use nan_policy="ignore"'


def as_float_array(value, name, ndim, allow_nan=False, finite=None):
    """``value`` as a finite float array of ``ndim`` dimensions, never empty.

    float32 and float64 are kept; other numeric types become float64. The caller's array is never
    written to (a view is returned where no conversion is needed). A pandas DataFrame must have
    numeric columns only; its missing values count as NaN. With ``allow_nan``, NaN marks a
    missing value (inf is still an error) and every row needs one present value.

    ``finite`` names what ``value`` is when NaN can never be a missing value in it (default "a
    lattice" for 3-D arrays); errors about NaN then say so instead of advising ``nan_policy``.
    """
    finite = _finite(ndim, finite)
    if _is_sparse(value):
        raise TypeError(f"{name} is a sparse matrix; gpusom needs dense data (call .toarray())")
    if _is_dataframe(value):
        value = _dataframe_values(value, name)
    if isinstance(value, np.ma.MaskedArray):  # np.asarray would drop the mask silently
        raise TypeError(
            f"{name} is a masked array, whose mask gpusom would not see; pass a plain array"
            + ("" if finite else f" ({name}.filled(np.nan); {NAN_POLICY_HINT})")
        )
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a numeric array: {exc}") from None
    if array.dtype == object:
        try:
            array = array.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} must hold numbers only ({exc})") from None
    return checked_float_array(array, name, ndim, np, allow_nan, finite)


def _finite(ndim, finite):
    """What must be finite (``finite``, or "a lattice" for a 3-D array), or None for samples."""
    return "a lattice" if finite is None and ndim == LATTICE_NDIM else finite


def checked_float_array(array, name, ndim, xp, allow_nan=False, finite=None):
    """The checks of :func:`as_float_array` on an array of module ``xp`` (numpy or cupy).

    Returns ``array``, converted to float64 unless it is float32 or float64.
    """
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be numeric, got an array of dtype {array.dtype}")
    if array.ndim != ndim:
        raise ValueError(
            f"{name} must be a {ndim}-D array, got {array.ndim}-D with shape {array.shape}"
        )
    if array.size == 0:
        raise ValueError(f"{name} is empty (shape {array.shape})")
    if array.dtype not in (np.float32, np.float64):
        array = array.astype(np.float64)
    if not allow_nan:
        bad = int(xp.count_nonzero(~xp.isfinite(array)))
        if bad:
            finite = _finite(ndim, finite)
            hint = f"{finite} must be finite everywhere" if finite else NAN_POLICY_HINT
            raise ValueError(f"{name} contains {bad} NaN or infinite value(s); {hint}")
        return array
    bad = int(xp.count_nonzero(xp.isinf(array)))
    if bad:
        raise ValueError(f"{name} contains {bad} infinite value(s); only NaN can mark missing ones")
    empty = xp.isnan(array).all(axis=-1)
    if bool(empty.any()):
        first = int(xp.flatnonzero(empty.ravel())[0])
        raise ValueError(
            f"{name} has {int(empty.sum())} row(s) with no present value (all NaN), "
            f"first at row {first}: a sample needs at least one feature"
        )
    return array


def _is_dataframe(value):
    # Asks the object's type only, so pandas is never imported by gpusom itself.
    return type(value).__module__.startswith("pandas") and hasattr(value, "columns")


def _is_sparse(value):
    return type(value).__module__.startswith("scipy.sparse")


def _dataframe_values(frame, name):
    """A DataFrame's values as float32 (all columns float32) or float64, missing values as NaN."""
    dtypes = list(frame.dtypes.items())
    for column, dtype in dtypes:
        if getattr(dtype, "kind", "O") not in "biuf":
            raise TypeError(f"{name} column {column!r} is not numeric (dtype {dtype})")
    all_float32 = all(dtype == np.float32 for _, dtype in dtypes)
    return frame.to_numpy(dtype=np.float32 if all_float32 else np.float64, na_value=np.nan)


def feature_names(data):
    """The column names of a DataFrame whose names are all strings, as an object array; else None.

    scikit-learn's convention: only string names count as feature names.
    """
    if not _is_dataframe(data):
        return None
    names = list(data.columns)
    if not names or not all(isinstance(column, str) for column in names):
        return None
    return np.asarray(names, dtype=object)


def as_data(data, name="data"):
    """A ``(n_samples, dim)`` finite float array."""
    return as_float_array(data, name, 2)


def as_lattice(lattice, name="lattice"):
    """A ``(rows, cols, dim)`` finite float array."""
    return as_float_array(lattice, name, 3)


def check_same_dim(data, lattice, data_name="data"):
    """Raise unless the data's feature count matches the lattice's vectors."""
    if data.shape[1] != lattice.shape[-1]:
        raise ValueError(
            f"{data_name} has {data.shape[1]} features per sample but the lattice vectors have "
            f"{lattice.shape[-1]}"
        )


def as_positive_int(value, name):
    """``value`` as a positive Python int; bools and non-integral numbers are rejected."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a positive integer, got {value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value}")
    return int(value)


def as_positive_float(value, name):
    """``value`` as a finite float greater than zero."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a positive number, got {value!r}")
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number greater than 0, got {value}")
    return float(value)


def as_som_size(som_size, name="som_size"):
    """``(rows, cols)`` as two positive ints."""
    try:
        rows, cols = som_size
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a pair (rows, cols), got {som_size!r}") from None
    return as_positive_int(rows, f"{name}[0] (rows)"), as_positive_int(cols, f"{name}[1] (cols)")


def check_lattice_shape(rows, is_torus, topology):
    """A hexagonal torus needs an even number of rows: wrapping must keep each row's shift."""
    if is_torus and topology == "hexagonal" and rows % 2:
        raise ValueError(
            f"a hexagonal torus needs an even number of rows (odd rows are shifted by half a "
            f"cell, so wrapping {rows} rows would break the pattern); got som_size rows={rows}"
        )


def as_bool(value, name):
    """``value`` as a Python bool; only True and False (Python or numpy) are accepted."""
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def as_generator(seed, name="seed"):
    """``numpy.random.default_rng(seed)``; a seed it refuses is an error naming ``name``."""
    try:
        return np.random.default_rng(seed)
    except (TypeError, ValueError) as exc:
        raise type(exc)(
            f"{name} must be None, a non-negative integer or a numpy Generator, got {seed!r} "
            f"({exc})"
        ) from None


def allows_nan(nan_policy):
    """Whether ``nan_policy`` (checked: one of ``NAN_POLICIES``) lets NaN mark missing values."""
    return as_choice(nan_policy, "nan_policy", NAN_POLICIES) == NAN_POLICIES["ignore"]


def as_choice(value, name, choices):
    """The registry code of option ``value``; the error lists the valid names."""
    if not isinstance(value, str) or value not in choices:
        valid = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {valid}; got {value!r}")
    return choices[value]


def as_labels(labels, n_samples, name="additional_list", per="sample", of="data"):
    """``labels`` as a list with one entry per sample (or ``per`` item of ``of``), or None."""
    if labels is None:
        return None
    try:
        labels = list(labels)
    except TypeError:
        raise TypeError(f"{name} must be a sequence with one entry per {per}") from None
    if len(labels) != n_samples:
        raise ValueError(f"{name} has {len(labels)} entries but {of} has {n_samples} {per}s")
    return labels


#: How far beyond the squared diagonal of the data's bounding box a squared distance between a
#: sample and a cell may reach: the PCA initial grid extends up to about 1.4 diagonals from the
#: data's mean, so a cell can be 2.4 diagonals from a sample (2.4^2 < 8). The same holds feature
#: by feature (a component's share of a feature is at most that feature's spread), which bounds
#: the other metrics: a Manhattan distance reaches about 2.4 < sqrt(8) times the sum of the
#: features' spans; a cell's magnitude in a feature, for data around 0, 1.4 spans of up to 2
#: largest magnitudes, so its squared norm (and a cosine's dot products) under 8 times the sum
#: of the squared largest magnitudes.
SQUARED_REACH = 8.0


#: The fewest steps of the training dtype's spacing a feature's spread may take. Late in
#: training a step moves a cell by ``learning_rate_end`` (0.0045 by default) times its distance
#: to the sample, often a tenth of the spread: with 1,024 steps that is about half a step, so
#: with fewer the codebook stops following the data in that feature, and the data's own values
#: collapse (timestamps of one minute around 1.7e9 are one float32 value).
MIN_RESOLUTION_STEPS = 1024


def check_in_range(
    array,
    dtype,
    what,
    metric="euclidean",
    *,
    cell_bounds=None,
    remedy=None,
    tiny=True,
    resolution=False,
    xp=np,
):
    """Raise a ``ValueError`` when the distances of ``array``'s samples under ``metric`` do not fit
    ``dtype``'s arithmetic.

    Refused are values beyond its finite range (they would become inf); values whose distances
    overflow it (every distance inf or NaN: ties everywhere, a meaningless map): the squared
    differences of the Euclidean metric, the dot products and squared norms of the cosine, the
    sums of absolute differences of the Manhattan metric; and, with ``tiny``, values all so small
    that their squared differences underflow to 0 (every distance 0). Each feature's bounds are
    read once.

    Parameters
    ----------
    array : array of module ``xp``, shape (n_samples, dim)
        NaN marks a missing value.
    dtype : dtype
        The precision the distances are computed in.
    what : str
        What ``array`` is; the subject of the messages.
    metric : {"euclidean", "cosine", "manhattan"}, default "euclidean"
    cell_bounds : tuple of two arrays of module ``xp``, optional
        :func:`feature_bounds` of the vectors the samples are compared with, where they are
        known (analysis): they join ``array``'s. :data:`SQUARED_REACH` then also covers the
        rounding bound of ``gpusom._bmu_search``, whose ``(|x| + |w|)^2`` reaches 4 squared
        diagonals. A trained map reads its lattice's bounds once.
    remedy : str, optional
        The advice that ends the messages; default: ``dtype='float64'`` (unless ``dtype`` is
        float64) or ``normalize=True``.
    tiny : bool, default True
        Refuse values all so small that their squared differences underflow: training would
        learn nothing from them. Analysis passes False: its float64 distances that underflow to
        0 are a float64 brute force's too (``tests/test_analysis.py`` draws such values).
    resolution : bool, default False
        Refuse a feature whose spread is under :data:`MIN_RESOLUTION_STEPS` steps of
        ``dtype``'s spacing at its magnitude (a constant feature is fine). Training data held
        whole passes True; a chunk's spread says nothing of the whole data's.
    xp : module, default numpy
        numpy, or cupy for device arrays.
    """
    info = np.finfo(dtype)
    limit, smallest = float(info.max), float(np.sqrt(info.tiny))
    name = np.dtype(dtype).name
    if remedy is None:
        remedy = "use " + ("" if name == "float64" else "dtype='float64' or ") + "normalize=True"
    highs, lows = feature_bounds(array, xp)
    if cell_bounds is not None:
        highs, lows = xp.fmax(highs, cell_bounds[0]), xp.fmin(lows, cell_bounds[1])
    peak = max(float(xp.nanmax(highs)), -float(xp.nanmin(lows)))  # |x| without a copy
    if peak > limit:
        raise ValueError(
            f"{what} holds values up to {peak:.3g}, beyond the range of {name} "
            f"(+-{limit:.3g}); {remedy}"
        )
    with np.errstate(over="ignore", invalid="ignore"):
        if metric == "cosine":
            magnitude = xp.fmax(highs, -lows)
            reach = SQUARED_REACH * float(xp.nansum(magnitude * magnitude))
            extent, terms = "holds values so large", "dot products and squared norms"
        else:
            span = highs - lows
            extent = "spans so wide a range"
            if metric == "euclidean":
                reach = SQUARED_REACH * float(xp.nansum(span * span))
                terms = "squared differences"
            else:
                reach = math.sqrt(SQUARED_REACH) * float(xp.nansum(span))
                terms = "sums of absolute differences"
    if reach > limit:
        raise ValueError(
            f"{what} {extent} that {terms} of up to {reach:.3g} in its {metric} distances "
            f"overflow {name} (max {limit:.3g}); {remedy}"
        )
    if tiny and 0 < peak < smallest:
        raise ValueError(
            f"{what} holds values no larger than {peak:.3g} in magnitude: their squared "
            f"differences underflow to 0 in {name}; {remedy}"
        )
    if resolution:
        # one value per feature: on the host whatever xp is
        magnitude = np.asarray(xp.fmax(highs, -lows).tolist(), dtype=dtype)
        spacing = np.spacing(magnitude).astype(np.float64)
        span = np.asarray((highs - lows).tolist())
        coarse = (span > 0) & (span < MIN_RESOLUTION_STEPS * spacing)
        if coarse.any():
            j = int(np.argmax(coarse))
            raise ValueError(
                f"{what}'s feature {j} spans only {span[j]:.3g} at values up to "
                f"{magnitude[j]:.3g}: {name} resolves that in {span[j] / spacing[j]:.3g} steps "
                f"of {spacing[j]:.3g}, and the map cannot follow the feature; {remedy}"
            )


def feature_bounds(array, xp=np):
    """``(highs, lows)``: the largest and smallest value of each feature (last axis) of
    ``array`` as float64, NaN (missing values) skipped; NaN for a feature with no present
    value."""
    array = array.reshape(-1, array.shape[-1])
    with warnings.catch_warnings():
        # numpy warns about such a feature; the sums of check_in_range leave its NaN out
        warnings.simplefilter("ignore", RuntimeWarning)
        highs, lows = xp.nanmax(array, axis=0), xp.nanmin(array, axis=0)
    return highs.astype(np.float64), lows.astype(np.float64)


def available_memory():
    """Physical memory of this machine in bytes, or None where it cannot be read."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def check_memory(n_bytes, what, available=None):
    """Raise a ``ValueError`` when ``n_bytes`` will not fit in ``available`` memory."""
    available = available_memory() if available is None else available
    if available is not None and n_bytes > available:
        raise ValueError(
            f"{what} needs about {n_bytes / 2**30:.2f} GiB ({n_bytes} bytes) but this machine has "
            f"{available / 2**30:.2f} GiB; use a smaller lattice or fewer samples (a float64 map "
            "takes about twice a float32 one's memory)"
        )
