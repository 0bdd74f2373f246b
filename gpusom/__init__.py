"""gpusom: fast online Self-Organizing Maps on the CPU (numba) and on NVIDIA GPUs (numba.cuda).

>>> from gpusom import *
"""

from importlib.metadata import PackageNotFoundError, version

from ._errors import BackendUnavailableError as BackendUnavailableError
from ._errors import GPUFallbackWarning as GPUFallbackWarning
from ._errors import NotFittedError as NotFittedError
from .analysis import (
    find_bmus,
    lattice_activations,
    lattice_closest_vectors,
    project_on_lattice,
    quantization_error,
    topographic_error,
    u_matrix,
)
from .io import load_lattice, save_lattice
from .plot import (
    plot_activations,
    plot_component_planes,
    plot_hit_map,
    plot_labels_map,
    plot_lattice,
    plot_u_matrix,
)
from .som import SOM

try:
    __version__ = version("gpusom")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

# The error and warning types are importable from here (gpusom.GPUFallbackWarning, ...) but stay
# out of the star import, which gives the walk-through's names and the analysis functions.
__all__ = [
    "SOM",
    "find_bmus",
    "lattice_activations",
    "lattice_closest_vectors",
    "load_lattice",
    "plot_activations",
    "plot_component_planes",
    "plot_hit_map",
    "plot_labels_map",
    "plot_lattice",
    "plot_u_matrix",
    "project_on_lattice",
    "quantization_error",
    "save_lattice",
    "topographic_error",
    "u_matrix",
]
