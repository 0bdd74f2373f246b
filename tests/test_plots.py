"""The pictures: what each figure holds, saving, and input errors."""

from collections import Counter

import matplotlib.pyplot as plt
import numpy as np
import pytest

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
    with pytest.raises(ValueError, match="feature_names"):
        plot_component_planes(rng.random((2, 3, 3)), feature_names=["a", "b"])


# --- hit map -----------------------------------------------------------------------------------


def test_hit_map_counts_samples_per_cell(rng):
    lattice, data = rng.random((4, 5, 3)), rng.random((300, 3))
    ax, counts = only_image(plot_hit_map(data, lattice))
    bmus = find_bmus(data, lattice)
    expected = np.bincount(bmus[:, 0] * 5 + bmus[:, 1], minlength=20).reshape(4, 5)
    np.testing.assert_array_equal(counts, expected)
    assert ax.get_title() == "hit map (300 samples)"


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
        (lambda: plot_component_planes(np.full((2, 2, 2), np.nan)), ValueError, "lattice"),
        (lambda: plot_hit_map(DATA[:, :2], LATTICE), ValueError, "data has 2 features"),
        (lambda: plot_hit_map(DATA[0], LATTICE), ValueError, "data must be a 2-D"),
        (lambda: plot_labels_map(DATA, [[1, 2]] * 20, LATTICE), ValueError, "labels"),
        (lambda: plot_activations(DATA[:2], LATTICE), ValueError, "sample must be a 1-D"),
        (lambda: plot_activations([1.0, 2.0], LATTICE), ValueError, "sample has 2 features"),
        (lambda: plot_activations(DATA[0], LATTICE, exponent=0), ValueError, "exponent"),
    ],
)
def test_bad_input_names_the_argument(call, error, words):
    with pytest.raises(error, match=words):
        call()
