"""The model file (save/load round trips, bad files, atomic saves), resuming a run exactly, and
interrupt-safe training."""

import json
import os
import signal

import numpy as np
import pytest

import gpusom
from gpusom import SOM, _backend
from gpusom._model_file import LEGACY_SETTINGS
from gpusom.io import MODEL_FORMAT


@pytest.fixture
def data(rng):
    return rng.random((120, 3)) * [1.0, 5.0, 20.0]


def trained(data, steps=500, seed=4):
    return SOM((5, 6), num_iterations=steps, seed=seed, verbose=False).fit(data)


def test_round_trip_keeps_everything(tmp_path, data):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(data, columns=["a", "b", "c"])
    som = SOM((5, 6), True, num_iterations=400, normalize=True, sigma=2.0, dtype="float64", seed=3)
    som.set_params(verbose=False).fit(frame)
    path = som.save(tmp_path / "model.npz")
    assert path == str(tmp_path / "model.npz")
    loaded = SOM.load(path)
    assert loaded.get_params() == som.get_params()
    np.testing.assert_array_equal(loaded.lattice_, som.lattice_)
    assert loaded.lattice_.dtype == np.float64
    np.testing.assert_array_equal(loaded.data_min_, som.data_min_)
    np.testing.assert_array_equal(loaded.data_range_, som.data_range_)
    np.testing.assert_array_equal(loaded.feature_names_in_, ["a", "b", "c"])
    assert loaded.settings_ == som.settings_
    assert (loaded.steps_done_, loaded.num_iterations_) == (400, 400)
    assert (loaded.n_features_in_, loaded.backend_) == (3, "cpu")
    np.testing.assert_array_equal(loaded.transform(frame), som.transform(frame))
    assert loaded.topographic_error(data) == som.topographic_error(data)
    assert os.listdir(tmp_path) == ["model.npz"]


@pytest.mark.parametrize("seed", [np.random.default_rng, np.random.SeedSequence, np.random.PCG64])
def test_a_seed_with_a_state_is_stored_as_none_and_the_run_still_resumes(tmp_path, data, seed):
    som = SOM((3, 3), seed=seed(1), verbose=False)
    som.train(data, 300, until=100)
    loaded = SOM.load(som.save(tmp_path / "m.npz"))
    assert loaded.seed is None
    again = SOM((3, 3), seed=seed(1), verbose=False).train(data, 300)
    np.testing.assert_array_equal(loaded.train(data, 300, resume=True), again)


@pytest.mark.parametrize(
    ("dim", "params"),
    [
        (3, {}),
        # the partial distance search path (dim >= 32), a torus, float64 and stored scaling
        (40, {"is_torus": True, "dtype": "float64", "normalize": True}),
        # the closing step runs once, in the call that reaches the last step
        (3, {"finish": "batch", "topology": "hexagonal"}),
    ],
)
def test_resume_through_a_model_file_is_identical(tmp_path, rng, dim, params):
    data = rng.random((150, dim))
    normalize = params.pop("normalize", False)
    whole = SOM((6, 7), seed=9, verbose=False, **params).train(data, 10_000, normalize)

    first = SOM((6, 7), seed=9, verbose=False, **params)
    first.train(data, 10_000, normalize, until=4_000)
    assert first.steps_done_ == 4_000
    first.save(tmp_path / "half.npz")
    resumed = SOM.load(tmp_path / "half.npz")
    lattice = resumed.train(data, 10_000, normalize, resume=True)
    assert resumed.steps_done_ == 10_000
    np.testing.assert_array_equal(lattice, whole)


@pytest.mark.parametrize("finish", ["none", "batch"])
def test_resume_in_several_parts_and_a_finished_run(data, capsys, finish):
    whole = SOM((4, 4), seed=2, finish=finish, verbose=False).train(data, 3_000)
    som = SOM((4, 4), seed=2, finish=finish, verbose=False)
    som.train(data, 3_000, until=1)
    som.train(data, 3_000, resume=True, until=1_777)
    som.train(data, 3_000, resume=True)
    np.testing.assert_array_equal(som.lattice_, whole)
    som.verbose = True
    np.testing.assert_array_equal(som.train(data, 3_000, resume=True), whole)  # nothing to do
    assert "Nothing to resume" in capsys.readouterr().out


def test_the_closing_step_survives_save_and_load_and_runs_at_the_end_only(tmp_path, data):
    som = SOM((5, 6), seed=3, finish="batch", verbose=False)
    som.train(data, 2_000, until=2_000 - 1)
    plain = SOM((5, 6), seed=3, finish="none", verbose=False).train(data, 2_000, until=2_000 - 1)
    np.testing.assert_array_equal(som.lattice_, plain)  # not the last step: no closing step
    loaded = SOM.load(som.save(tmp_path / "closing.npz"))
    assert loaded.finish == loaded.settings_["finish"] == "batch"
    whole = SOM((5, 6), seed=3, finish="batch", verbose=False).train(data, 2_000)
    np.testing.assert_array_equal(loaded.train(data, 2_000, resume=True), whole)
    # a run's own setting decides, as for every other setting
    loaded = SOM.load(som.save(tmp_path / "closing.npz")).set_params(finish="none")
    np.testing.assert_array_equal(loaded.train(data, 2_000, resume=True), whole)
    plain = SOM((5, 6), seed=3, finish="none", verbose=False).train(data, 2_000)
    assert not np.array_equal(whole, plain)


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda som, d: SOM((2, 2)).train(d, 100, resume=True), "holds none"),
        (lambda som, d: som.train(d, 999, resume=True), "run's total, 500"),
        (lambda som, d: som.train(d, 500, normalize=True, resume=True), "normalize=False"),
        (lambda som, d: som.train(d[:, :2], 500, resume=True), "2 features"),
        (
            lambda som, d: som.set_params(nan_policy="ignore").train(d, 500, resume=True),
            "trained with nan_policy='raise'",
        ),
        (lambda som, d: som.train(d, 500, resume=True, until=100), "before the run's step 200"),
        (lambda som, d: som.train(d, 500, until=501), "must not exceed"),
        (lambda som, d: som.train(d, 500, resume="yes"), "resume must be True or False"),
    ],
)
def test_bad_resumes_are_explained(data, call, words):
    som = SOM((3, 3), seed=0, verbose=False)
    som.train(data, 500, until=200)
    before = som.lattice_.copy()
    with pytest.raises((ValueError, TypeError), match=words):
        call(som, data)
    np.testing.assert_array_equal(som.lattice_, before)
    assert som.steps_done_ == 200


def write_archive(path, header, **arrays):
    with open(path, "wb") as stream:
        np.savez(stream, header=np.array(json.dumps(header)), **arrays)


def test_bad_files_give_clear_errors(tmp_path, data):
    good = tmp_path / "good.npz"
    trained(data).save(good)
    raw = good.read_bytes()
    (tmp_path / "truncated.npz").write_bytes(raw[: len(raw) // 2])
    (tmp_path / "text.npz").write_text("row,col\n1,2\n")
    np.save(tmp_path / "lattice.npy", np.zeros((2, 2, 3)))
    np.savez(tmp_path / "plain.npz", lattice=np.zeros((2, 2, 3)))
    header = json.loads(str(np.load(good)["header"]))
    write_archive(tmp_path / "v2.npz", {**header, "version": 2}, lattice=np.zeros((5, 6, 3)))
    write_archive(tmp_path / "other.npz", {**header, "format": "minisom"})
    broken = {**header, "position": {"steps_done": 9, "num_iterations": 3}}
    write_archive(tmp_path / "broken.npz", broken, lattice=np.load(good)["lattice"])
    metric = {**header, "settings": {**header["settings"], "metric": "l2"}}
    write_archive(tmp_path / "metric.npz", metric, lattice=np.load(good)["lattice"])
    names = {**header, "feature_names_in": ["a"]}
    write_archive(tmp_path / "names.npz", names, lattice=np.load(good)["lattice"])
    settings = header["settings"]
    damaged = {
        "no_truncate_entry": {k: v for k, v in settings.items() if k != "truncate"},
        "nan_sigma": {**settings, "sigma": float("nan")},
        "negative_sigma": {**settings, "sigma": -1.0},
        "no_truncate": {**settings, "truncate": 0},
        "extra": {**settings, "radius": 2},
    }
    for name, bad_settings in damaged.items():
        write_archive(tmp_path / f"{name}.npz", {**header, "settings": bad_settings},
                      lattice=np.load(good)["lattice"])  # fmt: skip
    state = {**header["sample_order_state"], "state": {"state": -5, "inc": 1}}
    write_archive(tmp_path / "state.npz", {**header, "sample_order_state": state},
                  lattice=np.load(good)["lattice"])  # fmt: skip
    scaled = SOM((5, 6), num_iterations=500, normalize=True, seed=4, verbose=False).fit(data)
    scaled.save(tmp_path / "scaled.npz")
    scaled_header = json.loads(str(np.load(tmp_path / "scaled.npz")["header"]))
    for name, span in {"nan_range": np.nan, "negative_range": -1.0}.items():
        write_archive(tmp_path / f"{name}.npz", scaled_header, lattice=scaled.lattice_,
                      data_min=scaled.data_min_, data_range=np.full(3, span))  # fmt: skip
    cases = {
        "truncated.npz": "not a readable gpusom model file",
        "text.npz": "not an .npz archive",
        "lattice.npy": "not an .npz archive",
        "plain.npz": "no gpusom header",
        "v2.npz": "format version 2; this gpusom reads version 1 only",
        "other.npz": f"no {MODEL_FORMAT!r} header",
        "broken.npz": "not a valid gpusom model: position 9 of 3",
        "metric.npz": "not a valid gpusom model: its settings: metric must be one of",
        "no_truncate_entry.npz": "the setting truncate is missing",
        "nan_sigma.npz": "its settings: sigma must be",
        "negative_sigma.npz": "its settings: sigma must be",
        "no_truncate.npz": "its settings: truncate must be",
        "extra.npz": "the settings radius are not a run's settings",
        "state.npz": "the sample order state is damaged",
        "nan_range.npz": "the normalisation holds a non-finite minimum or a negative range",
        "negative_range.npz": "the normalisation holds a non-finite minimum or a negative range",
        "names.npz": "not a valid gpusom model: 1 feature names for a lattice of 3 features",
    }
    for name, words in cases.items():
        with pytest.raises(ValueError, match=words):
            SOM.load(tmp_path / name)
    with pytest.raises(FileNotFoundError):
        SOM.load(tmp_path / "missing.npz")


def test_a_file_from_before_an_option_existed_loads_with_the_value_those_runs_had(tmp_path, data):
    # the values of LEGACY_SETTINGS that differ from today's defaults
    som = SOM((5, 6), sigma_decay="exponential", learning_rate_decay="exponential", seed=4,
              finish="none", verbose=False)  # fmt: skip
    som.train(data, 500, until=200)
    path = som.save(tmp_path / "new.npz")
    header = json.loads(str(np.load(path)["header"]))
    old = {k: v for k, v in header["settings"].items() if k not in LEGACY_SETTINGS}
    write_archive(tmp_path / "old.npz", {**header, "settings": old}, lattice=som.lattice_)
    loaded = SOM.load(tmp_path / "old.npz")
    assert loaded.settings_ == som.settings_
    np.testing.assert_array_equal(
        loaded.train(data, 500, resume=True), som.train(data, 500, resume=True)
    )


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()])
def test_saving_is_atomic(tmp_path, data, monkeypatch, error):
    path = tmp_path / "model.npz"
    old = trained(data, seed=1)
    old.save(path)
    before = path.read_bytes()

    def failing_savez(stream, **arrays):
        stream.write(b"half a model")
        raise error

    monkeypatch.setattr(gpusom.io.np, "savez", failing_savez)
    with pytest.raises(type(error)):
        trained(data, seed=2).save(path)
    assert path.read_bytes() == before  # the old model is untouched
    assert os.listdir(tmp_path) == ["model.npz"]  # and no temporary file is left behind
    monkeypatch.undo()
    with pytest.raises(TypeError, match="cannot store"):  # a header that cannot be written
        trained(data).set_params(sigma_end=object()).save(tmp_path / "new.npz")
    assert os.listdir(tmp_path) == ["model.npz"]


def interrupting(monkeypatch, on_call, interrupt):
    """Make the CPU engine's ``on_call``-th slice interrupt training by calling ``interrupt``."""
    engine = _backend.cpu_engine()
    real = engine.train_online
    calls = []

    def train_online(*args):
        calls.append(len(args[2]))
        if len(calls) == on_call:
            return interrupt(real, args)
        return real(*args)

    monkeypatch.setattr(engine, "train_online", train_online)
    monkeypatch.setattr(gpusom._config, "STEPS_PER_SLICE", 700)
    return calls


def raise_inside(real, args):
    raise KeyboardInterrupt


def sigint_after(real, args):
    """A real Ctrl-C arriving while the slice runs: the handler defers it to the slice's end."""
    result = real(*args)
    os.kill(os.getpid(), signal.SIGINT)
    return result


@pytest.fixture
def default_sigint():
    """Python's own SIGINT handler, which training defers, also where the tests were started
    with SIGINT ignored (a shell's background job)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize(("interrupt", "slices_done"), [(raise_inside, 2), (sigint_after, 3)])
def test_interrupted_training_is_consistent_and_resumes_exactly(
    tmp_path, data, monkeypatch, default_sigint, interrupt, slices_done
):
    whole = SOM((5, 6), seed=8, verbose=False).train(data, 10_000)
    calls = interrupting(monkeypatch, 3, interrupt)
    som = SOM((5, 6), seed=8, verbose=False)
    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt, match=r"interrupted at step [\d,]+ of 10,000") as caught:
        som.train(data, 10_000)
    assert "resume=True" in str(caught.value)
    assert signal.getsignal(signal.SIGINT) is handler  # restored
    monkeypatch.undo()
    assert som.steps_done_ == sum(calls[:slices_done]) < 10_000
    # consistent: the lattice is exactly that of a run stopped at the same step
    stopped = SOM((5, 6), seed=8, verbose=False).train(data, 10_000, until=som.steps_done_)
    np.testing.assert_array_equal(som.lattice_, stopped)
    som.save(tmp_path / "interrupted.npz")
    resumed = SOM.load(tmp_path / "interrupted.npz").train(data, 10_000, resume=True)
    np.testing.assert_array_equal(resumed, whole)


def test_an_interrupted_first_slice_leaves_a_previous_model_resumable(data, monkeypatch):
    som = SOM((5, 6), seed=8, verbose=False)
    som.train(data, 2_000, until=500)
    interrupting(monkeypatch, 1, raise_inside)
    with pytest.raises(KeyboardInterrupt, match="step 500 of 2,000"):
        som.train(data, 2_000, resume=True)
    monkeypatch.undo()
    assert som.steps_done_ == 500
    whole = SOM((5, 6), seed=8, verbose=False).train(data, 2_000)
    np.testing.assert_array_equal(som.train(data, 2_000, resume=True), whole)


def test_ctrl_c_in_the_last_slice_still_gets_the_closing_step(data, monkeypatch, default_sigint):
    whole = SOM((5, 6), seed=8, finish="batch", verbose=False).train(data, 700)
    monkeypatch.setattr(gpusom._config, "FIRST_SLICE_STEPS", 700)
    interrupting(monkeypatch, 1, sigint_after)  # one slice of 700 steps: the whole run
    som = SOM((5, 6), seed=8, finish="batch", verbose=False)
    with pytest.raises(KeyboardInterrupt, match="step 700 of 700"):
        som.train(data, 700)
    # the run reached its end, so resuming has nothing left to do: the step ran already
    np.testing.assert_array_equal(som.lattice_, whole)
