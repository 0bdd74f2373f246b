"""The ``gpusom`` command line, end to end in a subprocess, and every input mistake it reports."""

import csv
import io
import subprocess
import sys

import matplotlib.pyplot as plt
import numpy as np
import pytest

from gpusom import SOM, _config, cpu, plot
from gpusom.cli import main, read_table


def run_gpusom(*args, cwd):
    """Run ``python -m gpusom.cli ARGS`` in ``cwd`` (as the console script does)."""
    command = [sys.executable, "-m", "gpusom.cli", *map(str, args)]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.fixture
def files(tmp_path, rng):
    """Sample files in ``tmp_path``: 60 samples of 3 features, with a header and a label column."""
    values = rng.random((60, 3)) * [1.0, 10.0, 100.0]
    kinds = np.where(values[:, 0] > 0.5, "high", "low")
    with open(tmp_path / "labelled.csv", "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["x", "y", "z", "kind"])
        writer.writerows([*row, kind] for row, kind in zip(values.tolist(), kinds, strict=True))
    with open(tmp_path / "data.csv", "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["x", "y", "z"])
        writer.writerows(values.tolist())
    np.save(tmp_path / "data.npy", values)
    return values, kinds.tolist()


def test_train_project_plot_and_demo_end_to_end(tmp_path, files):
    values, _ = files
    trained = run_gpusom(
        "train", "data.csv", "--size", "6x8", "--torus", "--iterations", "3000", "--normalize",
        "--backend", "cpu", "--seed", "5", "--out", "model.npz", cwd=tmp_path,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    # Messages go to stderr: stdout is left to data a user may pipe (below).
    assert trained.stdout == "" and "SOM training took:" in trained.stderr
    som = SOM.load(tmp_path / "model.npz")
    assert som.lattice_.shape == (6, 8, 3) and som.settings_["is_torus"]
    assert (som.steps_done_, som.backend_) == (3000, "cpu")
    np.testing.assert_array_equal(som.feature_names_in_, ["x", "y", "z"])
    np.testing.assert_array_equal(som.data_min_, values.min(axis=0))
    expected = SOM((6, 8), True, seed=5, verbose=False).train(values, 3000, normalize=True)
    np.testing.assert_array_equal(som.lattice_, expected)

    piped = run_gpusom("project", "model.npz", "data.csv", "--out", "/dev/stdout", cwd=tmp_path)
    assert piped.returncode == 0, piped.stderr
    assert "SOM model loaded from model.npz" in piped.stderr
    assert piped.stdout.splitlines()[0] == "row,col"  # the CSV alone, no status line before it
    cells = np.loadtxt(io.StringIO(piped.stdout), delimiter=",", skiprows=1, dtype=np.int64)
    np.testing.assert_array_equal(cells, som.transform(values))

    plotted = run_gpusom(
        "plot", "model.npz", "--out", "pictures", "--data", "labelled.csv", "--labels", "kind",
        cwd=tmp_path,
    )  # fmt: skip
    assert plotted.returncode == 0, plotted.stderr
    assert plotted.stdout == "" and "written to pictures" in plotted.stderr
    names = sorted(p.name for p in (tmp_path / "pictures").iterdir())
    assert names == [
        "component_planes.png", "hit_map.png", "labels_map.png", "lattice.png", "u_matrix.png",
    ]  # fmt: skip
    assert plt.imread(tmp_path / "pictures" / "hit_map.png").ndim == 3

    demo = run_gpusom("demo", "--out", "demo", cwd=tmp_path)
    assert demo.returncode == 0, demo.stderr
    assert demo.stdout == "" and "quantization error" in demo.stderr
    names = sorted(p.name for p in (tmp_path / "demo").iterdir())
    assert names == ["activations.png", "lattice.png", "projection.png", "u_matrix.png"]


def test_a_bad_input_in_a_real_process_is_one_line_and_status_2(tmp_path):
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n3,nan\n")
    result = run_gpusom("train", "bad.csv", "--size", "2x2", "--out", "m.npz", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == (
        "gpusom: error: bad.csv, line 3: column 'b' is nan; train with --nan-policy ignore to "
        "allow missing values\n"
    )
    assert not (tmp_path / "m.npz").exists()


def test_npy_data_and_plot_without_data(tmp_path, files, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "data.npy", "--size", "3x4", "--seed", "1", "--out", "m.npz"]) == 0
    som = SOM.load("m.npz")
    # fit's default for 60 samples on 12 cells: 75 draws of each sample
    assert not hasattr(som, "feature_names_in_") and som.num_iterations_ == 75 * 60
    assert main(["project", "m.npz", "data.npy", "--out", "cells.csv"]) == 0
    assert main(["plot", "m.npz", "--out", "pictures"]) == 0
    names = sorted(p.name for p in (tmp_path / "pictures").iterdir())
    assert names == ["component_planes.png", "lattice.png", "u_matrix.png"]
    assert "Traceback" not in capsys.readouterr().err


def test_an_interrupted_train_saves_the_model_so_far(tmp_path, files, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    engine = cpu.ENGINE
    real, calls = engine.train_online, []

    def train_online(*args):  # Ctrl-C during the third slice
        calls.append(len(args[2]))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(engine, "train_online", train_online)
    monkeypatch.setattr(_config, "STEPS_PER_SLICE", 100)
    argv = ["train", "data.csv", "--size", "3x3", "--iterations", "1000", "--out", "m.npz"]
    assert main(argv) == 130
    status, message = capsys.readouterr().err.splitlines()  # messages go to stderr, one a line
    assert status == "SOM model saved at m.npz"
    assert message.startswith(f"gpusom: interrupted at step {sum(calls[:2])} of 1,000;")
    assert "saved in m.npz" in message
    som = SOM.load("m.npz")
    assert (som.steps_done_, som.num_iterations_) == (sum(calls[:2]), 1000)
    np.testing.assert_array_equal(som.feature_names_in_, ["x", "y", "z"])


def test_read_table_detects_headers_and_labels(tmp_path, files):
    values, kinds = files
    got, names, labels = read_table(tmp_path / "labelled.csv", "kind")
    np.testing.assert_array_equal(got, values)
    assert (names, labels) == (["x", "y", "z"], kinds)
    (tmp_path / "plain.csv").write_text("1,2\n\n3,4e1\n")  # no header; blank lines skipped
    got, names, labels = read_table(tmp_path / "plain.csv", "1")
    assert got.tolist() == [[1.0], [3.0]] and names is None and labels == ["2", "4e1"]
    assert read_table(tmp_path / "data.npy", "0")[2] == values[:, 0].tolist()
    (tmp_path / "bom.csv").write_bytes("\ufeffa,b\n1,2\n".encode())  # UTF-8 with a BOM
    assert read_table(tmp_path / "bom.csv")[1] == ["a", "b"]


BAD_INPUTS = {
    "missing data file": (["train", "missing.csv", "--size", "2x2", "--out", "m.npz"], "missing"),
    "directory as data": (["train", "folder.csv", "--size", "2x2", "--out", "m.npz"], "folder"),
    "non-numeric column": (
        ["train", "labelled.csv", "--size", "2x2", "--out", "m.npz"],
        "labelled.csv, line 2: column 'kind' is not numeric",
    ),
    "NaN cell": (["train", "nan.csv", "--size", "2x2", "--out", "m.npz"], "column 1 is NaN"),
    "empty cell": (["train", "empty-cell.csv", "--size", "2x2", "--out", "m.npz"], "is empty"),
    "ragged row": (["train", "ragged.csv", "--size", "2x2", "--out", "m.npz"], "3 fields"),
    "binary data": (["train", "binary.csv", "--size", "2x2", "--out", "m.npz"], "not a readable"),
    "header only": (["train", "header.csv", "--size", "2x2", "--out", "m.npz"], "no data rows"),
    "empty file": (["train", "empty.csv", "--size", "2x2", "--out", "m.npz"], "holds no data"),
    "text extension": (["train", "data.txt", "--size", "2x2", "--out", "m.npz"], ".csv or .npy"),
    "1-D npy": (["train", "flat.npy", "--size", "2x2", "--out", "m.npz"], "1-D"),
    "pickled npy": (["train", "objects.npy", "--size", "2x2", "--out", "m.npz"], "not a readable"),
    "size without x": (["train", "data.csv", "--size", "10by20", "--out", "m.npz"], "--size"),
    "zero size": (["train", "data.csv", "--size", "0x5", "--out", "m.npz"], "'0x5'"),
    "huge size": (
        ["train", "data.csv", "--size", "900000x900000", "--out", "m.npz"],
        "GiB",
    ),
    "zero iterations": (
        ["train", "data.csv", "--size", "2x2", "--iterations", "0", "--out", "m.npz"],
        "--iterations",
    ),
    "unknown backend": (
        ["train", "data.csv", "--size", "2x2", "--backend", "tpu", "--out", "m.npz"],
        "--backend",
    ),
    "missing output folder": (
        ["train", "data.csv", "--size", "2x2", "--out", "nowhere/m.npz"],
        "no directory",
    ),
    "output is a directory": (
        ["train", "data.csv", "--size", "2x2", "--out", "folder.csv"],
        "cannot write folder.csv: it is a directory",
    ),
    "no command": ([], "COMMAND"),
    "unknown option without a command": (["--bogus"], "unrecognized arguments: --bogus"),
    "unknown option before a command": (["-x", "train"], "unrecognized arguments: -x"),
    "csv as a model": (["project", "data.csv", "data.csv", "--out", "c.csv"], "not an .npz"),
    "missing model": (["project", "nothing.npz", "data.csv", "--out", "c.csv"], "nothing.npz"),
    "wrong feature count": (
        ["project", "model.npz", "two.csv", "--out", "c.csv"],
        "two.csv has 2 feature columns; the model has 3 features",
    ),
    "wrong feature count besides labels": (
        ["plot", "model.npz", "--out", "p", "--data", "data.npy", "--labels", "0"],
        "data.npy has 2 feature columns besides the labels column 0; the model has 3 features",
    ),
    "empty npy": (
        ["project", "model.npz", "empty.npy", "--out", "c.csv"],
        "empty.npy holds no data",
    ),
    "negative seed": (
        ["demo", "--seed", "-3", "--out", "d"],
        "argument --seed: expected a non-negative integer, got '-3'",
    ),
    "seed not a number": (
        ["train", "data.csv", "--size", "2x2", "--seed", "x", "--out", "m.npz"],
        "argument --seed: expected a non-negative integer",
    ),
    "labels without data": (["plot", "model.npz", "--out", "p", "--labels", "kind"], "--data"),
    "unknown labels column": (
        ["plot", "model.npz", "--out", "p", "--data", "labelled.csv", "--labels", "colour"],
        "no column 'colour' (its columns are x, y, z, kind)",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_inputs_give_one_line_and_status_2(case, tmp_path, files, capsys, monkeypatch):
    values, _ = files
    monkeypatch.chdir(tmp_path)
    (tmp_path / "folder.csv").mkdir()
    (tmp_path / "nan.csv").write_text("1,2\n3,NaN\n")
    (tmp_path / "empty-cell.csv").write_text("a,b\n1,2\n3,\n")
    (tmp_path / "ragged.csv").write_text("1,2\n3,4,5\n")
    (tmp_path / "binary.csv").write_bytes(b"\xff\xfe\x00\x81\x93" * 10)
    (tmp_path / "header.csv").write_text("a,b\n")
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "data.txt").write_text("1,2\n")
    (tmp_path / "two.csv").write_text("1,2\n3,4\n")
    np.save(tmp_path / "flat.npy", np.arange(4.0))
    np.save(tmp_path / "empty.npy", np.empty((0, 3)))
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}]), allow_pickle=True)
    SOM((2, 2), num_iterations=10, verbose=False).fit(values).save(tmp_path / "model.npz")
    argv, words = BAD_INPUTS[case]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("gpusom") and "Traceback" not in err
    assert words in err
    assert not (tmp_path / "m.npz").exists()


def test_version_prints_the_package_version(capsys):
    import gpusom

    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"gpusom {gpusom.__version__}\n"


def test_a_hexagonal_model_is_trained_and_drawn_as_hexagons(tmp_path, files, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["train", "data.csv", "--size", "4x3", "--hexagonal", "--iterations", "300"]
    assert main([*argv, "--out", "hex.npz"]) == 0
    assert SOM.load("hex.npz").settings_["topology"] == "hexagonal"
    topologies = {}
    for name in ("plot_lattice", "plot_u_matrix", "plot_component_planes", "plot_hit_map"):
        real = getattr(plot, name)

        def recording(*args, real=real, name=name, **kwargs):
            topologies[name] = kwargs["topology"]
            return real(*args, **kwargs)

        monkeypatch.setattr(plot, name, recording)
    assert main(["plot", "hex.npz", "--data", "data.csv", "--out", "pictures"]) == 0
    assert set(topologies.values()) == {"hexagonal"} and len(topologies) == 4
    assert len(list((tmp_path / "pictures").iterdir())) == 4


def test_online_runs_end_with_the_closing_step_unless_finish_none(tmp_path, files, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["train", "data.csv", "--size", "4x5", "--iterations", "300", "--seed", "1"]
    assert main([*argv, "--out", "closed.npz"]) == 0
    assert main([*argv, "--finish", "none", "--out", "plain.npz"]) == 0
    closed, plain = SOM.load("closed.npz"), SOM.load("plain.npz")
    assert closed.settings_["finish"] == "batch" and plain.settings_["finish"] == "none"
    expected = SOM((4, 5), seed=1, verbose=False, finish="batch").train(np.load("data.npy"), 300)
    np.testing.assert_array_equal(closed.lattice_, expected)
    assert not np.array_equal(closed.lattice_, plain.lattice_)


def test_batch_training_with_a_metric_is_kept_in_the_model(tmp_path, files, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["train", "data.csv", "--size", "4x5", "--batch", "--metric", "manhattan", "--seed", "1"]
    assert main([*argv, "--out", "batch.npz"]) == 0
    som = SOM.load("batch.npz")
    assert som.settings_["algorithm"] == "batch" and som.settings_["metric"] == "manhattan"
    assert som.num_iterations_ == 20  # epochs by default
    assert main(["project", "batch.npz", "data.csv", "--out", "bmus.csv"]) == 0
    rows_cols = np.loadtxt("bmus.csv", delimiter=",", skiprows=1, dtype=int)
    np.testing.assert_array_equal(rows_cols, som.transform(np.load("data.npy")))


def test_missing_values_need_nan_policy_ignore_and_then_work_everywhere(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    lines = ["x,y,z,kind", "0.1,0.2,0.3,a", "0.9,,0.7,b", "0.5,0.5,nan,a", "0.2,0.8,0.1,b"]
    (tmp_path / "holes.csv").write_text("\n".join(lines) + "\n")
    features = [line.rsplit(",", 1)[0] for line in lines]
    (tmp_path / "features.csv").write_text("\n".join(features) + "\n")
    argv = ["train", "features.csv", "--size", "3x3", "--seed", "2", "--out", "m.npz"]
    with pytest.raises(ValueError, match=r"line 3: column 'y' is empty.*--nan-policy ignore"):
        read_table("features.csv")
    assert main(argv) == 2
    assert main([*argv, "--nan-policy", "ignore", "--metric", "cosine"]) == 0
    som = SOM.load("m.npz")
    assert som.nan_policy == "ignore" and som.metric == "cosine"
    values, names, _ = read_table("features.csv", allow_missing=True)
    assert names == ["x", "y", "z"] and np.isnan(values[[1, 2], [1, 2]]).all()
    assert main(["project", "m.npz", "features.csv", "--out", "bmus.csv"]) == 0
    rows_cols = np.loadtxt("bmus.csv", delimiter=",", skiprows=1, dtype=int)
    np.testing.assert_array_equal(rows_cols, som.transform(values))
    hits = {}
    real = plot.plot_hit_map

    def recording(*args, **kwargs):
        hits.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(plot, "plot_hit_map", recording)
    argv = ["plot", "m.npz", "--data", "holes.csv", "--labels", "kind", "--out", "pictures"]
    assert main(argv) == 0
    assert hits["metric"] == "cosine" and hits["nan_policy"] == "ignore"
    assert (tmp_path / "pictures" / "labels_map.png").exists()


def test_python_dash_m_gpusom_runs_the_command_line(tmp_path):
    command = [sys.executable, "-m", "gpusom", "--version"]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("gpusom ")


@pytest.mark.parametrize("command", ["project", "plot"])
def test_data_whose_header_names_other_columns_than_the_models_is_refused(
    command, tmp_path, files, capsys, monkeypatch
):
    values, _ = files
    monkeypatch.chdir(tmp_path)
    argv = ["train", "data.csv", "--size", "3x3", "--iterations", "300", "--out", "m.npz"]
    assert main(argv) == 0
    with open(tmp_path / "zyx.csv", "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["z", "y", "x"])
        writer.writerows(values[:, ::-1].tolist())
    capsys.readouterr()
    if command == "project":
        argv = ["project", "m.npz", "zyx.csv", "--out", "bmus.csv"]
    else:
        argv = ["plot", "m.npz", "--data", "zyx.csv", "--out", "pictures"]
    # The columns of zyx.csv are the model's features in another order: taken by position,
    # every sample would land on the cell of another vector.
    assert main(argv) == 2
    status, error = capsys.readouterr().err.splitlines()  # the error in one line, after the status
    assert status == "SOM model loaded from m.npz" and "same order as they were in fit" in error
    assert not (tmp_path / "bmus.csv").exists() and not (tmp_path / "pictures").exists()
    # Data without a header is taken by position, as a numpy array is.
    assert main(["project", "m.npz", "data.npy", "--out", "bmus.csv"]) == 0
