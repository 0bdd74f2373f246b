"""The pictures: what each figure holds, saving, and input errors."""

from collections import Counter

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.collections import PolyCollection

from gpusom import (
    find_bmus,
    lattice_activations,
    plot_activations,
    plot_component_planes,
    plot_hit_map,
    plot_labels_map,
    plot_lattice,
    plot_u_matrix,
    u_matrix,
)


def image_axes(fig):
    return [ax for ax in fig.axes if ax.images]


def only_image(fig):
    (ax,) = image_axes(fig)
    (image,) = ax.images
    return ax, np.ma.filled(image.get_array().astype(float), np.nan)


def unit_range(values):
    return (values - values.min(axis=0)) / np.ptp(values, axis=0)


# --- lattice colours -------------------------------------------------------------------------


def test_lattice_of_three_features_is_drawn_as_scaled_rgb(rng):
    lattice = rng.normal(size=(4, 6, 3)) * [1.0, 10.0, 100.0]
    fig = plot_lattice(lattice)
    ax, rgb = only_image(fig)
    assert rgb.shape == (4, 6, 3)
    np.testing.assert_allclose(rgb, unit_range(lattice.reshape(-1, 3)).reshape(4, 6, 3))
    assert "features" in ax.get_title()
    assert len(fig.axes) == 1  # no colour bar


def test_lattice_of_many_features_is_drawn_as_principal_components(rng):
    # Five features with a clear order of variance, so the components are well defined.
    lattice = rng.normal(size=(5, 7, 5)) * [8.0, 4.0, 2.0, 0.5, 0.1]
    ax, rgb = only_image(plot_lattice(lattice))
    assert rgb.shape == (5, 7, 3)
    assert rgb.min() == 0.0 and rgb.max() == 1.0
    assert "principal components" in ax.get_title()
    codebook = lattice.reshape(-1, 5)
    centred = codebook - codebook.mean(axis=0)
    _, vectors = np.linalg.eigh(np.cov(centred.T))
    expected = unit_range(centred @ vectors[:, ::-1][:, :3])
    got = rgb.reshape(-1, 3)
    for k in range(3):  # a component's sign is arbitrary: the channel may come out flipped
        flipped = np.allclose(got[:, k], 1 - expected[:, k])
        assert flipped or np.allclose(got[:, k], expected[:, k])


def test_lattice_of_one_or_two_features(rng):
    _, grey = only_image(plot_lattice(rng.random((3, 4, 1))))
    assert np.array_equal(grey[..., 0], grey[..., 1]) and np.array_equal(grey[..., 0], grey[..., 2])
    two = rng.random((3, 4, 2))
    _, rgb = only_image(plot_lattice(two))
    np.testing.assert_allclose(rgb[..., :2], unit_range(two.reshape(-1, 2)).reshape(3, 4, 2))
    assert np.all(rgb[..., 2] == 0)


def test_constant_lattice_is_mid_grey():
    _, rgb = only_image(plot_lattice(np.ones((2, 3, 3))))
    assert np.all(rgb == 0.5)


# --- u-matrix ----------------------------------------------------------------------------------


def test_u_matrix_keeps_its_defaults(rng):
    um = u_matrix(rng.random((3, 5, 2)), is_torus=True)
    fig = plot_u_matrix(um)
    ax, image = only_image(fig)
    np.testing.assert_array_equal(image, um)
    assert ax.get_title() == "U-matrix"
    assert ax.images[0].get_cmap().name == "viridis_r"
    assert tuple(fig.get_size_inches()) == pytest.approx((4, 4))


# --- component planes --------------------------------------------------------------------------


def test_component_planes_one_panel_per_feature(rng):
    lattice = rng.random((3, 4, 5)).astype(np.float32)
    fig = plot_component_planes(lattice, feature_names=["a", "b", "c", "d", "e"])
    axes = image_axes(fig)
    assert [ax.get_title() for ax in axes] == ["a", "b", "c", "d", "e"]
    for k, ax in enumerate(axes):
        np.testing.assert_array_equal(ax.images[0].get_array(), lattice[..., k])
        assert ax.images[0].get_clim() == pytest.approx(
            (lattice[..., k].min(), lattice[..., k].max())
        )
    assert len(fig.axes) == 10  # five panels and their colour bars; the sixth grid cell is gone
    assert fig.get_suptitle() == "component planes"


def test_component_planes_default_names_and_flat_feature(rng):
    lattice = rng.random((2, 3, 2)).astype(np.float32)
    lattice[..., 1] = 1e-45 * (np.arange(6).reshape(2, 3) % 2)  # 0 and a float32 subnormal
    axes = image_axes(plot_component_planes(lattice))
    assert [ax.get_title() for ax in axes] == ["feature 0", "feature 1"]
    low, high = axes[1].images[0].get_clim()
    assert low < -0.05 and high > 0.05  # one flat colour, not noise stretched over the colour map


def test_component_planes_need_one_name_per_feature(rng):
    with pytest.raises(
        ValueError, match="feature_names has 2 entries but the lattice has 3 features"
    ):
        plot_component_planes(rng.random((2, 3, 3)), feature_names=["a", "b"])


# --- hit map -----------------------------------------------------------------------------------


def test_hit_map_counts_samples_per_cell(rng):
    lattice, data = rng.random((4, 5, 3)), rng.random((300, 3))
    ax, counts = only_image(plot_hit_map(data, lattice))
    bmus = find_bmus(data, lattice)
    expected = np.bincount(bmus[:, 0] * 5 + bmus[:, 1], minlength=20).reshape(4, 5)
    np.testing.assert_array_equal(counts, expected)
    assert ax.get_title() == "hit map (300 samples)"


def test_hit_and_labels_maps_search_with_the_given_metric_and_missing_values(rng):
    lattice, data = rng.normal(size=(4, 5, 3)), rng.normal(size=(300, 3))
    data[::7, 1] = np.nan
    search = {"metric": "cosine", "nan_policy": "ignore"}
    bmus = find_bmus(data, lattice, **search)
    flat = bmus[:, 0] * 5 + bmus[:, 1]
    euclidean = find_bmus(np.nan_to_num(data), lattice)
    assert (flat != euclidean[:, 0] * 5 + euclidean[:, 1]).any()  # the options matter here
    _, counts = only_image(plot_hit_map(data, lattice, **search))
    np.testing.assert_array_equal(counts, np.bincount(flat, minlength=20).reshape(4, 5))
    labels = np.where(data[:, 0] > 0, "pos", "neg")
    _, codes = only_image(plot_labels_map(data, labels, lattice, **search))
    for cell in np.unique(flat):
        here = labels[flat == cell]
        expected = max(sorted(set(here)), key=lambda label: (here == label).sum())
        assert codes.ravel()[cell] == ["neg", "pos"].index(expected)
    with pytest.raises(ValueError, match="NaN"):
        plot_hit_map(data, lattice, metric="cosine")


# --- labels map --------------------------------------------------------------------------------


def test_labels_map_shows_the_most_frequent_label(rng):
    lattice, data = rng.random((3, 4, 2)), rng.random((200, 2))
    labels = rng.choice(["cat", "dog", "eel"], size=200)
    fig = plot_labels_map(data, labels.tolist(), lattice)
    ax, codes = only_image(fig)
    classes = ["cat", "dog", "eel"]
    votes = {}
    for (row, col), label in zip(find_bmus(data, lattice).tolist(), labels, strict=True):
        votes.setdefault((row, col), Counter())[label] += 1
    texts = {
        (round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in ax.texts
    }
    for row in range(3):
        for col in range(4):
            if (row, col) in votes:
                top = max(votes[row, col].values())
                winner = min(label for label, n in votes[row, col].items() if n == top)
                assert codes[row, col] == classes.index(winner)
                assert texts[row, col] == winner
            else:
                assert np.isnan(codes[row, col]) and (row, col) not in texts
    legend = ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == classes


def test_labels_map_ties_go_to_the_lowest_label_and_empty_cells_stay_blank():
    lattice = np.array([[[0.0], [10.0], [20.0]]])
    data = [[0.1], [0.2], [0.3], [20.0]]
    _, codes = only_image(plot_labels_map(data, [7, 3, 7, 3], lattice))
    np.testing.assert_array_equal(codes, [[1.0, np.nan, 0.0]])  # 7 twice beats 3 once
    _, codes = only_image(plot_labels_map(data, [7, 3, 5, 9], lattice))
    # 7 (seen first), 3 and 5 tie once each: 3, the lowest, wins.
    np.testing.assert_array_equal(codes, [[0.0, np.nan, 3.0]])


def test_labels_need_one_entry_per_sample(rng):
    with pytest.raises(ValueError, match="labels has 2 entries but data has 3 samples"):
        plot_labels_map(rng.random((3, 2)), ["a", "b"], rng.random((2, 2, 2)))


# --- activations -------------------------------------------------------------------------------


@pytest.mark.parametrize("exponent", [1, 4.0])
def test_activations_of_one_sample(rng, exponent):
    lattice, sample = rng.random((4, 6, 3)), rng.random(3)
    ax, image = only_image(plot_activations(sample, lattice, exponent=exponent))
    expected = lattice_activations(sample[None], lattice, exponent=exponent, verbose=False)[0]
    np.testing.assert_array_equal(image, expected)
    assert np.unravel_index(image.argmax(), image.shape) == tuple(find_bmus([sample], lattice)[0])
    assert ax.get_title().startswith("activations of the sample")
    assert ax.images[0].get_clim() == (0.0, 1.0)


def test_activations_follow_the_metric_and_missing_values(rng):
    lattice, sample = rng.normal(size=(3, 4, 3)), np.array([0.5, np.nan, -1.0])
    search = {"metric": "manhattan", "nan_policy": "ignore"}
    _, image = only_image(plot_activations(sample, lattice, **search))
    expected = lattice_activations(sample[None], lattice, verbose=False, **search)[0]
    np.testing.assert_allclose(image, expected)
    with pytest.raises(ValueError, match="NaN"):
        plot_activations(sample, lattice)


def test_activations_draw_into_given_axes_with_a_title(rng):
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2)
    lattice = rng.random((4, 6, 3))
    assert plot_activations(rng.random(3), lattice, 2, title="two", ax=right) is fig
    assert right.get_title() == "two" and right.images[0].get_array().shape == (4, 6)
    assert not left.images
    assert len(fig.axes) == 3  # both panels and the colour bar of the right one


# --- saving and bad input, for every picture ---------------------------------------------------

LATTICE = np.random.default_rng(0).random((3, 4, 3))
DATA = np.random.default_rng(1).random((20, 3))
PICTURES = {
    "lattice": lambda **kw: plot_lattice(LATTICE, **kw),
    "u_matrix": lambda **kw: plot_u_matrix(u_matrix(LATTICE), **kw),
    "component_planes": lambda **kw: plot_component_planes(LATTICE, **kw),
    "hit_map": lambda **kw: plot_hit_map(DATA, LATTICE, **kw),
    "labels_map": lambda **kw: plot_labels_map(DATA, np.arange(20) % 3, LATTICE, **kw),
    "activations": lambda **kw: plot_activations(DATA[0], LATTICE, **kw),
}


@pytest.mark.parametrize("name", sorted(PICTURES))
def test_save_to_writes_a_png(tmp_path, name):
    path = tmp_path / f"{name}.png"
    fig = PICTURES[name](save_to=str(path) if name == "hit_map" else path)
    assert isinstance(fig, plt.Figure)
    picture = plt.imread(path)
    width, height = fig.get_size_inches() * fig.dpi
    assert picture.ndim == 3 and picture.shape[0] > 0.5 * height and picture.shape[1] > 0.5 * width
    assert np.ptp(picture[..., :3]) > 0  # not a blank page


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (lambda: plot_lattice(np.ones((3, 3))), ValueError, "lattice must be a 3-D"),
        (lambda: plot_lattice([[["x"]]]), TypeError, "lattice must be numeric"),
        (lambda: plot_u_matrix(np.ones(3)), ValueError, "um must be a 2-D"),
        (  # plot_u_matrix has no nan_policy to advise
            lambda: plot_u_matrix(np.full((2, 2), np.nan)),
            ValueError,
            "um contains 4 NaN or infinite value.s.; a u-matrix must be finite everywhere$",
        ),
        (lambda: plot_component_planes(np.full((2, 2, 2), np.nan)), ValueError, "lattice"),
        (lambda: plot_hit_map(DATA[:, :2], LATTICE), ValueError, "data has 2 features"),
        (lambda: plot_hit_map(DATA[0], LATTICE), ValueError, "data must be a 2-D"),
        (lambda: plot_labels_map(DATA, [[1, 2]] * 20, LATTICE), ValueError, "labels"),
        (lambda: plot_labels_map(DATA, ["a", None] * 10, LATTICE), TypeError, "labels must be"),
        (lambda: plot_activations(DATA[:2], LATTICE), ValueError, "sample must be a 1-D"),
        (lambda: plot_activations([1.0, 2.0], LATTICE), ValueError, "sample has 2 features"),
        (lambda: plot_activations(DATA[0], LATTICE, exponent=0), ValueError, "exponent"),
        (lambda: plot_activations(DATA[0], LATTICE, ax="x"), TypeError, "ax must be .* got str"),
        (lambda: plot_u_matrix(np.ones((2, 2)), fig_size=-1), TypeError, "fig_size must be"),
        (lambda: plot_u_matrix(np.ones((2, 2)), fig_size=(4, 0)), ValueError, "fig_size must"),
        (lambda: plot_u_matrix(np.ones((2, 2)), fig_size=(1, 2, 3)), TypeError, "fig_size"),
    ],
)
def test_bad_input_names_the_argument(call, error, words):
    with pytest.raises(error, match=words):
        call()


@pytest.mark.parametrize("name", sorted(PICTURES))
def test_topology_must_be_rectangular_or_hexagonal(name):
    with pytest.raises(ValueError, match="topology must be one of 'rectangular', 'hexagonal'"):
        PICTURES[name](topology="square")


# --- hexagonal lattice -------------------------------------------------------------------------

RADIUS = 1 / np.sqrt(3)  # circumradius of a hexagon of width 1


def hexagon_centres(rows, cols):
    """Cell (r, c) at x = c + 0.5 (r % 2), y = r sqrt(3) / 2, in row-major order."""
    return np.array(
        [[c + 0.5 * (r % 2), r * np.sqrt(3) / 2] for r in range(rows) for c in range(cols)]
    )


def hexagon_axes(fig):
    return [ax for ax in fig.axes if any(isinstance(c, PolyCollection) for c in ax.collections)]


def hexagon_corners(collection):
    """``(n_cells, 6, 2)`` corners of each hexagon (its path, less the closing vertex)."""
    return np.array([path.vertices[:-1] for path in collection.get_paths()])


@pytest.mark.parametrize("name", sorted(PICTURES))
def test_hexagonal_picture_draws_one_hexagon_per_cell_at_its_centre(name):
    fig = PICTURES[name](topology="hexagonal")
    panels = hexagon_axes(fig)
    assert panels and not any(ax.images for ax in fig.axes)
    rows, cols = LATTICE.shape[:2]
    for ax in panels:
        (hexagons,) = ax.collections
        corners = hexagon_corners(hexagons)
        assert corners.shape == (rows * cols, 6, 2)
        centres = corners.mean(axis=1)
        np.testing.assert_allclose(centres, hexagon_centres(rows, cols), atol=1e-12)
        offsets = corners - centres[:, None, :]
        np.testing.assert_allclose(np.hypot(*offsets.T), RADIUS)  # regular, circumradius 1/sqrt 3
        # Pointy-top: a corner straight above and below the centre, vertical sides half a cell out.
        np.testing.assert_allclose(offsets[..., 1].min(axis=1), -RADIUS)
        np.testing.assert_allclose(offsets[..., 1].max(axis=1), RADIUS)
        np.testing.assert_allclose(np.abs(offsets[..., 0]).max(axis=1), 0.5)
        # The whole map shows, row 0 at the top, cells not stretched.
        low, high = corners.reshape(-1, 2).min(axis=0), corners.reshape(-1, 2).max(axis=0)
        np.testing.assert_allclose(ax.get_xlim(), (low[0], high[0]))
        np.testing.assert_allclose(ax.get_ylim(), (high[1], low[1]))
        assert ax.get_aspect() == 1.0


@pytest.mark.parametrize("name", sorted(PICTURES))
def test_hexagonal_picture_holds_what_the_rectangular_one_holds(name):
    squares, hexagons = PICTURES[name](), PICTURES[name](topology="hexagonal")
    assert len(hexagons.axes) == len(squares.axes)  # the same colour bars
    pairs = list(zip(image_axes(squares), hexagon_axes(hexagons), strict=True))
    for square_ax, hexagon_ax in pairs:
        (image,) = square_ax.images
        (collection,) = hexagon_ax.collections
        for text in ("get_title", "get_xlabel", "get_ylabel"):
            assert getattr(hexagon_ax, text)() == getattr(square_ax, text)()
        values = np.ma.filled(image.get_array().astype(float), np.nan)
        if values.ndim == 3:  # RGB, as the face colours
            assert collection.get_array() is None
            np.testing.assert_array_equal(collection.get_facecolor()[:, :3], values.reshape(-1, 3))
            assert np.all(collection.get_facecolor()[:, 3] == 1.0)
        else:
            got = np.ma.filled(collection.get_array().astype(float), np.nan)
            np.testing.assert_array_equal(got, values.ravel())
            assert collection.get_cmap().name == image.get_cmap().name
            assert collection.get_clim() == pytest.approx(image.get_clim())
        assert (collection.colorbar is None) == (image.colorbar is None)
        if image.colorbar is not None:
            assert collection.colorbar.ax.get_ylabel() == image.colorbar.ax.get_ylabel()


def test_hexagonal_u_matrix_and_lattice_hold_their_values_row_by_row(rng):
    lattice = rng.random((4, 5, 3))
    um = u_matrix(lattice)
    fig = plot_u_matrix(um, topology="hexagonal")
    (hexagons,) = fig.axes[0].collections
    np.testing.assert_array_equal(hexagons.get_array(), um.ravel())
    assert hexagons.colorbar is not None and hexagons.colorbar.ax in fig.axes
    (hexagons,) = plot_lattice(lattice, topology="hexagonal").axes[0].collections
    np.testing.assert_allclose(
        hexagons.get_facecolor()[:, :3], unit_range(lattice.reshape(-1, 3)), atol=1e-15
    )


@pytest.mark.parametrize("shape", [(5, 4), (6, 1), (1, 3)])
def test_neighbouring_hexagons_share_an_edge(shape):
    rows, cols = shape
    fig = plot_u_matrix(np.arange(rows * cols, dtype=float).reshape(shape), topology="hexagonal")
    corners = hexagon_corners(fig.axes[0].collections[0])
    centres = hexagon_centres(rows, cols)
    neighbours = 0
    for a in range(rows * cols):
        for b in range(a + 1, rows * cols):
            close = np.linalg.norm(corners[a][:, None] - corners[b][None, :], axis=-1) < 1e-9
            if np.isclose(np.linalg.norm(centres[a] - centres[b]), 1.0):
                neighbours += 1
                assert close.sum() == 2  # one common side, no gap
            else:
                assert not close.any()
    # Each row has cols - 1 pairs side by side; each pair of rows 2 cols - 1 pairs across.
    assert neighbours == rows * (cols - 1) + (rows - 1) * (2 * cols - 1)
    # The picture spans the map: half a cell wider than cols where odd rows are shifted.
    right = cols - 0.5 if rows == 1 else cols
    assert fig.axes[0].get_xlim() == pytest.approx((-0.5, right))
    assert corners[..., 0].min() == pytest.approx(-0.5) and corners[..., 0].max() == pytest.approx(
        right
    )


def test_hexagonal_rows_are_labelled_by_number(rng):
    fig = plot_u_matrix(rng.random((24, 5)), topology="hexagonal")
    fig.canvas.draw()
    ax = fig.axes[0]
    rows = ax.get_yticks() / (np.sqrt(3) / 2)
    np.testing.assert_allclose(rows, np.round(rows), atol=1e-12)
    assert 0 in np.round(rows) and 2 <= rows.size <= 12
    assert [t.get_text() for t in ax.get_yticklabels()] == [str(round(r)) for r in rows]


def test_hexagonal_labels_map_writes_each_label_at_its_cell_centre():
    picture = PICTURES["labels_map"]
    squares, hexagons = picture().axes[0].texts, picture(topology="hexagonal").axes[0].texts
    assert len(hexagons) == len(squares) > 0
    centres = hexagon_centres(*LATTICE.shape[:2])
    cols = LATTICE.shape[1]
    for square, hexagon in zip(squares, hexagons, strict=True):
        col, row = square.get_position()
        np.testing.assert_allclose(hexagon.get_position(), centres[round(row) * cols + round(col)])
        assert hexagon.get_text() == square.get_text()
        assert hexagon.get_fontsize() > 5


def test_hexagonal_activations_draw_into_given_axes(rng):
    fig, (left, right) = plt.subplots(1, 2)
    plot_activations(rng.random(3), LATTICE, ax=right, topology="hexagonal")
    assert len(right.collections) == 1 and not left.collections
    assert len(fig.axes) == 3  # both panels and the colour bar of the right one


@pytest.mark.parametrize("name", sorted(PICTURES))
def test_hexagonal_picture_saves(tmp_path, name):
    path = tmp_path / f"{name}.png"
    PICTURES[name](topology="hexagonal", save_to=path)
    assert np.ptp(plt.imread(path)[..., :3]) > 0
