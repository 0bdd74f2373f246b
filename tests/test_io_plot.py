"""Saving, loading and pictures."""

import os
import stat

import matplotlib.pyplot as plt
import numpy as np
import pytest

from gpusom import load_lattice, plot_u_matrix, save_lattice, u_matrix


def test_round_trip_with_and_without_suffix(rng, tmp_path, capsys):
    lattice = rng.random((3, 4, 2)).astype(np.float32)
    path = save_lattice(lattice, tmp_path / "map")
    assert path.endswith("map.npy")
    assert capsys.readouterr().out == f"SOM lattice saved at {path}\n"
    for name in ("map", "map.npy"):
        loaded = load_lattice(tmp_path / name, verbose=False)
        assert loaded.dtype == np.float32
        np.testing.assert_array_equal(loaded, lattice)


def test_a_name_without_suffix_loads_its_npy_also_beside_a_directory_of_that_name(rng, tmp_path):
    # save_lattice(lattice, "map") writes map.npy whatever "map" is; loading "map" must find it,
    # not try to read the folder.
    (tmp_path / "map").mkdir()
    lattice = rng.random((3, 4, 2))
    save_lattice(lattice, tmp_path / "map", verbose=False)
    np.testing.assert_array_equal(load_lattice(tmp_path / "map", verbose=False), lattice)


def test_failed_save_leaves_the_old_file_and_no_temporary(rng, tmp_path, monkeypatch):
    old = rng.random((2, 2, 2))
    save_lattice(old, tmp_path / "map.npy", verbose=False)

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_lattice(rng.random((2, 2, 2)), tmp_path / "map.npy", verbose=False)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["map.npy"]
    np.testing.assert_array_equal(load_lattice(tmp_path / "map.npy", verbose=False), old)


def test_saving_onto_a_directory_is_a_clear_error(rng, tmp_path):
    (tmp_path / "map.npy").mkdir()
    with pytest.raises(IsADirectoryError, match=r"map\.npy: it is a directory"):
        save_lattice(rng.random((2, 2, 2)), tmp_path / "map", verbose=False)
    assert os.listdir(tmp_path) == ["map.npy"]  # no temporary file left beside it


def test_saving_through_a_link_writes_its_target_and_keeps_the_link(rng, tmp_path):
    save_lattice(rng.random((2, 2, 2)), tmp_path / "v1.npy", verbose=False)
    (tmp_path / "current.npy").symlink_to("v1.npy")
    lattice = rng.random((2, 2, 2))
    save_lattice(lattice, tmp_path / "current.npy", verbose=False)
    assert (tmp_path / "current.npy").is_symlink()
    np.testing.assert_array_equal(load_lattice(tmp_path / "v1.npy", verbose=False), lattice)
    assert sorted(os.listdir(tmp_path)) == ["current.npy", "v1.npy"]


def test_a_saved_file_has_the_umask_mode_or_the_mode_of_the_file_it_replaces(rng, tmp_path):
    umask = os.umask(0o022)
    try:
        save_lattice(rng.random((2, 2, 2)), tmp_path / "map.npy", verbose=False)
        assert stat.S_IMODE(os.stat(tmp_path / "map.npy").st_mode) == 0o644
        os.chmod(tmp_path / "map.npy", 0o640)
        save_lattice(rng.random((2, 2, 2)), tmp_path / "map.npy", verbose=False)
        assert stat.S_IMODE(os.stat(tmp_path / "map.npy").st_mode) == 0o640
    finally:
        os.umask(umask)


@pytest.mark.skipif(not os.path.exists("/dev/null"), reason="needs /dev/null")
def test_saving_to_a_device_writes_in_place(rng):
    save_lattice(rng.random((2, 2, 2)), "/dev/null", verbose=False)
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_an_empty_file_name_is_a_clear_error(rng, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="the file name is empty"):
        save_lattice(rng.random((2, 2, 2)), "", verbose=False)
    assert os.listdir(tmp_path) == []  # no ".npy" written


@pytest.mark.parametrize(
    ("content", "words"),
    [(b"not a numpy file", "not a readable lattice"), (None, "3-D")],
)
def test_loading_a_bad_file_is_a_clear_error(tmp_path, content, words):
    path = tmp_path / "bad.npy"
    if content is None:
        np.save(path, np.ones((2, 2)))
    else:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=words):
        load_lattice(path, verbose=False)


def test_loading_a_truncated_file_is_a_clear_error(rng, tmp_path):
    path = tmp_path / "cut.npy"
    np.save(path, rng.random((10, 10, 3)))
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match="not a readable lattice"):
        load_lattice(path, verbose=False)


def test_missing_file():
    with pytest.raises(FileNotFoundError):
        load_lattice("/nonexistent/lattice.npy", verbose=False)


def test_plot_u_matrix_draws_the_matrix(rng):
    um = u_matrix(rng.random((5, 8, 3)))
    fig = plot_u_matrix(um, fig_size=(6.2, 6.2), colormap="magma")
    assert isinstance(fig, plt.Figure)
    assert tuple(fig.get_size_inches()) == pytest.approx((6.2, 6.2))
    image_axes = [ax for ax in fig.axes if ax.images]
    assert len(image_axes) == 1
    image = image_axes[0].images[0]
    np.testing.assert_array_equal(image.get_array(), um)
    assert image.get_cmap().name == "magma"
    assert len(fig.axes) == 2  # the image and its colour bar
