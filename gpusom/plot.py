"""matplotlib pictures of a lattice."""

from . import _checks


def plot_u_matrix(um, fig_size=(4, 4), colormap="viridis_r"):
    """Draw a U-matrix as an image with a colour bar.

    Parameters
    ----------
    um : array_like of shape (rows, cols)
        Output of :func:`gpusom.u_matrix`.
    fig_size : tuple of float, default (4, 4)
        Figure size in inches.
    colormap : str, default "viridis_r"
        Any matplotlib colormap name; dark (with the default) means far from the neighbours.

    Returns
    -------
    matplotlib.figure.Figure
        The figure (made with pyplot, so it shows where matplotlib is interactive, e.g. in a
        notebook; call ``plt.show()`` in a script or ``fig.savefig(...)`` to keep it).
    """
    import matplotlib.pyplot as plt

    um = _checks.as_float_array(um, "um", 2)
    fig, ax = plt.subplots(figsize=fig_size)
    image = ax.imshow(um, interpolation="nearest", cmap=colormap)
    ax.set_title("U-matrix")
    ax.set_xlabel("column")
    ax.set_ylabel("row")
    fig.colorbar(
        image,
        ax=ax,
        fraction=0.046 * min(1.0, um.shape[0] / max(um.shape[1], 1)),
        pad=0.04,
        label="mean distance to neighbours",
    )
    return fig
