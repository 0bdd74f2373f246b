"""What training prints: the timing line, a progress bar for long runs, nothing when quiet."""

import io
import sys

import numpy as np
import pytest

import gpusom
from gpusom import SOM


@pytest.fixture
def data(rng):
    return rng.random((50, 3))


class Terminal(io.StringIO):
    """A captured stream that says it is a terminal."""

    def isatty(self):
        return True


def test_long_runs_show_a_progress_bar_on_a_terminal(data, capsys, monkeypatch):
    # The bar appears once a run has taken PROGRESS_MIN_SECONDS: 0 makes every run long.
    monkeypatch.setattr(gpusom._config, "PROGRESS_MIN_SECONDS", 0.0)
    monkeypatch.setattr(gpusom._config, "STEPS_PER_SLICE", 256)
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    SOM((4, 4), seed=0).train(data, 2_000)
    bar = terminal.getvalue()
    assert "SOM training: 100%" in bar
    assert "2.00k/2.00k" in bar and "step/s" in bar
    assert capsys.readouterr().out.startswith("SOM training took: ")


def test_no_progress_bar_where_stderr_is_not_a_terminal(data, capsys, monkeypatch):
    monkeypatch.setattr(gpusom._config, "PROGRESS_MIN_SECONDS", 0.0)
    SOM((4, 4), seed=0).train(data, 2_000)
    assert capsys.readouterr().err == ""


def test_the_rate_counts_the_whole_run(data, monkeypatch):
    """The bar's rate is steps over the time since the run began (a slow first slice counted)."""
    monkeypatch.setattr(gpusom._config, "PROGRESS_MIN_SECONDS", 0.0)
    monkeypatch.setattr(gpusom._config, "STEPS_PER_SLICE", 500)
    bars = []
    real = gpusom._training._progress_bar

    def keep(*args):
        bars.append(real(*args))
        return bars[-1]

    monkeypatch.setattr(gpusom._training, "_progress_bar", keep)
    monkeypatch.setattr(sys, "stderr", Terminal())
    SOM((4, 4), seed=0).train(data, 2_000)
    assert bars[0].smoothing == 0  # tqdm then shows n / elapsed since the bar's start
    assert bars[0].n == 2_000


def test_short_runs_print_only_the_timing_line(data, capsys, monkeypatch):
    monkeypatch.setattr(gpusom._config, "PROGRESS_MIN_SECONDS", float("inf"))
    SOM((4, 4), seed=0).train(data, 2_000, normalize=True)
    captured = capsys.readouterr()
    assert captured.err == ""
    lines = captured.out.splitlines()
    assert [line.split(" took:")[0] for line in lines] == ["Data scaling", "SOM training"]


def test_quiet_runs_print_nothing(data, capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(gpusom._config, "PROGRESS_MIN_SECONDS", 0.0)
    som = SOM((4, 4), num_iterations=2_000, seed=0, verbose=False).fit(data)
    SOM.load(som.save(tmp_path / "m.npz")).predict(data)
    assert capsys.readouterr() == ("", "")


def test_slices_follow_the_pace_and_never_change_the_result(data, monkeypatch):
    sizes = []
    engine = gpusom._backend.cpu_engine()
    real = engine.train_online

    def recording(*args):
        sizes.append(len(args[2]))
        return real(*args)

    whole = SOM((4, 4), seed=1, verbose=False).train(data, 5_000)
    monkeypatch.setattr(engine, "train_online", recording)
    monkeypatch.setattr(gpusom._config, "FIRST_SLICE_STEPS", 100)
    monkeypatch.setattr(gpusom._config, "SLICE_SECONDS", 1e-9)  # pace: one step per slice
    sliced = SOM((4, 4), seed=1, verbose=False).train(data, 5_000)
    assert sizes[0] == 100 and sizes[1] == 1 and sum(sizes) == 5_000
    np.testing.assert_array_equal(sliced, whole)
