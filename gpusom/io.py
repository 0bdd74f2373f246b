"""Saving and loading lattices as ``.npy`` files."""

import os
import tempfile

import numpy as np

from . import _checks


def _npy_path(filename):
    path = os.fspath(filename)
    return path if path.endswith(".npy") else path + ".npy"


def save_lattice(lattice, filename, *, verbose=True):
    """Save a lattice to ``filename`` (``.npy`` is appended when missing, as numpy does).

    The file is written to a temporary name beside the target and renamed into place, so an
    interrupted save never leaves a half-written lattice.

    Parameters
    ----------
    lattice : array_like of shape (rows, cols, dim)
    filename : str or os.PathLike
    verbose : bool, default True
        Print where the lattice went.

    Returns
    -------
    str
        The path written.
    """
    lattice = _checks.as_lattice(lattice)
    path = _npy_path(filename)
    directory = os.path.dirname(os.path.abspath(path))
    handle, temp_path = tempfile.mkstemp(dir=directory, prefix=".gpusom-", suffix=".npy.tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            np.save(stream, lattice, allow_pickle=False)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp_path, path)
    except BaseException:
        os.unlink(temp_path)
        raise
    if verbose:
        print(f"SOM lattice saved at {path}")
    return path


def load_lattice(filename, *, verbose=True):
    """Load a lattice saved by :func:`save_lattice`.

    Parameters
    ----------
    filename : str or os.PathLike
        The path, with or without the ``.npy`` suffix.
    verbose : bool, default True
        Print where the lattice came from.

    Returns
    -------
    ndarray of shape (rows, cols, dim)
    """
    path = os.fspath(filename)
    if not os.path.exists(path) and os.path.exists(_npy_path(path)):
        path = _npy_path(path)
    try:
        lattice = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise
    except (ValueError, OSError, EOFError) as exc:
        raise ValueError(f"{path} is not a readable lattice file: {exc}") from None
    if not isinstance(lattice, np.ndarray):
        raise ValueError(f"{path} holds several arrays, not one lattice")
    lattice = _checks.as_lattice(lattice, f"the lattice in {path}")
    if verbose:
        print(f"SOM lattice loaded from {path}")
    return lattice
