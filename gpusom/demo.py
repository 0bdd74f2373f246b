"""The original walk-through: a colour map of 200 random RGB vectors, and its pictures.

Used by ``gpusom demo --out DIR`` and ``examples/colors.py``. It writes ``lattice.png`` (the
codebook as colours), ``u_matrix.png``, ``projection.png`` (eight named colours on the map) and
``activations.png`` (how blue lights the map, plain and with exponent 8).
"""

import os

import numpy as np

from .analysis import (
    lattice_activations,
    lattice_closest_vectors,
    project_on_lattice,
    quantization_error,
    topographic_error,
    u_matrix,
)
from .plot import plot_lattice, plot_u_matrix
from .som import SOM

COLORS = np.array(
    [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [0, 1, 1], [1, 0, 1], [0, 0, 0], [1, 1, 1]],
    dtype=float,
)
COLOR_LABELS = ["red", "green", "blue", "yellow", "cyan", "purple", "black", "white"]


def run(out_dir, seed=0, is_torus=False, iterations=15000, *, verbose=True):
    """Train the walk-through's 50x100 colour map and write its pictures to ``out_dir``.

    Parameters
    ----------
    out_dir : str or os.PathLike
        Created when missing.
    seed : int, default 0
        Seed of the colours and of the training.
    is_torus : bool, default False
    iterations : int, default 15000
    verbose : bool, default True
        Print the timing lines, the map's errors and where each named colour landed.

    Returns
    -------
    ndarray of shape (50, 100, 3)
        The trained lattice.
    """
    import matplotlib.pyplot as plt

    os.makedirs(out_dir, exist_ok=True)
    data = np.random.default_rng(seed).random([200, 3])
    som = SOM(som_size=(50, 100), is_torus=is_torus, seed=seed, verbose=verbose)
    lattice = som.train(data, num_iterations=iterations)

    def say(*message):
        if verbose:
            print(*message)

    say(f"backend: {som.backend_}, lattice shape: {lattice.shape}")
    say(
        f"quantization error: {quantization_error(data, lattice):.4f}, "
        f"topographic error: {topographic_error(data, lattice, is_torus):.4f}"
    )

    plot_lattice(lattice, save_to=os.path.join(out_dir, "lattice.png"))
    um = u_matrix(lattice, is_torus=is_torus)
    plot_u_matrix(um, fig_size=(6.2, 6.2), save_to=os.path.join(out_dir, "u_matrix.png"))

    projection = project_on_lattice(COLORS, lattice, COLOR_LABELS, verbose=verbose)
    for cell, labels in projection.items():
        if labels:
            say(cell, labels[0])
    closest = lattice_closest_vectors(COLORS, lattice, verbose=verbose)
    values = np.array(list(closest.values())).reshape(50, 100, -1)
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.imshow(values)
    for (row, col), labels in projection.items():
        for label in labels:
            ax.annotate(label, (col, row), ha="center", va="center", bbox={"fc": "white"})
    ax.set_title("closest named colour of every cell")
    fig.savefig(os.path.join(out_dir, "projection.png"), dpi=100)

    fig, axes = plt.subplots(1, 2, figsize=(10, 3))
    for ax, exponent in zip(axes, (1, 8), strict=True):
        activations = lattice_activations(COLORS, lattice, exponent=exponent, verbose=verbose)
        ax.imshow(activations[COLOR_LABELS.index("blue")])
        ax.set_title(f"activations of blue, exponent={exponent}")
    fig.savefig(os.path.join(out_dir, "activations.png"), dpi=100)
    plt.close("all")
    say(f"pictures written to {out_dir}")
    return lattice
