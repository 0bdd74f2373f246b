"""The SOM model file: what ``SOM.save`` writes and ``SOM.load`` restores.

The file itself (an ``.npz`` archive with a versioned JSON header, written atomically) is
``gpusom.io``'s; this module decides what goes in it and checks what comes out.
"""

import numpy as np

from . import _checks, schedules
from .schedules import DTYPES


def model_contents(som):
    """``(header, arrays)`` of a trained SOM, for ``io.write_model``."""
    params = som.get_params()
    functions = [name for name, value in sorted(params.items()) if callable(value)]
    if functions:
        raise TypeError(
            f"{', '.join(functions)} is a function, which a model file cannot hold (a function "
            "is not data); save a map trained with a named decay, or the lattice (save_lattice)"
        )
    names = getattr(som, "feature_names_in_", None)
    header = {
        "params": params,
        "settings": som.settings_,
        "n_features_in": som.n_features_in_,
        "feature_names_in": None if names is None else [str(name) for name in names],
        "backend": som.backend_,
        "position": {"steps_done": som.steps_done_, "num_iterations": som.num_iterations_},
        "sample_order_state": som._rng.bit_generator.state,
    }
    arrays = {"lattice": som.lattice_}
    if som.data_min_ is not None:
        arrays.update(data_min=som.data_min_, data_range=som.data_range_)
    return header, arrays


def restore(cls, header, arrays):
    """A ``cls`` instance with the state of a model file's ``header`` and ``arrays``.

    Raises ``ValueError`` (or ``KeyError``/``TypeError`` for missing or mistyped entries) for
    anything that is not a consistent gpusom model.
    """
    params = dict(header["params"])
    params["som_size"] = tuple(params["som_size"])
    som = cls(**params)
    settings = _checked_settings(header["settings"])
    lattice = _checks.as_lattice(arrays["lattice"], "the lattice")
    if lattice.shape[:2] != (settings["rows"], settings["cols"]) or lattice.dtype != np.dtype(
        DTYPES[settings["dtype"]]
    ):
        raise ValueError(f"the lattice {lattice.shape} {lattice.dtype} contradicts the settings")
    position = header["position"]
    steps_done, total = int(position["steps_done"]), int(position["num_iterations"])
    if not 0 <= steps_done <= total:
        raise ValueError(f"position {steps_done} of {total} steps is impossible")
    dim = lattice.shape[2]
    data_min, data_range = arrays.get("data_min"), arrays.get("data_range")
    if data_min is not None:
        if (data_min.shape, data_range.shape) != ((dim,), (dim,)):
            raise ValueError("the normalisation does not match the lattice's features")
        if (
            not (np.isfinite(data_min).all() and np.isfinite(data_range).all())
            or (data_range < 0).any()
        ):
            raise ValueError("the normalisation holds a non-finite minimum or a negative range")
    names = header["feature_names_in"]
    if names is not None and len(names) != dim:
        raise ValueError(f"{len(names)} feature names for a lattice of {dim} features")
    som._set_trained(
        lattice=lattice,
        backend=str(header["backend"]),
        settings=settings,
        names=None if names is None else np.asarray(names, dtype=object),
        scaling=(data_min, data_range),
        position=(steps_done, total),
        rng=_generator(header["sample_order_state"]),
    )
    return som


#: Settings that model files written before the option existed do not hold, with the value
#: those runs had.
LEGACY_SETTINGS = {
    "topology": "rectangular",
    "algorithm": "online",
    "metric": "euclidean",
    "nan_policy": "raise",
    "sigma_decay": "exponential",
    "learning_rate_decay": "exponential",
    "finish": "none",
}


def _checked_settings(settings):
    """A model file's run settings, :data:`LEGACY_SETTINGS` filled in where missing, checked as
    the constructor's parameters are when a run starts (``schedules.settings``): a missing,
    unknown or out-of-range setting is an error."""
    settings = {**LEGACY_SETTINGS, **settings}
    try:
        params = {**settings, "som_size": (settings["rows"], settings["cols"])}
        checked = schedules.settings(params, 0)
    except KeyError as exc:
        raise ValueError(f"the setting {exc.args[0]} is missing") from None
    except (TypeError, ValueError) as exc:
        raise ValueError(f"its settings: {exc}") from None
    if checked != settings:
        wrong = sorted(key for key in settings.keys() | checked.keys() if
                       settings.get(key) != checked.get(key))  # fmt: skip
        raise ValueError(f"the settings {', '.join(wrong)} are not a run's settings")
    return settings


def _generator(state):
    """A numpy Generator in the stored ``bit_generator.state``."""
    bit_generator = getattr(np.random, str(state["bit_generator"]), None)
    if not (isinstance(bit_generator, type) and issubclass(bit_generator, np.random.BitGenerator)):
        raise ValueError(f"unknown bit generator {state['bit_generator']!r}")
    rng = np.random.Generator(bit_generator())
    try:
        rng.bit_generator.state = state
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"the sample order state is damaged ({exc})") from None
    return rng
