"""Dask: batch training and analysis of data that lives in chunks, on one machine or a cluster.

A batch epoch is a map-reduce (dask-ml's ``KMeans`` has the same shape): every chunk of rows
gives the per-cell sums and counts of the samples whose best matching unit is that cell
(``gpusom._batch.bmu_sums``, on the engine of the chunk: numpy chunks on the CPU engine, cupy
chunks on the CUDA engine inside their worker), the partial sums are added in a tree, and the
client smooths the totals into the next codebook (``gpusom._batch.smooth``). Only
``n_cells x (dim + 1)`` numbers per chunk travel; the samples never leave their worker, and each
epoch reads the data once.

The analysis helpers (:func:`find_bmus`, :func:`quantization_error`, ...) are lazy: they return
dask collections, computed when the caller asks. :func:`project` computes, since its result is
a dict of samples.

``import gpusom`` never imports dask: every function imports it on first use, with an error that
says what to install where it is missing.
"""

import sys

import numpy as np

from . import _backend, _checks
from ._math import EUCLIDEAN, METRICS, reported_distance
from ._scaling import scale
from .analysis import RANGE_REMEDY, group_by_cell, non_adjacent_share

INSTALL_HINT = 'pip install "gpusom[dask]"'

#: Partial sums added per node of the reduction tree: a node holds this many
#: ``n_cells x (dim + 1)`` float64 blocks at once.
SPLIT_EVERY = 8

#: Name prefix of the arrays :func:`as_dask_array` returns, so a second call adds no second check.
_CHECKED = "gpusom-checked-"


#: Metric names by code, for the range checks of ``gpusom._checks.check_in_range``.
METRIC_NAMES = {code: name for name, code in METRICS.items()}


def _dask():
    """The ``dask`` module with ``dask.array`` loaded; an ImportError with the fix if missing."""
    try:
        import dask
        import dask.array  # loads the submodule onto ``dask``
    except ImportError as exc:
        raise ImportError(
            f"gpusom's Dask support needs dask[array,dataframe] and distributed: {INSTALL_HINT}"
        ) from exc
    return dask


def is_dask(obj):
    """True for a dask Array or a dask DataFrame.

    Only asks modules that are already imported: an object cannot be a dask collection unless
    dask made it, so this never imports dask.

    Parameters
    ----------
    obj : object

    Returns
    -------
    bool
    """
    return _is_dask_array(obj) or _is_dask_frame(obj)


def _is_dask_array(obj):
    array = sys.modules.get("dask.array")
    return array is not None and isinstance(obj, array.Array)


def _is_dask_frame(obj):
    frame = sys.modules.get("dask.dataframe")
    return frame is not None and isinstance(obj, frame.DataFrame)


def as_dask_array(value, name="data", allow_nan=False):
    """``value`` as a validated ``(n_samples, dim)`` dask Array, and its feature names.

    The checks that the metadata allows (type, dimensions, dtype, empty) raise here, before any
    work is scheduled; only the DataFrame's partition lengths are computed
    (``to_dask_array(lengths=True)``), after its columns passed. NaN and infinite values can only
    be seen in the values: each chunk's task checks its own, as ``gpusom._checks.
    checked_float_array`` does, and raises its ``ValueError`` naming ``name`` when the array is
    computed.

    Parameters
    ----------
    value : dask.array.Array or dask.dataframe.DataFrame
        A 2-D array of numbers, or a DataFrame of numeric columns (missing values count as NaN).
    name : str, default "data"
        The argument's name in error messages.
    allow_nan : bool, default False
        NaN marks missing values (``nan_policy="ignore"``): only infinite values and samples
        with no present value are errors.

    Returns
    -------
    array : dask.array.Array
        float32 when the input is float32 (every column, for a DataFrame), else float64; one
        chunk along the features (rechunked where the input had several).
    feature_names : ndarray of object or None
        The column names of a DataFrame whose column names are all strings; else None
        (scikit-learn's convention, as ``gpusom._checks.feature_names``).

    Raises
    ------
    TypeError
        Not a dask collection, or not numeric.
    ValueError
        Not 2-D, or no samples or no features.
    """
    dask = _dask()
    names = None
    if _is_dask_frame(value):
        value, names = _frame_array(value, name)
    elif not _is_dask_array(value):
        raise TypeError(f"{name} must be a dask Array or dask DataFrame, got {type(value)!r}")
    array = value
    if array.name.startswith(_CHECKED):
        return array, names
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be numeric, got a dask array of dtype {array.dtype}")
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array, got {array.ndim}-D with shape {array.shape}")
    if 0 in array.shape:
        raise _empty_error(name, array.shape)
    if array.numblocks[1] > 1:
        # a chunk's BMU search needs whole samples
        array = array.rechunk({1: -1})
    if array.dtype not in (np.float32, np.float64):
        array = array.astype(np.float64)
    checked = array.map_blocks(
        _finite_block,
        name=_CHECKED + dask.base.tokenize(array, name, allow_nan),
        dtype=array.dtype,
        meta=array._meta,
        check_name=name,
        allow_nan=allow_nan,
    )
    return checked, names


def _empty_error(name, shape):
    """The ``ValueError`` for data of ``shape`` with no samples or no features, worded as the
    in-memory check's (``gpusom._checks.checked_float_array``)."""
    return ValueError(f"{name} is empty (shape {shape})")


def _frame_array(frame, name):
    """The dask Array of a DataFrame's values, and its string feature names (or None)."""
    dtypes = list(frame.dtypes.items())
    if not dtypes:
        raise ValueError(f"{name} has no columns")
    for column, dtype in dtypes:
        if getattr(dtype, "kind", "O") not in "biuf":
            raise TypeError(f"{name} column {column!r} is not numeric (dtype {dtype})")
    columns = [column for column, _ in dtypes]
    names = None
    if all(isinstance(column, str) for column in columns):
        names = np.asarray(columns, dtype=object)
    all_float32 = all(dtype == np.float32 for _, dtype in dtypes)
    # astype turns pandas' missing values (nullable integers too) into NaN, which the chunk
    # check then reports
    values = frame.astype(np.float32 if all_float32 else np.float64)
    return values.to_dask_array(lengths=True), names


def _finite_block(block, check_name, allow_nan):
    """``block`` itself, after the value checks of ``_checks.checked_float_array`` (runs in the
    chunk's task)."""
    if block.shape[0]:  # an empty partition of a DataFrame is no empty data set
        xp = _backend.array_engine(block).xp
        _checks.checked_float_array(block, check_name, 2, xp, allow_nan)
    return block


def scaled(data, low, span):
    """The dask array ``data`` min-max scaled chunk by chunk (``gpusom._scaling.scale``), lazily."""
    return data.map_blocks(scale, low, span, np, dtype=data.dtype)


def _numpy_codebook(codebook, dim=None):
    """A ``(n_cells, dim)`` float numpy codebook (a GPU one is copied to the host: it travels)."""
    engine = _backend.array_engine(codebook)
    codebook = engine.to_numpy(engine.as_array(codebook, "codebook", 2))
    if dim is not None and codebook.shape[1] != dim:
        raise ValueError(
            f"data has {dim} features per sample but the codebook vectors have {codebook.shape[1]}"
        )
    return codebook


def _current_client(client):
    """``client``, else the current ``distributed.Client``, else None (dask's default scheduler).

    A client can only exist once ``distributed`` is imported, so this never imports it.
    """
    if client is not None or "distributed" not in sys.modules:
        return client
    from distributed import get_client

    try:
        return get_client()
    except ValueError:  # no client in this process
        return None


# -- training ------------------------------------------------------------------------------------


def train_batch(
    data,
    codebook,
    sigmas,
    rows,
    cols,
    is_torus,
    neighborhood,
    truncate,
    topology,
    client=None,
    metric=EUCLIDEAN,
    allow_nan=False,
):
    """Batch SOM epochs over a chunked dataset: one map-reduce over the chunks per epoch.

    Each epoch broadcasts the current codebook (scattered to every worker on a distributed
    cluster, a graph constant otherwise), maps every chunk to the per-cell sums and counts of
    its samples (``gpusom._batch.bmu_sums`` on the chunk's engine), adds them in a tree of
    :data:`SPLIT_EVERY` blocks per node and smooths the totals on the client with the CPU engine
    (``gpusom._batch.smooth``). Nothing is persisted: each epoch reads the data once, so data
    larger than the cluster's memory trains as long as one chunk per worker thread fits.
    A worker that dies mid-epoch costs only its chunks, which the scheduler reruns elsewhere.

    Parameters
    ----------
    data : dask.array.Array or dask.dataframe.DataFrame
        ``(n_samples, dim)`` samples, validated by :func:`as_dask_array`.
    codebook : ndarray of shape (n_cells, dim)
        The starting codebook, ``n_cells = rows * cols``; its dtype is the result's.
    sigmas : sequence of float
        The neighbourhood radius of each epoch.
    rows, cols : int
    is_torus : bool
    neighborhood, topology : int
        Codes of ``gpusom._math.NEIGHBORHOODS`` and ``TOPOLOGIES``.
    truncate : float
    client : distributed.Client, optional
        Where to run; by default the current client where there is one, else dask's default
        scheduler.
    metric : int
        Code of ``gpusom._math.METRICS`` for the best-unit search.
    allow_nan : bool
        NaN marks missing values: every chunk then counts present values per feature.

    Returns
    -------
    ndarray of shape (n_cells, dim)
        The trained codebook, a numpy array.
    """
    dask = _dask()
    from . import _batch

    data, _ = as_dask_array(data, "data", allow_nan)
    codebook = _numpy_codebook(codebook, data.shape[1])
    client = _current_client(client)
    host = _backend.cpu_engine()
    for sigma in sigmas:
        sums, counts = _epoch_sums(dask, data, codebook, client, metric, allow_nan)
        codebook = _batch.smooth(
            host,
            sums,
            counts,
            codebook,
            float(sigma),
            rows,
            cols,
            is_torus,
            neighborhood,
            truncate,
            topology,
        )
    return np.asarray(codebook)


def _epoch_sums(dask, data, codebook, client, metric, per_feature):
    """``(sums, counts)`` of one epoch over all chunks, float64 numpy arrays (counts per
    feature with ``per_feature``)."""
    n_cells, dim = codebook.shape
    width = 2 * dim if per_feature else dim + 1
    if client is not None:
        shared = client.scatter(codebook, broadcast=True, hash=False)
    else:
        shared = dask.delayed(codebook, pure=True)
    parts = data.map_blocks(
        _chunk_sums,
        shared,
        metric,
        per_feature,
        chunks=(1, n_cells, width),
        new_axis=[2],
        dtype=np.float64,
        meta=np.empty((0, 0, 0)),
    )
    total = parts.sum(axis=0, split_every=SPLIT_EVERY)
    if client is not None:
        total = client.compute(total).result()
    else:
        total = total.compute()
    return total[:, :dim], total[:, dim:] if per_feature else total[:, dim]


def _chunk_sums(chunk, codebook, metric, per_feature):
    """One chunk's ``(1, n_cells, width)`` float64 partial sums: per-cell sums of its samples
    by best matching unit, then their counts (per feature with ``per_feature``), computed on
    the chunk's engine."""
    from . import _batch

    n_cells, dim = codebook.shape
    engine = _backend.array_engine(chunk)
    codebook = engine.xp.asarray(codebook)
    # As SOM.train checks data in memory, chunk by chunk here (with the codebook's bounds, which
    # the other chunks' values shaped): the chunk's task fails with the same ValueError. An
    # empty partition of a DataFrame has no bounds.
    if chunk.shape[0]:
        _checks.check_in_range(
            chunk, codebook.dtype, "the training data", METRIC_NAMES[metric],
            cell_bounds=_checks.feature_bounds(codebook, engine.xp), xp=engine.xp,
        )  # fmt: skip
    # bmu_sums compares samples and codebook in one dtype, the codebook's: the training dtype
    chunk = chunk.astype(codebook.dtype, copy=False)
    sums, counts = _batch.bmu_sums(engine, chunk, codebook, metric, per_feature)
    out = np.empty((1, n_cells, dim + (dim if per_feature else 1)))
    out[0, :, :dim] = engine.to_numpy(sums)
    out[0, :, dim:] = engine.to_numpy(counts).reshape(n_cells, -1)
    return out


# -- analysis ------------------------------------------------------------------------------------


def find_bmus(data, codebook, k=1, metric=EUCLIDEAN, allow_nan=False):
    """Lazy exact ``k`` best units of every sample, chunk by chunk.

    Parameters
    ----------
    data : dask.array.Array or dask.dataframe.DataFrame
        ``(n_samples, dim)`` samples.
    codebook : array of shape (n_cells, dim)
    k : {1, 2}, default 1
    metric : int, default 0 (Euclidean)
        A code of ``gpusom._math.METRICS``.
    allow_nan : bool, default False
        NaN features are missing values (``nan_policy="ignore"``), as in ``Engine.find_bmus``.

    Returns
    -------
    index : dask.array.Array of int64, shape (n_samples, k)
        Flat cell indices; ties to the lowest index; a missing second unit is -1.
    distance : dask.array.Array of float64, shape (n_samples, k)
        The ranking value of ``Engine.find_bmus``: the squared distance under the Euclidean
        metric (``gpusom._math.reported_distance`` gives what users see); a missing second
        unit is inf.

    Both come from the same tasks: computing them together searches each chunk once. A
    filtered array (lengths unknown) that kept no sample gives empty results, as do
    :func:`predict` and :func:`transform`: each chunk's result is its own, and an error for an
    empty whole would make every chunk wait for all the others.
    """
    dask = _dask()
    data, _ = as_dask_array(data, "data", allow_nan)
    codebook = _numpy_codebook(codebook, data.shape[1])
    if k not in (1, 2):
        raise ValueError(f"k must be 1 or 2, got {k!r}")
    return dask.array.apply_gufunc(
        _chunk_bmus,
        "(d)->(k),(k)",
        data,
        output_dtypes=(np.int64, np.float64),
        output_sizes={"k": k},
        codebook=dask.delayed(codebook, pure=True),
        k=k,
        metric=metric,
    )


def _chunk_bmus(chunk, codebook, k, metric):
    """``(index, distance)`` of one chunk as numpy arrays, on the chunk's engine."""
    if chunk.shape[0] == 0:
        return np.empty((0, k), np.int64), np.empty((0, k))
    engine = _backend.array_engine(chunk)
    codebook = engine.xp.asarray(codebook)
    # As gpusom.analysis._prepare checks data in memory, chunk by chunk here.
    _checks.check_in_range(
        chunk, np.float64, "data with the lattice", METRIC_NAMES[metric],
        cell_bounds=_checks.feature_bounds(codebook, engine.xp), remedy=RANGE_REMEDY,
        tiny=False, xp=engine.xp,
    )  # fmt: skip
    index, distance = engine.find_bmus(chunk, codebook, k, metric)
    return engine.to_numpy(index), engine.to_numpy(distance)


def predict(data, codebook, metric=EUCLIDEAN, allow_nan=False):
    """Lazy flat index ``row * cols + col`` of each sample's best unit: int64 ``(n_samples,)``.

    ``metric`` and ``allow_nan`` as in :func:`find_bmus`.
    """
    return find_bmus(data, codebook, 1, metric, allow_nan)[0][:, 0]


def transform(data, codebook, cols, metric=EUCLIDEAN, allow_nan=False):
    """Lazy ``(row, col)`` of each sample's best unit on a lattice of ``cols`` columns.

    ``metric`` and ``allow_nan`` as in :func:`find_bmus`.

    Returns
    -------
    dask.array.Array of int64, shape (n_samples, 2)
    """
    flat = predict(data, codebook, metric, allow_nan)
    # chunk by chunk: stacking the row and column arrays would need the chunks' lengths, which
    # a filtered array only knows once computed
    return flat.map_blocks(
        _chunk_cells,
        cols,
        new_axis=1,
        chunks=flat.chunks + ((2,),),
        dtype=np.int64,
        meta=np.empty((0, 0), np.int64),
    )


def _chunk_cells(flat, cols):
    """``(row, col)`` of one chunk's flat cell indices: ``(n, 2)`` int64."""
    return np.stack(np.divmod(flat, cols), axis=1)


def quantization_error(data, codebook, metric=EUCLIDEAN, allow_nan=False, name="data"):
    """Lazy mean distance of each sample to its best unit under ``metric``.

    Parameters
    ----------
    data : dask.array.Array or dask.dataframe.DataFrame
    codebook : array of shape (n_cells, dim)
    metric, allow_nan
        As in :func:`find_bmus`.
    name : str, default "data"
        The argument's name in error messages.

    Returns
    -------
    dask.array.Array
        0-d, float64.

    Raises
    ------
    ValueError
        ``data`` has no samples: here where its length is known, on compute where it is not
        (a filtered array).
    """
    data, _ = as_dask_array(data, name, allow_nan)
    _, distance = find_bmus(data, codebook, 1, metric, allow_nan)
    parts = distance.map_blocks(
        _chunk_distance_sum, metric, chunks=(1, 2), dtype=np.float64, meta=np.empty((0, 0))
    )
    return _mean_of_parts(parts, name, data.shape[1])


def _chunk_distance_sum(distance, metric):
    """``[[sum, n]]`` of one chunk's ``(n, 1)`` ranking values, as the distances users see."""
    return np.array([[reported_distance(distance[:, 0], metric).sum(), distance.shape[0]]])


def topographic_error(
    data,
    codebook,
    rows,
    cols,
    is_torus,
    topology="rectangular",
    metric=EUCLIDEAN,
    allow_nan=False,
    name="data",
):
    """Lazy share of samples whose two best units are not lattice neighbours.

    Each chunk's share (``gpusom.analysis.non_adjacent_share``) is weighted by its number of
    samples; a lattice of one cell has no second unit and an error of 0.

    Parameters
    ----------
    data : dask.array.Array or dask.dataframe.DataFrame
    codebook : array of shape (rows * cols, dim)
    rows, cols : int
    is_torus : bool
    topology : {"rectangular", "hexagonal"}, default "rectangular"
    metric, allow_nan
        As in :func:`find_bmus`.
    name : str, default "data"
        The argument's name in error messages.

    Returns
    -------
    dask.array.Array
        0-d, float64.

    Raises
    ------
    ValueError
        As :func:`quantization_error`.
    """
    data, _ = as_dask_array(data, name, allow_nan)
    # a one-cell lattice goes through the search too: it checks the data (features, NaN, inf)
    index, _ = find_bmus(data, codebook, 2, metric, allow_nan)
    parts = index.map_blocks(
        _chunk_non_adjacent,
        rows,
        cols,
        is_torus,
        topology,
        chunks=(1, 2),
        dtype=np.float64,
        meta=np.empty((0, 0)),
    )
    return _mean_of_parts(parts, name, data.shape[1])


def _chunk_non_adjacent(index, rows, cols, is_torus, topology):
    """``[[share * n, n]]`` of one chunk's ``(n, 2)`` best-unit pairs."""
    n = index.shape[0]
    if n == 0:
        return np.zeros((1, 2))
    # one cell: no second unit (-1), no sample whose two best units are apart
    share = 0.0 if rows * cols == 1 else non_adjacent_share(index, rows, cols, is_torus, topology)
    return np.array([[share * n, n]], dtype=np.float64)


def _mean_of_parts(parts, name, dim):
    """Lazy ``sum(total) / sum(n)`` of the ``[[total, n]]`` rows of the chunks: a 0-d float64
    dask array, whose task raises the ValueError of :func:`_empty_error` (``name``, ``dim``
    features) when no chunk has a sample: the length of a filtered array is only known there.
    """
    return parts.sum(axis=0).map_blocks(
        _checked_ratio, name, dim, drop_axis=0, dtype=np.float64, meta=np.empty(())
    )


def _checked_ratio(totals, name, dim):
    """``totals[0] / totals[1]`` as a 0-d array; the empty-data ValueError where
    ``totals[1]`` (the number of samples) is 0."""
    total, n = totals
    if n == 0:
        raise _empty_error(name, (0, dim))
    return np.asarray(total / n)


def project(
    data,
    codebook,
    shape,
    labels=None,
    samples=None,
    metric=EUCLIDEAN,
    allow_nan=False,
    name="data",
):
    """Group samples by their best unit, as ``gpusom.analysis.group_by_cell``. Computes.

    The result is a dict of samples in memory, so this computes the BMUs, and the samples
    themselves unless ``labels`` are given, in one pass over the data.

    Parameters
    ----------
    data : dask.array.Array or dask.dataframe.DataFrame
        The samples compared with the codebook (scaled as the training data).
    codebook : array of shape (rows * cols, dim)
    shape : tuple of int
        ``(rows, cols)``.
    labels : sequence, optional
        One label per sample; when given, the cells hold labels instead of samples.
    samples : dask.array.Array, optional
        What the cells hold when no labels are given (the unscaled samples); default ``data``.
    metric, allow_nan
        As in :func:`find_bmus`.
    name : str, default "data"
        The argument's name in error messages.

    Returns
    -------
    dict
        ``{(row, col): [...]}`` for every cell, in row-major order.

    Raises
    ------
    ValueError
        ``data`` has no samples (found on compute where its length was unknown), or ``labels``
        do not match it.
    """
    dask = _dask()
    data, _ = as_dask_array(data, name, allow_nan)
    flat = predict(data, codebook, metric, allow_nan)
    if labels is not None:
        n = data.shape[0]
        if not np.isnan(n):
            # before any work is scheduled, where the length is known
            labels = _checks.as_labels(labels, int(n), "labels")
        items = None  # dask.compute passes it through
    else:
        items = data if samples is None else as_dask_array(samples, "samples", allow_nan)[0]
    flat, items = dask.compute(flat, items)
    if flat.shape[0] == 0:  # a filtered array that kept no sample
        raise _empty_error(name, (0, data.shape[1]))
    if labels is not None:
        return group_by_cell(flat, shape, _checks.as_labels(labels, flat.shape[0], "labels"))
    return group_by_cell(flat, shape, _backend.array_engine(items).to_numpy(items))
