"""matplotlib pictures of a lattice and of data on it.

Every function returns the matplotlib Figure (made with pyplot, so it shows where matplotlib is
interactive, e.g. in a notebook; call ``plt.show()`` in a script) and saves it when given
``save_to=`` a path. matplotlib is imported when a picture is drawn, not when gpusom is imported.

Each takes ``topology=``: "rectangular" draws the lattice as an image (``ax.images``), "hexagonal"
as one hexagon per cell, a matplotlib ``PolyCollection`` (``ax.collections``) with the cells in
row-major order whose array (face colours for :func:`plot_lattice`) holds what the image would.
"""

import math
import os

import numpy as np

from . import _checks
from ._math import HEXAGONAL, RECTANGULAR, TOPOLOGIES
from .analysis import find_bmus, lattice_activations

#: Smallest font (points) used to write a label inside a labels-map cell; below it, no text.
_MIN_CELL_FONT = 5.0


def _fig_size(height, width, inches=6.0, extra_width=1.2, extra_height=0.9):
    """Inches for one lattice picture ``inches`` wide, plus room for a colour bar and a title.

    ``height`` and ``width`` are the picture's extent in cell units (a topology's ``extent``).
    """
    picture_height = min(max(inches * height / width, 1.5), 2.0 * inches)
    return (inches + extra_width, picture_height + extra_height)


class _Rectangular:
    """Square cells: cell ``(r, c)`` centred at ``x = c``, ``y = r``, drawn as one image."""

    @staticmethod
    def extent(rows, cols):
        """``(height, width)`` of the drawn lattice in cell units."""
        return rows, cols

    @staticmethod
    def centres(rows, cols):
        """``(rows * cols, 2)`` x and y of the cell centres, in row-major order."""
        row, col = np.divmod(np.arange(rows * cols), cols)
        return np.column_stack([col, row]).astype(np.float64)

    @staticmethod
    def draw(ax, image, cmap, vmin, vmax):
        """``imshow`` the ``(rows, cols)`` or ``(rows, cols, 3)`` ``image``; returns the image."""
        from matplotlib.ticker import MaxNLocator

        shown = ax.imshow(image, interpolation="nearest", cmap=cmap, vmin=vmin, vmax=vmax)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        return shown


class _Hexagonal:
    """Hexagonal cells: odd rows shift right by half a cell and rows are ``sqrt(3) / 2`` apart,
    so all six neighbours are 1 apart. Each cell is a pointy-top hexagon, one polygon each."""

    ROW_STEP = math.sqrt(3.0) / 2.0
    #: Circumradius of a hexagon of width 1: neighbouring hexagons share an edge.
    RADIUS = 1.0 / math.sqrt(3.0)
    #: Corners around the centre, pointy-top (a corner straight above and below the centre).
    CORNERS = RADIUS * np.array(
        [[math.cos(a), math.sin(a)] for a in np.radians(np.arange(30.0, 360.0, 60.0))]
    )

    @classmethod
    def extent(cls, rows, cols):
        """``(height, width)`` of the drawn lattice in cell units; shifted rows add half a cell."""
        return (rows - 1) * cls.ROW_STEP + 2.0 * cls.RADIUS, cols + 0.5 * (rows > 1)

    @classmethod
    def centres(cls, rows, cols):
        """``(rows * cols, 2)`` x and y of the cell centres, in row-major order."""
        row, col = np.divmod(np.arange(rows * cols), cols)
        return np.column_stack([col + 0.5 * (row % 2), row * cls.ROW_STEP])

    @classmethod
    def draw(cls, ax, image, cmap, vmin, vmax):
        """One hexagon per cell of the ``(rows, cols)`` values (coloured by ``cmap`` within
        ``vmin``, ``vmax``) or ``(rows, cols, 3)`` RGB ``image``; returns the collection."""
        from matplotlib.collections import PolyCollection
        from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator

        rows, cols = np.shape(image)[:2]
        polygons = cls.centres(rows, cols)[:, None, :] + cls.CORNERS
        # Edges in the face colour cover the hairline seams antialiasing leaves between faces.
        hexagons = PolyCollection(polygons, edgecolors="face", linewidths=0.5)
        if np.ndim(image) == 3:
            hexagons.set_facecolor(np.reshape(image, (rows * cols, -1)))
        else:
            hexagons.set_array(np.ravel(image))
            hexagons.set_cmap(cmap)
            hexagons.set_clim(vmin, vmax)
        ax.add_collection(hexagons, autolim=False)
        height, width = cls.extent(rows, cols)
        ax.set_xlim(-0.5, width - 0.5)
        ax.set_ylim(height - cls.RADIUS, -cls.RADIUS)  # row 0 at the top, as in an image
        ax.set_aspect("equal")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        # Row ticks sit on the rows' centres and read as row numbers.
        ax.yaxis.set_major_locator(FixedLocator(np.arange(rows) * cls.ROW_STEP, nbins=10))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{round(y / cls.ROW_STEP)}"))
        return hexagons


#: The drawing of each topology code (``gpusom._math.TOPOLOGIES``).
_DRAWINGS = {RECTANGULAR: _Rectangular, HEXAGONAL: _Hexagonal}


def _as_topology(topology):
    """The drawing class of the ``topology`` argument; a ValueError lists the valid names."""
    return _DRAWINGS[_checks.as_choice(topology, "topology", TOPOLOGIES)]


def _draw(
    fig,
    ax,
    image,
    title,
    *,
    topology,
    cmap=None,
    label=None,
    colorbar=True,
    vmin=None,
    vmax=None,
):
    """Draw one lattice-shaped ``image`` on ``ax`` in ``topology`` (a ``_DRAWINGS`` value)
    with its title and colour bar."""
    shown = topology.draw(ax, image, cmap, vmin, vmax)
    ax.set_title(title)
    if colorbar:
        height, width = topology.extent(*np.shape(image)[:2])
        fig.colorbar(shown, ax=ax, fraction=0.046 * min(1.0, height / width), pad=0.04, label=label)
    return shown


def _as_fig_size(fig_size):
    """``fig_size`` as ``(width, height)`` in inches, both positive and finite."""
    try:
        width, height = (float(inches) for inches in fig_size)
    except (TypeError, ValueError):
        raise TypeError(
            f"fig_size must be a pair of numbers (width, height) in inches; got {fig_size!r}"
        ) from None
    if not (0 < width < np.inf and 0 < height < np.inf):
        raise ValueError(f"fig_size must be positive and finite; got {fig_size!r}")
    return width, height


def _single(image, title, *, fig_size, save_to, ax=None, **draw_kwargs):
    """One lattice image with axis labels, on ``ax`` or a new figure; saved when ``save_to``
    is given. Returns the figure."""
    import matplotlib.pyplot as plt
    from matplotlib.axes import Axes

    if ax is None:
        fig, ax = plt.subplots(figsize=fig_size)
    elif isinstance(ax, Axes):
        fig = ax.figure
    else:
        raise TypeError(f"ax must be matplotlib Axes; got {type(ax).__name__}")
    _draw(fig, ax, image, title, **draw_kwargs)
    ax.set_xlabel("column")
    ax.set_ylabel("row")
    return _finish(fig, save_to)


def _finish(fig, save_to):
    if save_to is not None:
        fig.savefig(os.fspath(save_to), bbox_inches="tight")
    return fig


def _data_and_lattice(data, lattice, data_name="data", nan_policy="raise"):
    allow_nan = _checks.allows_nan(nan_policy)
    data = _checks.as_float_array(data, data_name, 2, allow_nan)
    lattice = _checks.as_lattice(lattice)
    _checks.check_same_dim(data, lattice, data_name)
    return data, lattice


def _color_limits(image):
    """``(vmin, vmax)`` of an image; a plane flat up to rounding noise gets a band around it.

    A feature that is constant in the data stays constant in the lattice only up to rounding
    (values below the smallest normal float, say); drawn with its own min and max that noise
    would look like structure.
    """
    low, high = float(image.min()), float(image.max())
    info = np.finfo(image.dtype)
    if high - low > max(8 * info.eps * max(abs(low), abs(high)), info.tiny):
        return low, high
    middle = (low + high) / 2
    half = 0.1 * max(abs(middle), 1.0)
    return middle - half, middle + half


def _unit_range(values):
    """Min-max scale each column to [0, 1]; a column that does not vary becomes 0.5."""
    low = values.min(axis=0)
    span = values.max(axis=0) - low
    return np.where(span > 0, (values - low) / np.where(span > 0, span, 1.0), 0.5)


def _lattice_colors(lattice):
    """The ``(rows, cols, 3)`` RGB image in [0, 1] that :func:`plot_lattice` draws."""
    lattice = _checks.as_lattice(lattice)
    rows, cols, dim = lattice.shape
    codebook = lattice.reshape(-1, dim).astype(np.float64)
    if dim == 1:
        rgb = np.repeat(_unit_range(codebook), 3, axis=1)
    elif dim == 2:
        rgb = np.concatenate([_unit_range(codebook), np.zeros((codebook.shape[0], 1))], axis=1)
    elif dim == 3:
        rgb = _unit_range(codebook)
    else:
        centred = codebook - codebook.mean(axis=0)
        _, _, components = np.linalg.svd(centred, full_matrices=False)
        components = components[:3]
        # Fix each component's arbitrary sign: its largest loading is positive.
        largest = components[np.arange(len(components)), np.abs(components).argmax(axis=1)]
        components = components * np.where(largest < 0, -1.0, 1.0)[:, None]
        scores = centred @ components.T
        if scores.shape[1] < 3:  # fewer cells than 3: the missing components do not vary
            scores = np.pad(scores, ((0, 0), (0, 3 - scores.shape[1])))
        rgb = _unit_range(scores)
    return rgb.reshape(rows, cols, 3)


def plot_lattice(lattice, *, topology="rectangular", save_to=None):
    """Draw the lattice as colours.

    A 3-D lattice (``dim == 3``) is drawn directly, each feature min-max scaled to [0, 1] and used
    as red, green and blue. With more features the colours are the first three principal
    components of the codebook (the ``rows * cols`` cell vectors), each scaled to [0, 1], so
    similar colours mean similar vectors. One feature is drawn as grey levels; two features as red
    and green with no blue. A channel that does not vary across the lattice is drawn at 0.5.

    Parameters
    ----------
    lattice : array_like of shape (rows, cols, dim)
    topology : {"rectangular", "hexagonal"}, default "rectangular"
        The lattice's layout: square cells, or hexagons with the odd rows shifted right by half a
        cell. Row 0 is at the top either way.
    save_to : str or path-like, optional
        Also save the figure there (the format follows the suffix, e.g. ``.png``).

    Returns
    -------
    matplotlib.figure.Figure
        One axes holding a ``(rows, cols, 3)`` RGB image.

    Examples
    --------
    >>> import numpy as np
    >>> fig = plot_lattice(np.random.default_rng(0).random((10, 20, 3)))
    >>> fig.axes[0].images[0].get_array().shape
    (10, 20, 3)
    """
    topology = _as_topology(topology)
    rgb = _lattice_colors(lattice)
    dim = np.shape(lattice)[-1]
    how = "features as RGB" if dim <= 3 else "first 3 principal components as RGB"
    return _single(
        rgb,
        f"lattice colours ({how})",
        fig_size=_fig_size(*topology.extent(*rgb.shape[:2]), extra_width=0.4),
        save_to=save_to,
        topology=topology,
        colorbar=False,
    )


def plot_u_matrix(
    um, fig_size=(4, 4), colormap="viridis_r", *, topology="rectangular", save_to=None
):
    """Draw a U-matrix as an image with a colour bar.

    Parameters
    ----------
    um : array_like of shape (rows, cols)
        Output of :func:`gpusom.u_matrix` (pass ``is_torus=True`` there for a torus).
    fig_size : tuple of float, default (4, 4)
        Figure size in inches.
    colormap : str, default "viridis_r"
        Any matplotlib colormap name; dark (with the default) means far from the neighbours.
    topology : {"rectangular", "hexagonal"}, default "rectangular"
        The lattice's layout: square cells, or hexagons with the odd rows shifted right by half a
        cell. Row 0 is at the top either way.
    save_to : str or path-like, optional
        Also save the figure there (the format follows the suffix, e.g. ``.png``).

    Returns
    -------
    matplotlib.figure.Figure
        The image axes and its colour bar.

    Examples
    --------
    >>> import numpy as np
    >>> from gpusom import u_matrix
    >>> fig = plot_u_matrix(u_matrix(np.random.default_rng(0).random((10, 20, 3))))
    >>> fig.axes[0].get_title()
    'U-matrix'
    """
    topology = _as_topology(topology)
    um = _checks.as_float_array(um, "um", 2, finite="a u-matrix")
    return _single(
        um,
        "U-matrix",
        fig_size=_as_fig_size(fig_size),
        save_to=save_to,
        topology=topology,
        cmap=colormap,
        label="mean distance to neighbours",
    )


def plot_component_planes(lattice, feature_names=None, *, topology="rectangular", save_to=None):
    """Draw one panel per feature: that feature's value in every cell.

    Each panel has its own colour scale (features may have different ranges) and colour bar; a
    feature that is constant up to rounding is drawn as one flat colour.

    Parameters
    ----------
    lattice : array_like of shape (rows, cols, dim)
    feature_names : sequence of str, optional
        One name per feature, used as the panel titles; default ``"feature 0"``, ``"feature 1"``...
    topology : {"rectangular", "hexagonal"}, default "rectangular"
        The lattice's layout: square cells, or hexagons with the odd rows shifted right by half a
        cell. Row 0 is at the top either way.
    save_to : str or path-like, optional
        Also save the figure there (the format follows the suffix, e.g. ``.png``).

    Returns
    -------
    matplotlib.figure.Figure
        ``dim`` image axes, row by row in a near-square grid, each with a colour bar.

    Examples
    --------
    >>> import numpy as np
    >>> fig = plot_component_planes(np.zeros((4, 5, 2)), feature_names=["x", "y"])
    >>> [ax.get_title() for ax in fig.axes if ax.images]
    ['x', 'y']
    """
    import matplotlib.pyplot as plt

    topology = _as_topology(topology)
    lattice = _checks.as_lattice(lattice)
    rows, cols, dim = lattice.shape
    if feature_names is None:
        names = [f"feature {k}" for k in range(dim)]
    else:
        names = _checks.as_labels(feature_names, dim, "feature_names", "feature", "the lattice")
        names = [str(name) for name in names]
    grid_cols = math.ceil(math.sqrt(dim))
    grid_rows = math.ceil(dim / grid_cols)
    panel = 2.4 if dim > 4 else 3.5
    width, height = _fig_size(
        *topology.extent(rows, cols), inches=panel, extra_width=0.7, extra_height=0.5
    )
    fig, axes = plt.subplots(
        grid_rows, grid_cols, figsize=(grid_cols * width, grid_rows * height), squeeze=False
    )
    axes = axes.ravel()
    for k, ax in enumerate(axes[:dim]):
        vmin, vmax = _color_limits(lattice[..., k])
        _draw(fig, ax, lattice[..., k], names[k], topology=topology, vmin=vmin, vmax=vmax)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes[dim:]:
        fig.delaxes(ax)
    fig.suptitle("component planes")
    fig.tight_layout()
    return _finish(fig, save_to)


def _hit_counts(data, lattice, metric, nan_policy):
    """Number of samples whose best matching unit is each cell, shape ``(rows, cols)``."""
    data, lattice = _data_and_lattice(data, lattice, nan_policy=nan_policy)
    rows, cols = lattice.shape[:2]
    bmus = np.asarray(find_bmus(data, lattice, metric=metric, nan_policy=nan_policy))
    return np.bincount(bmus[:, 0] * cols + bmus[:, 1], minlength=rows * cols).reshape(rows, cols)


def plot_hit_map(
    data, lattice, *, topology="rectangular", metric="euclidean", nan_policy="raise", save_to=None
):
    """Draw how many samples land on each cell (their best matching unit).

    Parameters
    ----------
    data : array_like of shape (n_samples, dim)
        In the same scale as the lattice (scale it as the training data was).
    lattice : array_like of shape (rows, cols, dim)
    topology : {"rectangular", "hexagonal"}, default "rectangular"
        The lattice's layout: square cells, or hexagons with the odd rows shifted right by half a
        cell. Row 0 is at the top either way.
    metric, nan_policy
        How best units are found, as in :func:`gpusom.find_bmus` (a map's own: ``SOM.metric``,
        ``SOM.nan_policy``).
    save_to : str or path-like, optional
        Also save the figure there (the format follows the suffix, e.g. ``.png``).

    Returns
    -------
    matplotlib.figure.Figure
        The image of the integer counts and its colour bar.

    Examples
    --------
    >>> import numpy as np
    >>> lattice = np.zeros((2, 3, 1)); lattice[1, 2] = 5.0
    >>> fig = plot_hit_map([[4.0], [0.1], [6.0]], lattice)
    >>> fig.axes[0].images[0].get_array().tolist()
    [[1, 0, 0], [0, 0, 2]]
    """
    topology = _as_topology(topology)
    counts = _hit_counts(data, lattice, metric, nan_policy)
    return _single(
        counts,
        f"hit map ({int(counts.sum())} samples)",
        fig_size=_fig_size(*topology.extent(*counts.shape)),
        save_to=save_to,
        topology=topology,
        cmap="Blues",
        label="samples",
    )


def _labels_map(data, labels, lattice, metric, nan_policy):
    """The most frequent label of the samples landing on each cell.

    Returns ``(codes, classes)``: ``classes`` the distinct labels in sorted order and ``codes`` a
    ``(rows, cols)`` float array holding the index into ``classes`` of each cell's label, NaN where
    no sample lands. Ties go to the label that comes first in ``classes``.
    """
    data, lattice = _data_and_lattice(data, lattice, nan_policy=nan_policy)
    labels = np.asarray(_checks.as_labels(labels, data.shape[0], "labels"))
    if labels.ndim != 1:
        raise ValueError("labels must hold one label (a number or a string) per sample")
    try:
        classes, inverse = np.unique(labels, return_inverse=True)
    except TypeError:  # labels that cannot be sorted for the legend: None beside strings, say
        kinds = sorted({type(label).__name__ for label in labels.tolist()})
        raise TypeError(
            f"labels must be all numbers or all strings (they are sorted), got {', '.join(kinds)}"
        ) from None
    rows, cols = lattice.shape[:2]
    bmus = np.asarray(find_bmus(data, lattice, metric=metric, nan_policy=nan_policy))
    votes = np.zeros((rows * cols, classes.size), dtype=np.int64)
    np.add.at(votes, (bmus[:, 0] * cols + bmus[:, 1], inverse.ravel()), 1)
    codes = np.where(votes.any(axis=1), votes.argmax(axis=1), np.nan)
    return codes.reshape(rows, cols), classes


def _label_colormap(n):
    import matplotlib

    if n <= 10:
        return matplotlib.colors.ListedColormap(matplotlib.colormaps["tab10"].colors[:n])
    if n <= 20:
        return matplotlib.colors.ListedColormap(matplotlib.colormaps["tab20"].colors[:n])
    return matplotlib.colormaps["turbo"].resampled(n)


def plot_labels_map(
    data,
    labels,
    lattice,
    *,
    topology="rectangular",
    metric="euclidean",
    nan_policy="raise",
    save_to=None,
):
    """Draw the most frequent label of the samples landing on each cell.

    Each label has a colour (shown in the legend); cells no sample lands on stay blank. Where the
    cells are large enough, each occupied cell also shows its label as text. Ties between equally
    frequent labels go to the lowest label in sorted order.

    Parameters
    ----------
    data : array_like of shape (n_samples, dim)
        In the same scale as the lattice (scale it as the training data was).
    labels : sequence of length n_samples
        One label (number or string) per sample.
    lattice : array_like of shape (rows, cols, dim)
    topology : {"rectangular", "hexagonal"}, default "rectangular"
        The lattice's layout: square cells, or hexagons with the odd rows shifted right by half a
        cell. Row 0 is at the top either way.
    metric, nan_policy
        How best units are found, as in :func:`gpusom.find_bmus`.
    save_to : str or path-like, optional
        Also save the figure there (the format follows the suffix, e.g. ``.png``).

    Returns
    -------
    matplotlib.figure.Figure
        One axes whose image holds, per cell, the index of its label among the sorted distinct
        labels (NaN for an empty cell), with a legend of the labels.

    Examples
    --------
    >>> import numpy as np
    >>> lattice = np.zeros((1, 3, 1)); lattice[0, 2] = 5.0
    >>> fig = plot_labels_map([[4.0], [0.1], [6.0]], ["b", "a", "b"], lattice)
    >>> fig.axes[0].images[0].get_array().filled(np.nan).tolist()
    [[0.0, nan, 1.0]]
    """
    from matplotlib.patches import Patch

    topology = _as_topology(topology)
    codes, classes = _labels_map(data, labels, lattice, metric, nan_policy)
    rows, cols = codes.shape
    height, width = topology.extent(rows, cols)
    cmap = _label_colormap(classes.size)
    fig_size = _fig_size(height, width, extra_width=0.4)
    fig = _single(
        codes,
        "labels map (most frequent label per cell)",
        fig_size=fig_size,
        save_to=None,
        topology=topology,
        cmap=cmap,
        colorbar=False,
        vmin=-0.5,
        vmax=classes.size - 0.5,
    )
    ax = fig.axes[0]
    handles = [Patch(color=cmap(k), label=str(label)) for k, label in enumerate(classes)]
    ax.legend(
        handles=handles,
        title="label",
        loc="upper left",
        bbox_to_anchor=(1.02, 1.0),
        ncols=math.ceil(classes.size / 20),
        fontsize="small",
    )
    # Cell size in points, from the axes box: the text must fit inside a cell.
    box = ax.get_position()
    cell = 72.0 * min(box.width * fig_size[0] / width, box.height * fig_size[1] / height)
    longest = max(len(str(label)) for label in classes)
    font = min(10.0, 0.9 * cell / max(1.0, 0.6 * longest))
    if font >= _MIN_CELL_FONT:
        for (x, y), code in zip(topology.centres(rows, cols), codes.ravel(), strict=True):
            if not np.isnan(code):
                ax.text(x, y, str(classes[int(code)]), ha="center", va="center", fontsize=font)
    return _finish(fig, save_to)


def plot_activations(
    sample,
    lattice,
    exponent=1,
    *,
    title=None,
    ax=None,
    topology="rectangular",
    metric="euclidean",
    nan_policy="raise",
    save_to=None,
):
    """Draw how strongly one sample activates each cell (1 at its best matching unit).

    The values are :func:`gpusom.lattice_activations` of this sample alone.

    Parameters
    ----------
    sample : array_like of shape (dim,)
        One vector, in the same scale as the lattice.
    lattice : array_like of shape (rows, cols, dim)
    exponent : float, default 1
        Values above 1 sharpen the peak, below 1 flatten it.
    title : str, optional
        Default "activations of the sample", with the exponent when it is not 1.
    ax : matplotlib.axes.Axes, optional
        Draw into these axes (of a figure of several panels, say) instead of a new figure.
    topology : {"rectangular", "hexagonal"}, default "rectangular"
        The lattice's layout: square cells, or hexagons with the odd rows shifted right by half a
        cell. Row 0 is at the top either way.
    metric, nan_policy
        The distance, and whether a NaN feature is missing, as in
        :func:`gpusom.lattice_activations`.
    save_to : str or path-like, optional
        Also save the figure there (the format follows the suffix, e.g. ``.png``).

    Returns
    -------
    matplotlib.figure.Figure
        The ``(rows, cols)`` activation image in [0, 1] and its colour bar (the figure of ``ax``
        when given).

    Examples
    --------
    >>> import numpy as np
    >>> fig = plot_activations([0.0, 0.0, 1.0], np.random.default_rng(0).random((10, 20, 3)))
    >>> fig.axes[0].images[0].get_array().shape
    (10, 20)
    """
    topology = _as_topology(topology)
    allow_nan = _checks.allows_nan(nan_policy)
    sample = _checks.as_float_array(sample, "sample", 1, allow_nan)
    data, lattice = _data_and_lattice(sample[None, :], lattice, "sample", nan_policy)
    activations = np.asarray(
        lattice_activations(
            data, lattice, exponent=exponent, verbose=False, metric=metric, nan_policy=nan_policy
        )
    )
    if title is None:
        title = "activations of the sample" + (f" (exponent {exponent:g})" if exponent != 1 else "")
    return _single(
        activations[0],
        title,
        fig_size=_fig_size(*topology.extent(*activations.shape[1:])),
        save_to=save_to,
        ax=ax,
        topology=topology,
        cmap="inferno",
        label="activation",
        vmin=0.0,
        vmax=1.0,
    )
