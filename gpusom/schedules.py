"""Host-side pieces of the training contract that every engine shares: the settings with their
defaults, the initial codebook, the sample order and the decay schedules.

Every engine receives the same sample order and the same per-step sigma and learning rate, so
their results differ only by floating-point rounding.
"""

import numpy as np

from . import _checks
from ._math import METRICS, NAN_POLICIES, NEIGHBORHOODS, TOPOLOGIES

INITS = {"random": 0, "sample": 1, "pca": 2}
DTYPES = {"float32": np.float32, "float64": np.float64}
DECAYS = ("exponential", "linear", "inverse", "power")
ALGORITHMS = {"online": 0, "batch": 1}
#: What an online run does after its last step (``SOM``'s ``finish``): nothing, or the closing
#: batch step (``gpusom._training.closing_step``).
FINISHES = {"none": 0, "batch": 1}

#: Epochs of ``SOM.fit`` with ``algorithm="batch"`` when ``num_iterations`` is not given.
DEFAULT_EPOCHS = 20

#: The online defaults' final radius and rate, chosen with the closing batch step (``finish``'s
#: default "batch") on the quality panel and the benchmark workloads (benchmarks/RESULTS.md,
#: "The closing step as the default"): the one region of settings found that meets every bar of
#: both, by small margins. Batch training keeps a final radius of 1.
ONLINE_SIGMA_END = 0.86
LEARNING_RATE_END = 0.0045


def settings(params, n_samples):
    """Validated run settings from a SOM's parameters, the documented defaults filled in.

    ``params`` maps the constructor's parameter names to values; the result holds option names
    (not codes), so it is readable in a model file.

    The defaults (online: ``sigma_end = 0.86``, ``learning_rate_end = 0.0045`` and the closing
    batch step; batch: ``sigma_end = 1``; the radius on the "inverse" decay) were chosen on a
    panel of six data sets against five peer libraries, scoring order and fit together
    (benchmarks/RESULTS.md, "Map quality panel" and "The closing step as the default"): a final
    radius near one cell, a small final rate and the closing step's pseudo-count keep
    neighbouring cells apart, where the earlier defaults (a final radius of 0.55 cells and a
    rate of 0.02, or 0.3 and 0.2 with fewer samples than cells) let cells settle onto single
    samples in flat tiles: a lower quantization error, a worse map.
    """
    rows, cols = _checks.as_som_size(params["som_size"])
    is_torus = _checks.as_bool(params["is_torus"], "is_torus")
    options = (
        ("topology", TOPOLOGIES),
        ("neighborhood", NEIGHBORHOODS),
        ("init", INITS),
        ("algorithm", ALGORITHMS),
        ("finish", FINISHES),
        ("metric", METRICS),
        ("nan_policy", NAN_POLICIES),
    )
    for name, choices in (*options, ("dtype", DTYPES)):
        _checks.as_choice(params[name], name, choices)
    _checks.check_lattice_shape(rows, is_torus, params["topology"])

    def positive(name, default):
        value = params[name]
        return default if value is None else _checks.as_positive_float(value, name)

    def rate(name, default):
        # above 1 a step moves a cell past the sample (above 2 further from it): no fit
        value = positive(name, default)
        if value > 1:
            raise ValueError(f"{name} must be at most 1, got {value}")
        return value

    sigma = positive("sigma", max(rows, cols) / 4.0)
    final_radius = ONLINE_SIGMA_END if params["algorithm"] == "online" else 1.0
    return {
        "rows": rows,
        "cols": cols,
        "is_torus": is_torus,
        "topology": params["topology"],
        "sigma": sigma,
        "sigma_end": positive("sigma_end", min(final_radius, sigma)),
        "learning_rate": rate("learning_rate", 0.5),
        "learning_rate_end": rate("learning_rate_end", LEARNING_RATE_END),
        "neighborhood": params["neighborhood"],
        "sigma_decay": _as_decay(params["sigma_decay"], "sigma_decay"),
        "learning_rate_decay": _as_decay(params["learning_rate_decay"], "learning_rate_decay"),
        "truncate": _checks.as_positive_float(params["truncate"], "truncate"),
        "init": params["init"],
        "dtype": params["dtype"],
        "metric": params["metric"],
        "nan_policy": params["nan_policy"],
        "algorithm": params["algorithm"],
        "finish": params["finish"],
    }


def default_num_iterations(n_samples, n_cells):
    """Steps of ``SOM.fit`` when ``num_iterations`` is not given (see ``SOM``'s docstring)."""
    return max(10 * n_samples, min(500 * n_cells, 75 * n_samples))


def _as_decay(value, name):
    if callable(value):
        return value
    if not isinstance(value, str) or value not in DECAYS:
        valid = ", ".join(repr(d) for d in DECAYS)
        raise ValueError(f"{name} must be one of {valid} or a callable f(t, T); got {value!r}")
    return value


#: The smallest radius the engines are given: its square is the smallest normal float64, so
#: ``1 / (2 sigma^2)`` stays finite (a smaller one gave a ZeroDivisionError or a NaN weight at
#: the best unit). Every neighbourhood gives every other cell a weight of exactly 0 at this
#: radius, as at any radius under 0.026 cells (there ``exp(-1 / (2 sigma^2))`` underflows), so
#: raising a smaller radius to it changes no result.
MIN_SIGMA = float(np.sqrt(np.finfo(np.float64).tiny))


def schedule(decay, start, end, steps, total, name, positive):
    """The values at ``steps`` of a ``total``-step run of decay ``decay`` (a name of
    :data:`DECAYS` or a callable ``f(t, T)``), float64; see ``SOM``'s ``sigma_decay``.

    A callable's values are checked: finite, and positive (``positive``, a radius) or in [0, 1]
    (a rate), else a ``ValueError`` names ``name`` and the step. A radius is at least
    :data:`MIN_SIGMA`.
    """
    values = _schedule(decay, start, end, np.asarray(steps, dtype=np.int64), total, name, positive)
    return np.maximum(values, MIN_SIGMA) if positive else values


def _schedule(decay, start, end, steps, total, name, positive):
    if callable(decay):
        values = _call_per_step(decay, steps, total, name)
        bad = ~np.isfinite(values) | ((values <= 0) if positive else ((values < 0) | (values > 1)))
        if bad.any():
            first = int(np.argmax(bad))
            kind = "positive values" if positive else "values in [0, 1]"
            raise ValueError(
                f"{name} returned {float(values[first])!r} at step {int(steps[first])}: it must "
                f"give finite {kind}"
            )
        return values
    f = steps / max(total - 1, 1)
    if decay == "linear":
        return start + (end - start) * f
    if decay == "inverse":
        return start / (1.0 + f * (start / end - 1.0))
    if decay == "power":
        k = np.log(start / end) / np.log(max(total, 2))
        return start * (1.0 + steps) ** -k
    return exponential_decay(start, end, steps, total)


def _call_per_step(decay, steps, total, name):
    """``decay(steps, total)`` as a float64 array of ``steps``' shape, one call per step where
    the function does not take arrays."""
    try:
        values = np.asarray(decay(steps, total))
    except (TypeError, ValueError):
        values = None  # a scalar function: one call per step below
    try:
        if values is None or values.shape != steps.shape:
            values = np.array([decay(int(t), total) for t in steps])
        if values.dtype.kind == "c":  # the cast would drop the imaginary part with a warning
            raise TypeError(f"got {values.dtype} values")
        return values.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must map (t, T) to a real number: {exc}") from None


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


def initial_codebook(data, n_cells, cols, init, rng):
    """The ``(n_cells, dim)`` float64 starting codebook for init code ``init``.

    Missing (NaN) values of ``data`` count as their feature's mean here; a feature with no
    present value is a ``ValueError``.
    """
    dim = data.shape[1]
    missing = np.isnan(data)
    if missing.any():
        absent = np.flatnonzero(missing.all(axis=0))
        if absent.size:
            raise ValueError(
                f"{absent.size} feature(s) of the training data have no present value (all "
                f"NaN), first feature {int(absent[0])}: a map cannot learn them; drop them"
            )
        data = np.where(missing, np.nanmean(data, axis=0, dtype=np.float64), data)
    if init == INITS["sample"]:
        return data[rng.integers(0, data.shape[0], size=n_cells)].astype(np.float64, copy=False)
    if init == INITS["pca"]:
        return _pca_grid(data.astype(np.float64), n_cells // cols, cols)
    low = data.min(axis=0).astype(np.float64)
    high = data.max(axis=0).astype(np.float64)
    # low + (high - low) * u, in place: one codebook-sized array at a time
    codebook = rng.random((n_cells, dim))
    codebook *= high - low
    codebook += low
    return codebook


def _pca_grid(data, rows, cols):
    """A grid spanning +-2 standard deviations along the first two principal components.

    The longer lattice axis follows the first component.
    """
    mean = data.mean(axis=0)
    centred = data - mean
    _, singular, components = np.linalg.svd(centred, full_matrices=False)
    std = singular / np.sqrt(max(data.shape[0] - 1, 1))
    axes = np.zeros((2, data.shape[1]))
    for i in range(min(2, components.shape[0])):
        axes[i] = 2.0 * std[i] * components[i]
    # A constant feature must stay exactly constant: the SVD's rounding noise there would only
    # decay towards the data during training, through float32 subnormals that are slow on CPUs.
    axes[:, np.ptp(data, axis=0) == 0] = 0.0
    major, minor = (axes[0], axes[1]) if rows >= cols else (axes[1], axes[0])
    r = np.linspace(-1.0, 1.0, rows) if rows > 1 else np.zeros(1)
    c = np.linspace(-1.0, 1.0, cols) if cols > 1 else np.zeros(1)
    grid = mean + r[:, None, None] * major + c[None, :, None] * minor
    return grid.reshape(rows * cols, -1)
