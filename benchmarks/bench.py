"""Time gpusom against the peers numbasom and MiniSom, side by side, and print a markdown table.

Run from the repository root::

    python benchmarks/bench.py                       # every workload, every library
    python benchmarks/bench.py --workloads a --repeat 3 --backend cpu --json out/bench.json

Peers: ``pip install -r benchmarks/requirements.txt``. gpusom is imported from this checkout
(or wherever it is installed); while it is not importable the script runs the peers only.

Workloads (all data from fixed seeds, float64):

- ``a-plane`` / ``a-torus`` (``a`` = both): the walk-through. 200 vectors uniform in [0, 1)^3
  (``numpy.random.default_rng(0).random((200, 3))``), 50x100 lattice, 15,000 iterations.
  MiniSom 2.x has no torus topology: n/a.
- ``b``: 10,000 samples of 64-d clustered data, 40x40 lattice, 100,000 iterations (plane).
  Generator (``clustered``): 20 centres uniform in [0, 1)^64 (``default_rng(0)``); each sample is
  a uniformly chosen centre plus isotropic Gaussian noise, standard deviation 0.05
  (``default_rng(1)``).
- ``L``: the large lattice, 20,000 samples of 32-d clustered data (same generator), 200x200
  lattice (more cells than samples), 50,000 iterations (plane); not in the default set.
- ``L8``: the same at 8 features (``clustered(20_000, dim=8)``), where every feature is in the
  head of gpusom's CPU search; not in the default set.
- ``c``: projection, the BMUs of 100,000 samples (``clustered``, sample seed 2) on a 40x40x64
  lattice made of 1,600 further samples of the same clusters (sample seed 3), i.e. a "sample"
  initialised map. gpusom.find_bmus against a plain numpy reference (squared-norm trick and
  argmin, float64, chunked), numbasom.project_on_lattice and MiniSom's per-sample ``winner`` loop.
  numbasom's call is skipped when its time on 1,000 samples, scaled up, exceeds ``--max-seconds``
  (60 s); MiniSom's loop is abandoned, with an estimate, once it runs past that budget.

What is measured. Every (workload, library) pair runs in its own fresh Python process, so
"first call" really is the first call in the process: a short call of the same entry point
(the workload's data on the workload's lattice, 20 iterations, same topology; for ``c`` the
full lattice and 8 samples), which includes numba's compilation or its cache load (use
``--cold-cache`` to force compilation). The lattice and the data are the workload's, not small
ones, because their sizes pick what compiles: with a small lattice a cold cache put L's boxed
search's compilation into the timed call, and with 8 samples the closing step's search of all
the samples (its re-rank on (b), 0.6 s). Then the real call is timed ``--repeat`` times and the
best is reported; for training the timed call is construction + initialisation + training.
``--rounds N`` runs every library of a workload N times in turn (round 1: gpusom, numbasom, ...;
round 2: the same again), each time in a fresh process: the table gives each library's best
time over all rounds, and a list below it the ratios to gpusom round by round with their
median. On a machine whose speed drifts over minutes (shared caches of a virtual machine), a
ratio of two runs a minute apart is fairer than one of bests taken at different times.
Quality is computed for every library's lattice by the same function, gpusom's
``quantization_error`` / ``topographic_error`` when gpusom is importable, otherwise the local
exact float64 fallback below (``--local-metrics`` forces it): QE is the mean Euclidean distance
of each sample to its BMU; TE the fraction of samples whose best and second-best BMUs are not
8-neighbours on the grid (wrapping on a torus). For ``c`` QE is the mean distance of each sample
to the BMU the library reported, and the notes give the agreement with the numpy reference.

Library settings:

- gpusom: ``SOM((rows, cols), is_torus=..., seed=0, verbose=False, backend=--backend)``, all
  training parameters at gpusom's defaults. ``--gpusom-settings JSON`` adds a row
  ("gpusom-settings") trained with those ``SOM`` keyword arguments as well, in the same run:
  ``--gpusom-settings '{"finish": "batch", "sigma_end": 0.85}'``.
- numbasom: its only settings (radius from half the larger lattice side, lr 0.1, exponential
  decays, uniform [0, 1) init); numba's RNG seeded with 0; its timing lines are suppressed.
- MiniSom ("minisom"): ``sigma = max(rows, cols) / 4`` decaying to 1
  (``sigma_decay_function="inverse_decay_to_one"``), ``learning_rate=0.5`` with MiniSom's
  default asymptotic decay, Gaussian neighbourhood, ``random_weights_init(data)`` (codebook
  drawn from the samples), ``train(data, T, random_order=True)``, ``random_seed=0``. Its
  defaults (sigma=1, weights random unit vectors) leave a 50x100 map unordered; add them as a
  second row ("minisom-default") with ``--minisom-defaults``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.metadata
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
# This checkout's gpusom, also in the worker processes and where another checkout is installed
# (an editable install would otherwise win): A/B runs of two trees time the tree they run from.
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
SEED = 0
PROBE_SAMPLES = 1_000

WORKLOADS = {
    "a-plane": {"kind": "train", "shape": (50, 100), "iterations": 15_000, "torus": False},
    "a-torus": {"kind": "train", "shape": (50, 100), "iterations": 15_000, "torus": True},
    "b": {"kind": "train", "shape": (40, 40), "iterations": 100_000, "torus": False},
    # the large lattice: more cells than samples, a 5 MB float32 codebook read every step
    "L": {"kind": "train", "shape": (200, 200), "iterations": 50_000, "torus": False},
    # the same lattice at 8 features: every feature in the head, the boxed search without a tail
    "L8": {"kind": "train", "shape": (200, 200), "iterations": 50_000, "torus": False},
    "c": {"kind": "project", "shape": (40, 40), "n": 100_000},
}
ALIASES = {"a": ["a-plane", "a-torus"]}
DEFAULT_REPEAT = {"a-plane": 3, "a-torus": 3, "b": 1, "L": 1, "L8": 1, "c": 1}
TRAIN_LIBS = ["gpusom", "numbasom", "minisom", "minisom-default"]
PROJECT_LIBS = ["gpusom", "numpy", "numbasom", "minisom"]


# --------------------------------------------------------------------------- data


def clustered(n, dim=64, k=20, spread=0.05, sample_seed=1, centre_seed=0):
    """``n`` samples around ``k`` centres uniform in [0, 1)^dim, Gaussian noise of std ``spread``.

    Centres and samples come from separate seeds, so other sample seeds give more draws from the
    same clusters.
    """
    centres = np.random.default_rng(centre_seed).random((k, dim))
    rng = np.random.default_rng(sample_seed)
    labels = rng.integers(k, size=n)
    return centres[labels] + rng.normal(scale=spread, size=(n, dim))


def workload_data(name):
    """The samples of a workload (and, for ``c``, the lattice to project on)."""
    if name.startswith("a-"):
        return np.random.default_rng(SEED).random((200, 3)), None
    if name == "b":
        return clustered(10_000, sample_seed=1), None
    if name == "L":
        return clustered(20_000, dim=32, sample_seed=1), None
    if name == "L8":
        return clustered(20_000, dim=8, sample_seed=1), None
    rows, cols = WORKLOADS["c"]["shape"]
    lattice = clustered(rows * cols, sample_seed=3).reshape(rows, cols, -1)
    return clustered(WORKLOADS["c"]["n"], sample_seed=2), lattice


# --------------------------------------------------------------------------- metrics


def _two_best(data, cells, max_elements=4_000_000):
    """Flat indices of the best and second-best cells of every sample: exact float64, ties to the
    lowest index, differences taken directly (no norm trick), chunked to bound memory."""
    out = np.empty((len(data), 2), dtype=np.int64)
    chunk = max(1, max_elements // cells.size)
    for start in range(0, len(data), chunk):
        x = data[start : start + chunk]
        diff = x[:, None, :] - cells[None, :, :]
        d = np.einsum("ijk,ijk->ij", diff, diff)
        rows = np.arange(len(x))
        best = d.argmin(axis=1)
        d[rows, best] = np.inf
        out[start : start + chunk, 0] = best
        out[start : start + chunk, 1] = d.argmin(axis=1)
    return out


def local_quantization_error(data, lattice):
    data = np.asarray(data, dtype=np.float64)
    cells = np.asarray(lattice, dtype=np.float64).reshape(-1, data.shape[1])
    best = _two_best(data, cells)[:, 0]
    return float(np.linalg.norm(data - cells[best], axis=1).mean())


def local_topographic_error(data, lattice, is_torus=False):
    data = np.asarray(data, dtype=np.float64)
    rows, cols, dim = np.shape(lattice)
    cells = np.asarray(lattice, dtype=np.float64).reshape(-1, dim)
    two = _two_best(data, cells)
    r, c = np.divmod(two, cols)
    dr = np.abs(r[:, 0] - r[:, 1])
    dc = np.abs(c[:, 0] - c[:, 1])
    if is_torus:
        dr = np.minimum(dr, rows - dr)
        dc = np.minimum(dc, cols - dc)
    return float(np.mean((dr > 1) | (dc > 1)))


def import_gpusom():
    """gpusom's module, or the reason it cannot be used."""
    try:
        import gpusom
        from gpusom import SOM, find_bmus, quantization_error, topographic_error  # noqa: F401
    except Exception as exc:  # a half-written package fails in many ways
        return None, f"{type(exc).__name__}: {exc}"
    return gpusom, None


def metric_functions(source):
    if source == "gpusom":
        gpusom, _ = import_gpusom()
        return gpusom.quantization_error, gpusom.topographic_error
    return local_quantization_error, local_topographic_error


# --------------------------------------------------------------------------- libraries


class OverBudget(Exception):
    """A per-sample loop ran past ``--max-seconds``: args are (samples done, seconds)."""


def _seed_numba(seed):
    import numba

    @numba.njit
    def seed_it(s):
        np.random.seed(s)  # noqa: NPY002  numba's RNG (numbasom uses it) has only this API

    seed_it(seed)


def train_gpusom(data, shape, iterations, torus, opts, settings=None):
    from gpusom import SOM

    settings = settings or {}
    som = SOM(shape, is_torus=torus, seed=SEED, verbose=False, backend=opts["backend"], **settings)
    lattice = som.train(data, iterations)
    ran = getattr(som, "backend_", None) or getattr(som, "backend", "?")
    named = ", ".join(f"{key}={value!r}" for key, value in settings.items()) or "defaults"
    return lattice, f"{named}, backend={ran}"


def train_numbasom(data, shape, iterations, torus, opts):
    import numbasom

    with contextlib.redirect_stdout(io.StringIO()):
        lattice = numbasom.SOM(som_size=shape, is_torus=torus).train(data, iterations)
    return lattice, "its fixed schedule (r0=max/2, lr 0.1)"


def train_minisom(data, shape, iterations, torus, opts, defaults=False):
    from minisom import MiniSom

    if torus:
        return None, "n/a: MiniSom has no torus topology"
    rows, cols = shape
    if defaults:
        som = MiniSom(rows, cols, data.shape[1], random_seed=SEED)
        settings = "defaults: sigma=1, lr=0.5, unit-vector init"
    else:
        sigma = max(rows, cols) / 4
        som = MiniSom(
            rows,
            cols,
            data.shape[1],
            sigma=sigma,
            learning_rate=0.5,
            sigma_decay_function="inverse_decay_to_one",
            random_seed=SEED,
        )
        som.random_weights_init(data)
        settings = f"sigma={sigma:g}->1, lr=0.5, sample init"
    with contextlib.redirect_stdout(io.StringIO()):
        som.train(data, iterations, random_order=True)
    return som.get_weights(), settings


TRAINERS = {
    "gpusom": train_gpusom,
    "gpusom-settings": lambda *a: train_gpusom(*a, settings=a[-1]["gpusom_settings"]),
    "numbasom": train_numbasom,
    "minisom": train_minisom,
    "minisom-default": lambda *a: train_minisom(*a, defaults=True),
}


def numpy_bmus(data, lattice, chunk=2048):
    """Reference BMU search: ||x||^2 - 2 x.w + ||w||^2 in float64, argmin per chunk."""
    cells = np.asarray(lattice, dtype=np.float64).reshape(-1, lattice.shape[-1])
    cell_sq = np.einsum("ij,ij->i", cells, cells)
    out = np.empty(len(data), dtype=np.int64)
    for start in range(0, len(data), chunk):
        x = data[start : start + chunk]
        out[start : start + chunk] = np.argmin(cell_sq - 2.0 * (x @ cells.T), axis=1)
    return out


def project_gpusom(data, lattice, opts):
    from gpusom import find_bmus

    rc = np.asarray(find_bmus(data, lattice))
    return rc[:, 0] * lattice.shape[1] + rc[:, 1]


def project_numbasom(data, lattice, opts):
    import numbasom

    labels = list(range(len(data)))
    with contextlib.redirect_stdout(io.StringIO()):
        projected = numbasom.project_on_lattice(data, lattice, additional_list=labels)
    out = np.empty(len(data), dtype=np.int64)
    for (r, c), members in projected.items():
        out[members] = r * lattice.shape[1] + c
    return out


def project_minisom(data, lattice, opts):
    from minisom import MiniSom

    rows, cols, dim = lattice.shape
    som = MiniSom(rows, cols, dim, random_seed=SEED)
    som._weights = np.array(lattice, dtype=np.float64)  # 2.3.6 has no public setter
    limit = opts.get("max_seconds", np.inf)
    out = np.empty(len(data), dtype=np.int64)
    start = time.perf_counter()
    for i, x in enumerate(data):
        r, c = som.winner(x)
        out[i] = r * cols + c
        if i % PROBE_SAMPLES == PROBE_SAMPLES - 1 and time.perf_counter() - start > limit:
            raise OverBudget(i + 1, time.perf_counter() - start)
    return out


PROJECTORS = {
    "gpusom": (project_gpusom, "find_bmus"),
    "numpy": (lambda d, lat, o: numpy_bmus(d, lat), "norm trick + argmin, float64"),
    "numbasom": (project_numbasom, "project_on_lattice"),
    "minisom": (project_minisom, "winner() per sample"),
}
# One monolithic call: estimated from PROBE_SAMPLES first. (MiniSom's loop checks the budget
# itself every PROBE_SAMPLES samples and raises OverBudget.)
PROBED = {"numbasom"}


# --------------------------------------------------------------------------- worker


def _timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - start, result


def run_worker(spec):
    """One (workload, library) pair in this process; returns the row as a dict."""
    name, lib, repeat = spec["workload"], spec["lib"], spec["repeat"]
    work = WORKLOADS[name]
    data, lattice = workload_data(name)
    row = {"workload": name, "library": lib, "repeat": repeat}
    if lib == "numbasom":
        _seed_numba(SEED)

    if work["kind"] == "train":
        train = TRAINERS[lib]
        args = (work["shape"], work["iterations"], work["torus"], spec)
        # the workload's lattice and data: their sizes pick the compiled paths (L's boxed
        # search, the closing step's search of every sample)
        first_call, (warm, settings) = _timed(train, data, work["shape"], 20, work["torus"], spec)
        row["settings"] = settings
        if warm is None:
            row["skipped"] = settings
            return row
        row["first_call_s"] = first_call
        times = []
        for _ in range(repeat):
            if lib == "numbasom":
                _seed_numba(SEED)
            seconds, (result, settings) = _timed(train, data, *args)
            times.append(seconds)
        result = np.asarray(result)
        qe_fn, te_fn = metric_functions(spec["metrics"])
        row.update(
            settings=settings,
            times_s=times,
            time_s=min(times),
            qe=float(qe_fn(data, result)),
            te=float(te_fn(data, result, is_torus=work["torus"])),
        )
        return row

    project, settings = PROJECTORS[lib]
    row["settings"] = settings
    row["first_call_s"], _ = _timed(project, data[:8], lattice, spec)
    if lib in PROBED:
        probe, _ = _timed(project, data[:PROBE_SAMPLES], lattice, spec)
        estimate = probe * len(data) / PROBE_SAMPLES
        row["estimate_s"] = estimate
        if estimate > spec["max_seconds"]:
            row["skipped"] = (
                f"skipped: estimated {estimate:.0f} s > {spec['max_seconds']:g} s "
                f"(from {PROBE_SAMPLES} samples)"
            )
            return row
    times = []
    for _ in range(repeat):
        try:
            seconds, bmus = _timed(project, data, lattice, spec)
        except OverBudget as over:
            done, seconds = over.args
            row["estimate_s"] = seconds * len(data) / done
            row["skipped"] = (
                f"skipped: over {spec['max_seconds']:g} s ({done} samples in {seconds:.0f} s, "
                f"estimated {row['estimate_s']:.0f} s for all)"
            )
            return row
        times.append(seconds)
    bmus = np.asarray(bmus, dtype=np.int64)
    cells = lattice.reshape(-1, lattice.shape[-1])
    np.save(spec["bmus_path"], bmus)
    row.update(
        times_s=times,
        time_s=min(times),
        qe=float(np.linalg.norm(data - cells[bmus], axis=1).mean()),
    )
    return row


# --------------------------------------------------------------------------- driver


def version_of(dist):
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def cpu_model():
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def gpu_names():
    if shutil.which("nvidia-smi") is None:
        return "none found (no nvidia-smi)"
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    except (subprocess.SubprocessError, OSError) as exc:
        return f"nvidia-smi failed: {exc}"
    return "; ".join(line.strip() for line in out.splitlines() if line.strip()) or "none"


def host_info():
    """The date, the machine and its load, Python and numpy: what every benchmark records."""
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "load_average_1_5_15": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "python": platform.python_version(),
        "numpy": np.__version__,
    }


def machine_info(gpusom, gpusom_error):
    import numba

    return {
        **host_info(),
        "gpu": gpu_names(),
        "numba": numba.__version__,
        "gpusom": getattr(gpusom, "__version__", "?") if gpusom else f"unavailable: {gpusom_error}",
        "numbasom": version_of("numbasom"),
        "minisom": version_of("minisom"),
    }


def run_pair(spec, args, scratch):
    """Run one pair in a fresh interpreter; the row, or an error row."""
    out_path = scratch / f"{spec['workload']}-{spec['lib']}.json"
    spec = {**spec, "out": str(out_path), "bmus_path": str(out_path.with_suffix(".npy"))}
    env = dict(os.environ)
    if args.cold_cache:
        env["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="numba-cache-", dir=scratch)
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(spec)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if proc.returncode != 0 or not out_path.exists():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {
            "workload": spec["workload"],
            "library": spec["lib"],
            "error": " | ".join(tail) or f"exit {proc.returncode}",
        }
    return json.loads(out_path.read_text())


def merged_rounds(runs):
    """One row from a library's rounds: the first round's, with every round's timed calls,
    the best of them as ``time_s`` and each round's best in ``round_times_s``; a round that
    failed or was skipped stands for them all."""
    for row in runs:
        if "time_s" not in row:
            return row
    row = dict(runs[0])  # its first call is the one that found the cache as it was
    row["round_times_s"] = [r["time_s"] for r in runs]
    row["times_s"] = [t for r in runs for t in r["times_s"]]
    row["time_s"] = min(row["round_times_s"])
    return row


def print_round_ratios(rows):
    """Each library's time over gpusom's, round by round: the runs of one round are minutes
    apart at most, so on a machine whose speed drifts these pairs are the fairer ratios."""
    gpusom = {
        r["workload"]: r["round_times_s"]
        for r in rows
        if r["library"] == "gpusom" and "round_times_s" in r
    }
    lines = []
    for r in rows:
        if r["library"] == "gpusom" or r["workload"] not in gpusom or "round_times_s" not in r:
            continue
        ratios = [t / g for t, g in zip(r["round_times_s"], gpusom[r["workload"]], strict=True)]
        listed = ", ".join(f"{x:.1f}x" for x in ratios)
        lines.append(
            f"- {r['workload']} / {r['library']}: {listed}; median {np.median(ratios):.1f}x"
        )
    if lines:
        print("\nTime / gpusom by round (each round runs every library once, in turn):\n")
        print("\n".join(lines))


def fmt(value, spec):
    return "—" if value is None else format(value, spec)


def print_table(rows):
    print("| workload | library | settings | time (s) | first call (s) | QE | TE | time / gpusom |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |")
    base = {r["workload"]: r["time_s"] for r in rows if r["library"] == "gpusom" and "time_s" in r}
    notes = []
    for r in rows:
        name, lib = r["workload"], r["library"]
        if "error" in r:
            print(f"| {name} | {lib} | error | — | — | — | — | — |")
            notes.append(f"{name} / {lib}: {r['error']}")
            continue
        if "skipped" in r:
            print(
                f"| {name} | {lib} | {r['skipped']} | — | {fmt(r.get('first_call_s'), '.3f')} "
                "| — | — | — |"
            )
            continue
        ratio = r["time_s"] / base[name] if name in base else None
        print(
            f"| {name} | {lib} | {r['settings']} | {r['time_s']:.3f} | "
            f"{r['first_call_s']:.3f} | {r['qe']:.5f} | {fmt(r.get('te'), '.4f')} | "
            f"{fmt(ratio, '.2f')} |"
        )
        if "agreement" in r:
            notes.append(
                f"{name} / {lib}: BMUs equal to the numpy reference for "
                f"{100 * r['agreement']:.4f} % of samples"
            )
    if notes:
        print()
        for note in notes:
            print(f"- {note}")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--workloads",
        default="a,b,c",
        help="comma list of a (= a-plane,a-torus), a-plane, a-torus, b, L, L8, c",
    )
    parser.add_argument(
        "--libs",
        default="gpusom,numbasom,minisom,numpy",
        help="comma list of gpusom, numbasom, minisom, numpy (numpy: c only)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=None,
        help="report the best of N timed calls (default: 3 for a, 1 for b and c)",
    )
    parser.add_argument(
        "--backend",
        choices=["auto", "cpu", "cuda"],
        default="auto",
        help="gpusom's SOM(backend=...)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run every library of a workload N times in turn (paired ratios by round)",
    )
    parser.add_argument("--json", metavar="PATH", help="also write machine info and rows as JSON")
    parser.add_argument(
        "--gpusom-settings",
        metavar="JSON",
        type=json.loads,
        help="also train gpusom with these SOM keyword arguments (a 'gpusom-settings' row)",
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=60.0,
        help="skip a per-sample projection loop whose estimate exceeds this",
    )
    parser.add_argument(
        "--minisom-defaults",
        action="store_true",
        help="add a MiniSom row with its default sigma / lr / init",
    )
    parser.add_argument(
        "--local-metrics",
        action="store_true",
        help="compute QE / TE with the local numpy code even if gpusom imports",
    )
    parser.add_argument(
        "--cold-cache",
        action="store_true",
        help="give every process an empty NUMBA_CACHE_DIR: first call compiles",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    names = []
    for item in filter(None, (s.strip() for s in args.workloads.split(","))):
        for name in ALIASES.get(item, [item]):
            if name not in WORKLOADS:
                parser.error(f"--workloads: unknown workload {item!r}")
            if name not in names:
                names.append(name)
    args.workloads = names
    args.libs = [s.strip() for s in args.libs.split(",") if s.strip()]
    unknown = set(args.libs) - {"gpusom", "numbasom", "minisom", "numpy"}
    if unknown:
        parser.error(f"--libs: unknown {sorted(unknown)}")
    if args.repeat is not None and args.repeat < 1:
        parser.error("--repeat must be >= 1")
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        spec = json.loads(args.worker)
        Path(spec["out"]).write_text(json.dumps(run_worker(spec)))
        return

    gpusom, gpusom_error = import_gpusom()
    metrics = "gpusom" if gpusom is not None and not args.local_metrics else "local"
    info = machine_info(gpusom, gpusom_error)
    print("# gpusom benchmark\n")
    for key, value in info.items():
        print(f"- {key}: {value}")
    print(f"- gpusom backend option: {args.backend}; QE/TE computed by: {metrics}\n", flush=True)

    rows = []
    with tempfile.TemporaryDirectory(prefix="gpusom-bench-") as tmp:
        scratch = Path(tmp)
        for name in args.workloads:
            work = WORKLOADS[name]
            libs = PROJECT_LIBS if work["kind"] == "project" else TRAIN_LIBS
            chosen = [lib for lib in libs if lib.split("-")[0] in args.libs]
            if not args.minisom_defaults:
                chosen = [lib for lib in chosen if lib != "minisom-default"]
            if args.gpusom_settings and "gpusom" in chosen and work["kind"] == "train":
                chosen.insert(chosen.index("gpusom") + 1, "gpusom-settings")
            rounds = {lib: [] for lib in chosen}
            for round_number in range(args.rounds):
                for lib in chosen:
                    if lib.startswith("gpusom") and gpusom is None:
                        rounds[lib].append(
                            {"workload": name, "library": lib, "skipped": "not importable"}
                        )
                        continue
                    spec = {
                        "workload": name,
                        "lib": lib,
                        "repeat": args.repeat or DEFAULT_REPEAT[name],
                        "backend": args.backend,
                        "metrics": metrics,
                        "max_seconds": args.max_seconds,
                        "gpusom_settings": args.gpusom_settings,
                    }
                    print(
                        f"running {name} / {lib} (round {round_number + 1}) ...",
                        file=sys.stderr,
                        flush=True,
                    )
                    rounds[lib].append(run_pair(spec, args, scratch))
            rows.extend(merged_rounds(runs) for runs in rounds.values())
            if work["kind"] == "project":
                ref_path = scratch / f"{name}-numpy.npy"
                if ref_path.exists():
                    ref = np.load(ref_path)
                    for r in rows:
                        path = scratch / f"{name}-{r['library']}.npy"
                        if r["workload"] == name and "time_s" in r and path.exists():
                            r["agreement"] = float(np.mean(np.load(path) == ref))
    print_table(rows)
    if args.rounds > 1:
        print_round_ratios(rows)
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": info, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
