"""The original walk-through: a colour map of 200 random RGB vectors, and its pictures.

Used by ``gpusom demo --out DIR`` and ``examples/colors.py``. It writes ``lattice.png`` (the
codebook as colours), ``u_matrix.png``, ``projection.png`` (eight named colours where they land
on the map) and ``activations.png`` (how blue lights the map, plain and with exponent 8, with
colour bars).
"""

import os

import numpy as np

from . import _checks
from .analysis import (
    lattice_closest_vectors,
    project_on_lattice,
    quantization_error,
    topographic_error,
    u_matrix,
)
from .plot import plot_activations, plot_lattice, plot_u_matrix
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
    data = _checks.as_generator(seed).random([200, 3])
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

    figures = []  # closed at the end: the caller's own figures stay open
    try:
        figures.append(plot_lattice(lattice, save_to=os.path.join(out_dir, "lattice.png")))
        um = u_matrix(lattice, is_torus=is_torus)
        path = os.path.join(out_dir, "u_matrix.png")
        figures.append(plot_u_matrix(um, fig_size=(6.2, 6.2), save_to=path))

        projection = project_on_lattice(COLORS, lattice, COLOR_LABELS, verbose=verbose)
        for cell, labels in projection.items():
            if labels:
                say(cell, labels[0])
        closest = lattice_closest_vectors(COLORS, lattice, verbose=verbose)
        figures.append(projection_figure(projection, closest, lattice.shape[:2]))
        figures[-1].savefig(os.path.join(out_dir, "projection.png"), bbox_inches="tight")

        figures.append(activations_figure(lattice, "blue"))
        figures[-1].savefig(os.path.join(out_dir, "activations.png"), bbox_inches="tight")
    finally:
        for fig in figures:
            plt.close(fig)
    say(f"pictures written to {out_dir}")
    return lattice


def projection_figure(projection, closest, shape):
    """The closest named colour of every cell, with each name written where its colour lands.

    Parameters
    ----------
    projection : dict
        :func:`gpusom.project_on_lattice` of the named colours, with their names as labels.
    closest : dict
        :func:`gpusom.lattice_closest_vectors` of the named colours, without labels.
    shape : tuple of int
        ``(rows, cols)`` of the lattice.

    Returns
    -------
    matplotlib.figure.Figure
        One axes: the image, a ring on each cell a colour lands on and its name, inside the axes.
    """
    from matplotlib.patheffects import withStroke

    values = np.array(list(closest.values())).reshape(*shape, -1)
    # Each named colour is the closest one of the cell it lands on, so every corner of the colour
    # cube appears and plot_lattice's per-channel scaling leaves the colours as they are.
    fig = plot_lattice(values)
    ax = fig.axes[0]
    ax.set_title("closest named colour of every cell")
    names = []
    for (row, col), labels in projection.items():
        if labels:
            # A ring on the cell (drawn whole, also on an edge cell) and the name next to it, on
            # the side with more room: above in the lower half of the map, below in the upper.
            ring = ax.plot(col, row, "o", ms=5, mfc="none", mec="black", mew=1.2, clip_on=False)
            ring[0].set_path_effects([withStroke(linewidth=3, foreground="white")])  # on black
            above = row >= shape[0] / 2
            name = ax.annotate(
                ", ".join(labels),
                (col, row),
                xytext=(0, 9 if above else -9),
                textcoords="offset points",
                ha="center",
                va="bottom" if above else "top",
                fontsize="small",
                bbox={"boxstyle": "round,pad=0.25", "fc": "white", "ec": "0.3", "alpha": 0.9},
                arrowprops={"arrowstyle": "-", "color": "0.3", "shrinkA": 0, "shrinkB": 3},
            )
            names.append(name)
    _keep_inside(ax, names)
    return fig


def _keep_inside(ax, annotations):
    """Shift each annotation's text (with its box) into the axes where it would cross an edge.

    Unshifted, the name of an edge cell would run into the title, the tick labels or past the
    figure's edge. The shift is measured on the laid-out figure and given in points, so it holds
    at any resolution.
    """
    fig = ax.figure
    fig.draw_without_rendering()
    inner = ax.get_window_extent()
    to_points = 72.0 / fig.dpi
    for annotation in annotations:
        box = annotation.get_bbox_patch().get_window_extent()
        dx = max(inner.x0 - box.x0, 0.0) + min(inner.x1 - box.x1, 0.0)
        dy = max(inner.y0 - box.y0, 0.0) + min(inner.y1 - box.y1, 0.0)
        x, y = annotation.xyann
        annotation.xyann = (x + dx * to_points, y + dy * to_points)


def activations_figure(lattice, name):
    """How strongly a named colour activates each cell, plain and with exponent 8, side by side.

    Parameters
    ----------
    lattice : ndarray of shape (rows, cols, 3)
    name : str
        One of :data:`COLOR_LABELS`.

    Returns
    -------
    matplotlib.figure.Figure
        Two image axes, each with its colour bar (activations in [0, 1]).
    """
    import matplotlib.pyplot as plt

    color = COLORS[COLOR_LABELS.index(name)]
    rows, cols = lattice.shape[:2]
    # Two panels 5 inches wide, each with its colour bar; the height follows the map's shape.
    height = min(max(5.0 * rows / cols, 1.5), 10.0) + 0.9
    fig, axes = plt.subplots(1, 2, figsize=(12.4, height), layout="constrained")
    for ax, exponent in zip(axes, (1, 8), strict=True):
        title = f"activations of {name}, exponent {exponent}"
        plot_activations(color, lattice, exponent, title=title, ax=ax)
    return fig
