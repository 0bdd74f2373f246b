"""Saving and loading lattices (``.npy``) and model files (``.npz`` with a JSON header)."""

import json
import os
import secrets
import stat
import zipfile
import zlib
from io import BytesIO

import numpy as np

from . import _checks

#: The model file's format name and the one version this gpusom reads and writes.
MODEL_FORMAT = "gpusom-model"
MODEL_VERSION = 1

#: The first bytes of a zip archive such as ``.npz``.
_ZIP_MAGIC = b"PK\x03\x04"


def _npy_path(filename):
    path = os.fspath(filename)
    return path if path.endswith(".npy") else path + ".npy"


def _named(path):
    """``path`` as a string; a ``ValueError`` when it is empty."""
    path = os.fspath(path)
    if not path:
        raise ValueError("the file name is empty; give a path to write")
    return path


def check_writable(path):
    """The directory of ``path``; raises unless that directory exists and ``path`` is not one."""
    path = _named(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"cannot write {path}: there is no directory {directory}")
    if os.path.isdir(path):
        raise IsADirectoryError(f"cannot write {path}: it is a directory, give a file name")
    return directory


def _atomic_write(path, write):
    """Call ``write(stream)`` on a temporary file beside ``path``, then rename it into place.

    The rename is atomic, so ``path`` holds either its old content or the complete new file; on
    any failure (including KeyboardInterrupt) the temporary file is removed. A symbolic link is
    followed (its target gets the new file, the link stays), and the file keeps the mode of the
    one it replaces, or gets the umask's default as ``open`` would give it. A path that is not a
    regular file (``/dev/stdout``, a pipe) is written in place: it cannot be renamed over.
    """
    check_writable(path)
    if os.path.exists(path) and not os.path.isfile(path):
        # Built in memory first: the zip writer seeks, which a device or pipe cannot
        buffer = BytesIO()
        write(buffer)
        with open(path, "wb") as stream:
            stream.write(buffer.getbuffer())
        return
    target = os.path.realpath(path)
    directory = os.path.dirname(target)
    while True:
        temp_path = os.path.join(directory, f".gpusom-{secrets.token_hex(8)}.tmp")
        try:
            # 0o666 less the umask, as open() creates files (mkstemp would make it private)
            handle = os.open(temp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        if os.path.exists(target):  # os.chmod, not fchmod: Windows has only the former
            os.chmod(temp_path, stat.S_IMODE(os.stat(target).st_mode))
        os.replace(temp_path, target)
    except BaseException:
        os.unlink(temp_path)
        raise


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
    path = _npy_path(_named(filename))  # checked before the suffix: "" would become ".npy"
    _atomic_write(path, lambda stream: np.save(stream, lattice, allow_pickle=False))
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
    # A file by the given name first; else the name with .npy, as save_lattice wrote it (also
    # when the name itself is a directory)
    if not os.path.isfile(path) and os.path.exists(_npy_path(path)):
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


def _json_value(value):
    """JSON for the numpy values a header may hold; a seed with a state (a Generator,
    SeedSequence or BitGenerator) is not stored (None): the run's own state is."""
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    if isinstance(value, np.random.Generator | np.random.SeedSequence | np.random.BitGenerator):
        return None
    raise TypeError(f"cannot store {type(value).__name__} {value!r} in a model file")


def write_model(path, header, arrays):
    """Write a model file: ``header`` (a dict) as JSON beside the named ``arrays``, atomically.

    The header carries ``MODEL_FORMAT`` and ``MODEL_VERSION``; see ``SOM.save`` for its content.
    """
    path = os.fspath(path)
    # Serialised first, so a header that cannot be written fails before any file is touched.
    text = json.dumps(
        {"format": MODEL_FORMAT, "version": MODEL_VERSION, **header}, default=_json_value
    )
    _atomic_write(path, lambda stream: np.savez(stream, header=np.array(text), **arrays))
    return path


def read_model(path):
    """The ``(header, arrays)`` of a model file written by :func:`write_model`.

    Raises ``ValueError`` for a file that is not a gpusom model, is truncated or damaged, or has
    another format version; ``FileNotFoundError`` when there is no such file.
    """
    path = os.fspath(path)
    with open(path, "rb") as stream:
        magic = stream.read(len(_ZIP_MAGIC))
    if magic != _ZIP_MAGIC:
        raise ValueError(f"{path} is not a gpusom model file (not an .npz archive)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            if "header" not in archive.files:
                raise ValueError("it has no gpusom header")
            header = json.loads(str(archive["header"][()]))
            arrays = {name: archive[name] for name in archive.files if name != "header"}
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
        raise ValueError(f"{path} is not a readable gpusom model file: {exc}") from None
    if not isinstance(header, dict) or header.get("format") != MODEL_FORMAT:
        raise ValueError(f"{path} is not a gpusom model file (no {MODEL_FORMAT!r} header)")
    if header.get("version") != MODEL_VERSION:
        raise ValueError(
            f"{path} is a gpusom model of format version {header.get('version')!r}; this gpusom "
            f"reads version {MODEL_VERSION} only"
        )
    return header, arrays
