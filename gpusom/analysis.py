"""What a trained lattice says about data: BMUs, projections, u-matrix, activations, errors.

Every function here works on a plain ``(rows, cols, dim)`` lattice, whichever backend trained it,
and processes samples in blocks so memory stays bounded for millions of samples. When the data or
the lattice is a GPU array (cupy), the distance work runs on the GPU and array results stay there.
"""

from timeit import default_timer as timer

import numpy as np
from numba import njit

from . import _backend, _bmu_search, _checks
from ._math import (
    COSINE,
    EUCLIDEAN,
    METRICS,
    TOPOLOGIES,
    exact_distance,
    quadrance,
    reported_distance,
)
from ._scaling import normalize_features

#: The advice of the errors about data whose distances to the lattice do not fit float64.
RANGE_REMEDY = (
    "scale data and lattice alike: train with normalize=True and call the SOM's methods, which "
    "scale X as the training data"
)


def _prepare(
    data,
    lattice,
    metric,
    normalize=False,
    data_name="data",
    nan_policy="raise",
    normalize_name="normalize",
):
    """Validated ``(data, lattice, scaled data, engine, metric code)``; the scaled data is what
    gets compared, and its distances to the lattice under ``metric`` fit float64.

    The engine is the one of the arrays: when either is a GPU array, both are moved there.
    ``normalize_name`` is the caller's name for the ``normalize`` flag.
    """
    allow_nan = _checks.allows_nan(nan_policy)
    normalize = _checks.as_bool(normalize, normalize_name)
    code = _metric(metric)
    engine = _backend.array_engine(data, lattice)
    data = engine.as_array(data, data_name, 2, allow_nan)
    lattice = engine.as_array(lattice, "lattice", 3)
    _checks.check_same_dim(data, lattice, data_name)
    scaled = normalize_features(data, engine.xp) if normalize else data
    # Distances are float64 here (gpusom._math.exact_distance, distance_matrix, the products
    # of gpusom._bmu_search where float32 could overflow): beyond its range they are inf.
    _checks.check_in_range(
        scaled,
        np.float64,
        f"{data_name} with the lattice",
        metric,
        cell_bounds=_checks.feature_bounds(lattice, engine.xp),
        remedy=RANGE_REMEDY,
        tiny=False,
        xp=engine.xp,
    )
    return data, lattice, scaled, engine, code


def _bmus(engine, data, lattice, k=1, metric=EUCLIDEAN):
    """Exact flat BMU indices ``(n, k)`` and ranking distances, as numpy arrays."""
    index, distance = engine.find_bmus(data, lattice.reshape(-1, lattice.shape[-1]), k, metric)
    return engine.to_numpy(index), engine.to_numpy(distance)


def _say(verbose, message, start):
    if verbose:
        print(f"{message} took: {timer() - start:f} seconds.")


def find_bmus(data, lattice, *, metric="euclidean", nan_policy="raise"):
    """Best matching unit of every sample.

    Parameters
    ----------
    data : array_like of shape (n_samples, dim)
    lattice : array_like of shape (rows, cols, dim)
    metric : {"euclidean", "cosine", "manhattan"}, default "euclidean"
        The distance that picks best units (``gpusom.SOM``'s ``metric``).
    nan_policy : {"raise", "ignore"}, default "raise"
        NaN in ``data`` is an error, or a missing value (``gpusom.SOM``'s ``nan_policy``).

    Returns
    -------
    ndarray of int64, shape (n_samples, 2)
        ``(row, col)`` of the cell closest to each sample (ties go to the lowest flat index
        ``row * cols + col``); a GPU array when an input was one, a lazy dask array for a Dask
        collection.

    Examples
    --------
    >>> import numpy as np
    >>> lattice = np.zeros((2, 3, 1)); lattice[1, 2] = 5.0
    >>> find_bmus([[4.0], [0.1]], lattice).tolist()
    [[1, 2], [0, 0]]
    """
    lazy = _lazy(data, lattice, metric, nan_policy)
    if lazy is not None:
        dask, codebook, code, allow_nan, cols = lazy
        return dask.transform(data, codebook, cols, code, allow_nan)
    data, lattice, _, engine, code = _prepare(data, lattice, metric, nan_policy=nan_policy)
    index, _ = _bmus(engine, data, lattice, metric=code)
    cells = np.stack(np.divmod(index[:, 0], lattice.shape[1]), axis=1)
    return engine.xp.asarray(cells)


def quantization_error(data, lattice, *, metric="euclidean", nan_policy="raise"):
    """Mean distance between each sample and its best matching unit.

    Parameters
    ----------
    data : array_like of shape (n_samples, dim)
    lattice : array_like of shape (rows, cols, dim)
    metric : {"euclidean", "cosine", "manhattan"}, default "euclidean"
        The distance (``gpusom.SOM``'s ``metric``).
    nan_policy : {"raise", "ignore"}, default "raise"
        NaN in ``data`` is an error, or a missing value (``gpusom.SOM``'s ``nan_policy``).

    Returns
    -------
    float
        A lazy dask scalar for a Dask collection.
    """
    lazy = _lazy(data, lattice, metric, nan_policy)
    if lazy is not None:
        dask, codebook, code, allow_nan, _ = lazy
        return dask.quantization_error(data, codebook, code, allow_nan)
    data, lattice, _, engine, code = _prepare(data, lattice, metric, nan_policy=nan_policy)
    _, distance = _bmus(engine, data, lattice, metric=code)
    return float(reported_distance(distance[:, 0], code).mean())


def topographic_error(
    data, lattice, is_torus=False, *, topology="rectangular", metric="euclidean", nan_policy="raise"
):
    """Fraction of samples whose best and second-best units are not lattice neighbours.

    Neighbours are the 8 surrounding cells of the rectangular lattice or the 6 of the hexagonal
    one (wrapping on a torus). A lattice of one cell has no second unit; its error is 0.

    Parameters
    ----------
    data : array_like of shape (n_samples, dim)
    lattice : array_like of shape (rows, cols, dim)
    is_torus : bool, default False
    topology : {"rectangular", "hexagonal"}, default "rectangular"
    metric : {"euclidean", "cosine", "manhattan"}, default "euclidean"
        The distance that picks best units (``gpusom.SOM``'s ``metric``).
    nan_policy : {"raise", "ignore"}, default "raise"
        NaN in ``data`` is an error, or a missing value (``gpusom.SOM``'s ``nan_policy``).

    Returns
    -------
    float
        A lazy dask scalar for a Dask collection.
    """
    lazy = _lazy(data, lattice, metric, nan_policy)
    if lazy is not None:
        dask, codebook, code, allow_nan, cols = lazy
        rows = codebook.shape[0] // cols
        is_torus, topology = _lattice_kind(rows, is_torus, topology)
        return dask.topographic_error(
            data, codebook, rows, cols, is_torus, topology, code, allow_nan
        )
    data, lattice, _, engine, code = _prepare(data, lattice, metric, nan_policy=nan_policy)
    rows, cols = lattice.shape[:2]
    is_torus, topology = _lattice_kind(rows, is_torus, topology)
    if rows * cols == 1:
        return 0.0
    index, _ = _bmus(engine, data, lattice, k=2, metric=code)
    return non_adjacent_share(index, rows, cols, is_torus, topology)


def non_adjacent_share(index, rows, cols, is_torus, topology="rectangular"):
    """Share of rows of flat ``(n, 2)`` best-unit pairs that are not lattice neighbours."""
    code = TOPOLOGIES[topology]
    q = _quadrances(index[:, 0], index[:, 1], rows, cols, bool(is_torus), code)
    return float(np.mean(q > NEIGHBOUR_QUADRANCE[code]))


#: The largest quadrance (``gpusom._math.quadrance``) of two neighbours, by topology code:
#: ``4 (1 + 1)`` for the diagonal of the square grid, ``4`` (distance 1) on the hexagonal one.
NEIGHBOUR_QUADRANCE = (8, 4)


@njit(cache=True)
def _quadrances(first, second, rows, cols, is_torus, topology):
    out = np.empty(first.size, np.int64)
    for i in range(first.size):
        a, b = first[i], second[i]
        out[i] = quadrance(a // cols, a % cols, b // cols, b % cols, rows, cols, is_torus, topology)
    return out


def _lazy(data, lattice, metric, nan_policy):
    """``(gpusom._dask, codebook, metric code, allow_nan, cols)`` when ``data`` is a Dask
    collection (the lazy functions take it from there), else None."""
    from . import _dask  # imports this module: resolved at call time

    if not _dask.is_dask(data):
        return None
    allow_nan = _checks.allows_nan(nan_policy)
    lattice = _checks.as_lattice(lattice)
    return (
        _dask,
        lattice.reshape(-1, lattice.shape[-1]),
        _metric(metric),
        allow_nan,
        lattice.shape[1],
    )


def _metric(metric):
    """The code of a validated metric name."""
    return _checks.as_choice(metric, "metric", METRICS)


def _lattice_kind(rows, is_torus, topology):
    """Validated ``(is_torus, topology)`` of a bare lattice of ``rows`` rows."""
    is_torus = _checks.as_bool(is_torus, "is_torus")
    _checks.as_choice(topology, "topology", TOPOLOGIES)
    _checks.check_lattice_shape(rows, is_torus, topology)
    return is_torus, topology


def project_on_lattice(
    data,
    lattice,
    additional_list=None,
    normalize=False,
    *,
    verbose=True,
    metric="euclidean",
    nan_policy="raise",
):
    """Group samples by the lattice cell they land on.

    Parameters
    ----------
    data : array_like of shape (n_samples, dim)
    lattice : array_like of shape (rows, cols, dim)
    additional_list : sequence, optional
        One label per sample; when given, the cells hold labels instead of sample vectors.
    normalize : bool, default False
        Min-max scale ``data`` per feature before comparing (the cells still hold the
        original vectors).
    verbose : bool, default True
        Print the timing line.
    metric : {"euclidean", "cosine", "manhattan"}, default "euclidean"
        The distance that picks best units (``gpusom.SOM``'s ``metric``).
    nan_policy : {"raise", "ignore"}, default "raise"
        NaN in ``data`` is an error, or a missing value (``gpusom.SOM``'s ``nan_policy``).

    Returns
    -------
    dict
        ``{(row, col): [...]}`` for every cell, in row-major order; an empty list where no sample
        landed, else the samples (or labels) in data order.
    """
    start = timer()
    data, lattice, scaled, engine, code = _prepare(
        data, lattice, metric, normalize, nan_policy=nan_policy
    )
    labels = _checks.as_labels(additional_list, data.shape[0])
    index, _ = _bmus(engine, scaled, lattice, metric=code)
    items = labels if labels is not None else engine.to_numpy(data)
    projection = group_by_cell(index[:, 0], lattice.shape[:2], items)
    _say(verbose, "Projecting on SOM", start)
    return projection


def group_by_cell(flat_index, shape, items):
    """``{(row, col): [...]}`` for every cell of a ``shape`` lattice, in row-major order.

    ``items[i]`` (a sample or its label) goes to cell ``flat_index[i]``, in data order.
    """
    rows, cols = shape
    projection = {(r, c): [] for r in range(rows) for c in range(cols)}
    cells = list(projection)
    for i, flat in enumerate(np.asarray(flat_index).tolist()):
        projection[cells[flat]].append(items[i])
    return projection


def lattice_closest_vectors(
    data,
    lattice,
    additional_list=None,
    normalized=False,
    *,
    verbose=True,
    metric="euclidean",
    nan_policy="raise",
):
    """The sample closest to each lattice cell.

    Parameters
    ----------
    data : array_like of shape (n_samples, dim)
    lattice : array_like of shape (rows, cols, dim)
    additional_list : sequence, optional
        One label per sample; when given, each cell maps to ``[label]`` of its closest sample.
    normalized : bool, default False
        Min-max scale ``data`` per feature before comparing.
    verbose : bool, default True
        Print the timing line.
    metric : {"euclidean", "cosine", "manhattan"}, default "euclidean"
        The distance (``gpusom.SOM``'s ``metric``).
    nan_policy : {"raise", "ignore"}, default "raise"
        NaN in ``data`` is an error, or a missing value (``gpusom.SOM``'s ``nan_policy``).

    Returns
    -------
    dict
        ``{(row, col): vector}`` (the original sample) or ``{(row, col): [label]}`` for every
        cell, in row-major order.
    """
    start = timer()
    data, lattice, scaled, engine, code = _prepare(
        data, lattice, metric, normalized, nan_policy=nan_policy, normalize_name="normalized"
    )
    labels = _checks.as_labels(additional_list, data.shape[0])
    cols, dim = lattice.shape[1:]
    if code == EUCLIDEAN and not bool(engine.xp.isnan(scaled).any()):
        # The same search with the roles swapped: cells are the queries, samples the codebook.
        closest = engine.to_numpy(engine.find_bmus(lattice.reshape(-1, dim), scaled)[0])
    else:
        # A sample's missing features are its own, so the roles cannot swap: the dense
        # distances, first sample on ties.
        distances = distance_matrix(scaled, lattice.reshape(-1, dim), code, engine.xp)
        closest = engine.to_numpy(distances.argmin(axis=0))[:, None]
    data = engine.to_numpy(data)
    result = {}
    for flat, sample in enumerate(closest[:, 0].tolist()):
        cell = divmod(flat, cols)
        result[cell] = [labels[sample]] if labels is not None else data[sample]
    _say(verbose, "Finding closest data points", start)
    return result


def lattice_activations(
    data,
    lattice,
    normalize=False,
    exponent=1,
    *,
    verbose=True,
    metric="euclidean",
    nan_policy="raise",
):
    """How strongly each sample activates each cell, scaled to [0, 1].

    The activation is ``(D - d) ** exponent`` with ``d`` the squared Euclidean distance (or the
    Manhattan or cosine distance, by ``metric``) between sample and cell and ``D`` the largest
    such distance over all samples and cells, then min-max scaled over the whole result (as the
    original library). Where every distance is equal the
    activations are all 1.

    Parameters
    ----------
    data : array_like of shape (n_samples, dim)
    lattice : array_like of shape (rows, cols, dim)
    normalize : bool, default False
        Min-max scale ``data`` per feature before comparing.
    exponent : float, default 1
        Values above 1 sharpen the peaks, below 1 flatten them.
    verbose : bool, default True
        Print the timing line.
    metric : {"euclidean", "cosine", "manhattan"}, default "euclidean"
        The distance (``gpusom.SOM``'s ``metric``).
    nan_policy : {"raise", "ignore"}, default "raise"
        NaN in ``data`` is an error, or a missing value (``gpusom.SOM``'s ``nan_policy``).

    Returns
    -------
    ndarray of float64, shape (n_samples, rows, cols)
        A GPU array when an input was one.
    """
    start = timer()
    data, lattice, scaled, engine, code = _prepare(
        data, lattice, metric, normalize, nan_policy=nan_policy
    )
    exponent = _checks.as_positive_float(exponent, "exponent")
    rows, cols, dim = lattice.shape
    n = data.shape[0]
    xp = engine.xp
    # the result, the centred codebook and its squares, one block of centred samples
    block = _bmu_search.block_rows(n, rows * cols)
    engine.check_memory(
        8 * (n * rows * cols + 3 * rows * cols * dim + 2 * block * (dim + rows * cols)),
        f"activations of {n} samples on {rows}x{cols} cells",
    )
    out = distance_matrix(scaled, lattice.reshape(-1, dim), code, xp).reshape(n, rows, cols)
    xp.subtract(out.max(), out, out=out)
    top = out.max()
    if exponent != 1 and top > 0:
        # Divided by the largest first, so the power of values up to 1 cannot overflow (it did:
        # exponent 80 of distances near 1e4 gave NaN); the min-max scaling cancels the factor.
        out /= top
        xp.power(out, exponent, out=out)
    low, high = out.min(), out.max()
    if high > low:
        out -= low
        out /= high - low
    else:
        out[...] = 1.0
    _say(verbose, "Computing SOM activations", start)
    return out


def distance_matrix(data, codebook, metric, xp):
    """``(n_samples, n_cells)`` float64 ranking distances under ``metric`` (squared Euclidean,
    cosine or Manhattan), NaN features of ``data`` missing (Euclidean and Manhattan scaled by
    ``dim / present``, as ``gpusom._bmu_search``). Arrays of module ``xp``."""
    missing = xp.isnan(data)
    if metric == EUCLIDEAN and not bool(missing.any()):
        return squared_distances(data, codebook, xp)
    n, dim = data.shape
    present = (~missing).astype(np.float64)
    filled = xp.where(missing, 0.0, data).astype(np.float64)
    cb = codebook.astype(np.float64)
    out = xp.zeros((n, codebook.shape[0]))
    if metric == COSINE:
        norms = xp.sqrt(present @ (cb * cb).T) * xp.sqrt((filled * filled).sum(axis=1))[:, None]
        cosine = (filled @ cb.T) / xp.where(norms > 0, norms, xp.inf)
        return xp.clip(1.0 - cosine, 0.0, 2.0)
    for k in range(dim):
        diff = filled[:, k, None] - cb[None, :, k]
        diff = diff * diff if metric == EUCLIDEAN else xp.abs(diff)
        out += diff * present[:, k, None]
    out *= (dim / present.sum(axis=1))[:, None]
    return out


def squared_distances(data, codebook, xp):
    """``(n_samples, n_cells)`` float64 squared Euclidean distances, one block at a time.

    Uses the expansion ``|x|^2 - 2 x.w + |w|^2`` on centred inputs (the BLAS product), clipped at
    zero; accurate to rounding relative to the data's spread. Arrays of module ``xp`` (numpy,
    or cupy) in and out.
    """
    centre = codebook.mean(axis=0, dtype=np.float64)
    centred_cb = codebook - centre
    cb_sq = xp.einsum("ij,ij->i", centred_cb, centred_cb)
    out = xp.empty((data.shape[0], codebook.shape[0]))
    block = _bmu_search.block_rows(data.shape[0], codebook.shape[0])
    for first in range(0, data.shape[0], block):
        chunk = data[first : first + block] - centre
        part = out[first : first + block]
        xp.matmul(chunk, centred_cb.T, out=part)
        part *= -2.0
        part += cb_sq
        part += xp.einsum("ij,ij->i", chunk, chunk)[:, None]
        xp.maximum(part, 0.0, out=part)
    return out


def u_matrix(lattice, is_torus=False, *, topology="rectangular", metric="euclidean"):
    """Mean distance of every cell to its lattice neighbours (Ultsch's U-matrix).

    Neighbours are the up to 8 surrounding cells of the rectangular lattice or the up to 6 of
    the hexagonal one; on a torus the lattice wraps, and a cell that is reached through several
    offsets (maps narrower than 3 cells) counts once.

    Parameters
    ----------
    lattice : array_like of shape (rows, cols, dim)
    is_torus : bool, default False
    topology : {"rectangular", "hexagonal"}, default "rectangular"
    metric : {"euclidean", "cosine", "manhattan"}, default "euclidean"
        The distance between neighbouring cells (the map's ``metric``).

    Returns
    -------
    ndarray of float64, shape (rows, cols)
        0 for a lattice of a single cell.
    """
    lattice = _checks.as_lattice(lattice)
    is_torus, topology = _lattice_kind(lattice.shape[0], is_torus, topology)
    code = TOPOLOGIES[topology]
    metric_code = _metric(metric)
    lattice = np.ascontiguousarray(lattice, dtype=np.float64)
    _checks.check_in_range(
        lattice.reshape(-1, lattice.shape[-1]),
        np.float64,
        "lattice",
        metric,
        remedy="train with normalize=True, or scale the lattice down",
        tiny=False,
    )
    return _u_matrix(lattice, is_torus, code, NEIGHBOUR_QUADRANCE[code], metric_code)


@njit(cache=True)
def _u_matrix(lattice, is_torus, topology, neighbour_quadrance, metric):
    rows, cols, dim = lattice.shape
    vectors = lattice.reshape(rows * cols, dim)
    out = np.zeros((rows, cols))
    seen = np.empty(9, np.int64)
    for r in range(rows):
        for c in range(cols):
            total = 0.0
            count = 0
            for dr in range(-1, 2):
                for dc in range(-1, 2):
                    rr, cc = r + dr, c + dc
                    if is_torus:
                        rr, cc = rr % rows, cc % cols
                    elif rr < 0 or rr >= rows or cc < 0 or cc >= cols:
                        continue
                    flat = rr * cols + cc
                    if flat == r * cols + c or flat in seen[:count]:
                        continue
                    q = quadrance(rr, cc, r, c, rows, cols, is_torus, topology)
                    if q > neighbour_quadrance:
                        continue
                    seen[count] = flat
                    count += 1
                    d = exact_distance(vectors, r * cols + c, vectors, flat, metric)
                    total += np.sqrt(d) if metric == EUCLIDEAN else d
            if count:
                out[r, c] = total / count
    return out
