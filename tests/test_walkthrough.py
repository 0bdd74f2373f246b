"""The original library's walk-through, step by step, with gpusom, and the example script."""

import runpy
import sys

import matplotlib.pyplot as plt
import numpy as np
import pytest

from gpusom import *  # noqa: F403 - the walk-through's own import line
from gpusom import demo

COLORS = np.array(
    [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0], [0.0, 1.0, 1.0],
     [1.0, 0.0, 1.0], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]
)  # fmt: skip
COLOR_LABELS = ["red", "green", "blue", "yellow", "cyan", "purple", "black", "white"]


@pytest.fixture(scope="module")
def trained():
    data = np.random.default_rng(0).random([200, 3])
    som = SOM(som_size=(50, 100), is_torus=False, seed=0)  # noqa: F405
    return data, som.train(data, num_iterations=15000)


def test_star_import_gives_the_walkthrough_names():
    import gpusom

    seed_names = {
        "SOM",
        "u_matrix",
        "plot_u_matrix",
        "project_on_lattice",
        "lattice_closest_vectors",
        "lattice_activations",
        "save_lattice",
        "load_lattice",
    }
    assert seed_names <= set(gpusom.__all__)
    assert all(callable(getattr(gpusom, name)) for name in gpusom.__all__)
    assert isinstance(gpusom.__version__, str)


def test_walkthrough(trained, capsys, tmp_path):
    data, lattice = trained
    assert lattice.shape == (50, 100, 3)
    assert lattice[1::6, 1].shape == (9, 3)
    # A colour map: every cell inside the colour cube, neighbours similar, data well covered.
    assert lattice.min() >= 0.0 and lattice.max() <= 1.0
    assert quantization_error(data, lattice) < 0.03  # noqa: F405
    assert topographic_error(data, lattice) < 0.02  # noqa: F405

    um = u_matrix(lattice)  # noqa: F405
    assert um.shape == (50, 100)
    assert np.median(um) < 0.05  # neighbouring cells hold similar colours
    fig = plot_u_matrix(um, fig_size=(6.2, 6.2))  # noqa: F405
    assert fig.axes[0].images[0].get_array().shape == (50, 100)

    projection = project_on_lattice(COLORS, lattice, additional_list=COLOR_LABELS)  # noqa: F405
    assert len(projection) == 5000
    placed = {labels[0]: cell for cell, labels in projection.items() if labels}
    assert sum(len(v) for v in projection.values()) == 8
    for label, (row, col) in placed.items():  # each colour lands on a cell of its own colour
        expected = COLORS[COLOR_LABELS.index(label)]
        assert np.abs(lattice[row, col] - expected).max() < 0.35

    closest = lattice_closest_vectors(COLORS, lattice, additional_list=COLOR_LABELS)  # noqa: F405
    assert all(len(v) == 1 and v[0] in COLOR_LABELS for v in closest.values())
    for label, cell in placed.items():
        assert closest[cell] == [label]
    closest_vec = lattice_closest_vectors(COLORS, lattice)  # noqa: F405
    values = np.array(list(closest_vec.values())).reshape(50, 100, -1)
    assert values.shape == (50, 100, 3)
    assert {tuple(v) for v in values.reshape(-1, 3)} <= {tuple(c) for c in COLORS}

    activations = lattice_activations(COLORS, lattice)  # noqa: F405
    sharp = lattice_activations(COLORS, lattice, exponent=8)  # noqa: F405
    assert activations.shape == sharp.shape == (8, 50, 100)
    blue = COLOR_LABELS.index("blue")
    assert np.unravel_index(np.argmax(activations[blue]), (50, 100)) == placed["blue"]
    assert sharp[blue].mean() < activations[blue].mean()  # the exponent sharpens the peak

    save_lattice(lattice, tmp_path / "colors")  # noqa: F405
    np.testing.assert_array_equal(load_lattice(tmp_path / "colors"), lattice)  # noqa: F405

    lines = capsys.readouterr().out.splitlines()
    timed = [line.split(" took:")[0] for line in lines if " took: " in line]
    assert timed == [
        "Projecting on SOM",
        "Finding closest data points",
        "Finding closest data points",
        "Computing SOM activations",
        "Computing SOM activations",
    ]


def test_example_script_writes_its_pictures(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["colors.py", "--out", str(tmp_path)])
    runpy.run_path("examples/colors.py", run_name="__main__")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["activations.png", "lattice.png", "projection.png", "u_matrix.png"]
    picture = plt.imread(tmp_path / "lattice.png")
    assert picture.ndim == 3 and picture.shape[0] > 100
    assert "SOM training took:" in capsys.readouterr().out


def _inside(inner, outer):
    return (
        outer.x0 - 0.5 <= inner.x0
        and inner.x1 <= outer.x1 + 0.5
        and outer.y0 - 0.5 <= inner.y0
        and inner.y1 <= outer.y1 + 0.5
    )


def test_demo_projection_names_lie_inside_the_axes(trained):
    _, lattice = trained
    closest = lattice_closest_vectors(COLORS, lattice, verbose=False)  # noqa: F405
    walkthrough = project_on_lattice(COLORS, lattice, COLOR_LABELS, verbose=False)  # noqa: F405
    corners = {cell: [] for cell in walkthrough}
    corners.update(
        {(0, 0): ["red"], (0, 99): ["blue"], (49, 0): ["green"], (49, 99): ["white", "black"]}
    )
    for projection in (walkthrough, corners):
        fig = demo.projection_figure(projection, closest, (50, 100))
        ax = fig.axes[0]
        fig.draw_without_rendering()
        box = ax.get_window_extent()
        names = {text.get_text(): text for text in ax.texts}
        expected = {", ".join(labels) for labels in projection.values() if labels}
        assert set(names) == expected
        for text in names.values():
            assert _inside(text.get_bbox_patch().get_window_extent(), box), text.get_text()
        assert not ax.title.get_window_extent().overlaps(box)  # the title sits above the axes
        assert (ax.get_xlabel(), ax.get_ylabel()) == ("column", "row")
        assert ax.images[0].get_array().shape == (50, 100, 3)


def test_demo_activations_have_colour_bars_and_axis_labels(trained):
    _, lattice = trained
    fig = demo.activations_figure(lattice, "blue")
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == [
        "activations of blue, exponent 1",
        "activations of blue, exponent 8",
    ]
    for ax in panels:
        image = ax.images[0]
        assert image.colorbar is not None and image.colorbar.ax in fig.axes
        assert image.colorbar.ax.get_ylabel() == "activation"
        assert (ax.get_xlabel(), ax.get_ylabel()) == ("column", "row")
        assert image.get_clim() == (0.0, 1.0)
    plain, sharp = (ax.images[0].get_array() for ax in panels)
    blue = lattice_activations(COLORS[2:3], lattice, verbose=False)[0]  # noqa: F405
    np.testing.assert_allclose(plain, blue)
    assert sharp.mean() < plain.mean()


def test_demo_closes_only_its_own_figures(tmp_path):
    caller = plt.figure()
    before = plt.get_fignums()
    demo.run(tmp_path, iterations=2000, verbose=False)
    assert plt.get_fignums() == before and plt.fignum_exists(caller.number)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["activations.png", "lattice.png", "projection.png", "u_matrix.png"]
    for name in names:
        assert plt.imread(tmp_path / name).ndim == 3
