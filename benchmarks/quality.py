"""Map quality panel: gpusom and its peers trained on the same data sets, scored the same way.

Run from the repository root::

    python benchmarks/quality.py --json out/panel.json              # every set, every library
    python benchmarks/quality.py --libs gpusom --reference out/panel.json \\
        --gpusom-settings '{"sigma_end": 1.0}' '{"sigma_end": 1.0, "init": "pca"}'

The defaults of gpusom are chosen on this panel: topographic error (TE, order) and quantization
error (QE, fit) together, plus two measures of the walk-through's colour map that catch cells
collapsing onto single samples (flat tiles), which QE alone rewards.

Data sets (all planes, ``is_torus=False``; lattice sizes follow the 5 * sqrt(n) cells rule for
the scikit-learn sets, the others are the benchmark workloads):

- ``colors``: the walk-through. 200 colours uniform in [0, 1)^3
  (``numpy.random.default_rng(0).random((200, 3))``), 50x100 lattice, 15,000 steps.
- ``mixture``: bench.py's workload (b), ``bench.clustered(10_000)`` (10,000 x 64-d, 20 clusters,
  noise 0.05), 40x40 lattice, 100,000 steps.
- ``iris`` (150 x 4, 7x9, 30,000 steps), ``wine`` (178 x 13, 7x10, 35,000 steps),
  ``breast_cancer`` (569 x 30, 9x13, 60,000 steps), ``digits`` (1,797 x 64, 12x18, 180,000 steps)
  from scikit-learn, each feature standardised (zero mean, unit variance; constant features
  left at 0). Steps: about max(100 n, 500 cells), rounded.

Measures, for every library's lattice as a (rows, cols, dim) array: QE and TE by gpusom's exact
``quantization_error`` / ``topographic_error`` (8-neighbours, plane); over the 4-neighbour cell
pairs (right and down) the share of pairs closer than 1e-3 ("flat", collapsed tiles) and the
ratio of the 99th to the 50th percentile of their distances ("p99/p50", sharp seams); the wall
time of construction + initialisation + training (after a tiny warm-up call for the numba
libraries, so compilation or the cache load is not counted).

Library settings (each run in its own fresh process, like bench.py; ``--timeout`` caps each):

- ``gpusom``: ``SOM((rows, cols), is_torus=False, seed=S, verbose=False, backend="cpu")`` plus
  the settings given (none: the current defaults), ``train(data, steps)``. ``--gpusom-settings``
  takes one or more JSON objects of SOM parameters (``sigma``, ``sigma_end``, ``learning_rate``,
  ``learning_rate_end``, ``neighborhood``, ``truncate``, ``init``, ...) and two keys of this
  script: ``"steps"`` (``"fit"``: the step count of ``SOM.fit``, max(10 n, 10 cells); or a
  factor of the panel's step count), ``"when_sparse"`` (settings that override the others on
  data sets with fewer samples than cells, i.e. the walk-through: a default that depends on the
  samples per cell) and ``"name"`` (the row's label). ``--seeds`` trains each
  gpusom row on several seeds and reports the means (the peers run once, seed 0, unless
  ``--peer-seeds``; somoclu draws its init in its C++ code, which cannot be seeded from Python,
  so its repeats differ).
- ``numbasom``: its only settings (radius from half the larger side, lr 0.1, exponential decays,
  uniform [0, 1) init); numba's RNG seeded with 0.
- ``minisom``: bench.py's settings: sigma = max(rows, cols) / 4 decaying to 1
  (``inverse_decay_to_one``), learning rate 0.5 with its asymptotic decay, Gaussian,
  ``random_weights_init(data)``, ``train(data, steps, random_order=True)``, seed 0.
- ``xpysom`` (batch, numpy backend): its constructor defaults (sigma = min(rows, cols) / 2 to 1,
  ``std_coeff`` 0.5, i.e. Gaussian standard deviation sigma / 2; exponential decay; Gaussian),
  ``random_weights_init(data)``, seed 0, ``train(data, E)`` with E = max(10, steps / n) epochs:
  as many sample presentations as the online libraries, at least 10 epochs.
- ``somoclu`` (batch, dense CPU kernel, OpenMP): ``Somoclu(cols, rows)`` defaults (planar,
  rectangular, Gaussian with ``std_coeff`` 0.5 and compact support, random init) and
  ``train(data, epochs=E)`` with its default schedule (radius min(rows, cols) / 2 to 1 and scale
  0.1 to 0.01, both linear). Its codebook is (rows, cols, dim) already. Its random init is
  seeded inside the C++ code, not by us.
- ``intrasom`` (batch): ``SOMFactory.build(data, mapsize=(cols, rows), mapshape="planar",
  lattice="rect", normalization=None, initialization="random")`` and ``train(...)`` with its
  own defaults (rough then fine-tune phase, lengths and radii from the cells per sample, at most
  1,000 epochs each), numpy seeded with 0, run in a scratch folder (it writes files). Its
  codebook is a flat (cells, dim) matrix in row-major order, index ``row * cols + col``.

``--plot-colors PNG LABEL...`` with ``--save-lattices DIR`` trains nothing: it draws the saved
walk-through maps (seed 0) of those rows side by side, colours above and the log10 u-matrix
below, where flat tiles show as dark patches.

Peers: ``pip install -r benchmarks/requirements.txt`` (somoclu builds from source; see that file).

The bars (``--json`` keeps the rows; ``--reference`` reads the peers' rows of an earlier run so
that gpusom candidates can be scored without training the peers again): per data set, TE at most
0.01 above the lowest peer TE and QE no higher than that peer's (peers tied on the lowest TE: the
QE of any of them, the table names the strictest too); on ``colors``, flat at most 1 % and p99/p50
no higher than numbasom's.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
for path in (str(REPO_ROOT), str(HERE)):
    if path not in sys.path:
        sys.path.insert(0, path)

from bench import _seed_numba, clustered, cpu_model, version_of  # noqa: E402

SEED = 0
FLAT = 1e-3
TE_SLACK = 0.01
FLAT_MAX = 0.01

# name: (rows, cols, steps)
PANEL = {
    "colors": (50, 100, 15_000),
    "mixture": (40, 40, 100_000),
    "iris": (7, 9, 30_000),
    "wine": (7, 10, 35_000),
    "breast_cancer": (9, 13, 60_000),
    "digits": (12, 18, 180_000),
}
PEERS = ["numbasom", "minisom", "xpysom", "somoclu", "intrasom"]
DISTS = {"numbasom": "numbasom", "minisom": "MiniSom", "xpysom": "xpysom", "somoclu": "somoclu"}
DISTS["intrasom"] = "intrasom"
JIT_LIBS = {"gpusom", "numbasom"}


# --------------------------------------------------------------------------- data


def panel_data(name):
    """The float64 samples of a panel data set."""
    if name == "colors":
        return np.random.default_rng(SEED).random((200, 3))
    if name == "mixture":
        return clustered(10_000)
    import sklearn.datasets

    x = getattr(sklearn.datasets, f"load_{name}")(return_X_y=True)[0].astype(np.float64)
    std = x.std(axis=0)
    return (x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)


def batch_epochs(n, steps):
    """Epochs for the batch peers: the online libraries' sample presentations, at least 10."""
    return max(10, round(steps / n))


# --------------------------------------------------------------------------- measures


def neighbour_distances(lattice):
    """Distances between every cell and its right and lower neighbours (4-neighbour pairs)."""
    lat = np.asarray(lattice, dtype=np.float64)
    right = np.linalg.norm(lat[:, 1:] - lat[:, :-1], axis=-1).ravel()
    down = np.linalg.norm(lat[1:] - lat[:-1], axis=-1).ravel()
    return np.concatenate([right, down])


def measures(data, lattice):
    from gpusom import quantization_error, topographic_error

    d = neighbour_distances(lattice)
    p50, p99 = np.percentile(d, [50, 99])
    return {
        "qe": float(quantization_error(data, lattice)),
        "te": float(topographic_error(data, lattice, is_torus=False)),
        "flat": float(np.mean(d < FLAT)),
        "p99_p50": float(p99 / p50) if p50 > 0 else float("inf"),
    }


# --------------------------------------------------------------------------- libraries


def train_gpusom(data, rows, cols, steps, spec):
    from gpusom import SOM

    settings = spec.get("settings", {})
    params = {k: v for k, v in settings.items() if k not in ("name", "steps", "when_sparse")}
    if len(data) < rows * cols:
        params.update(settings.get("when_sparse", {}))
    som = SOM((rows, cols), is_torus=False, seed=spec["seed"], verbose=False, backend="cpu")
    som.set_params(**params)
    lattice = som.train(data, steps)
    return lattice, json.dumps(som.settings_, default=str)


def train_numbasom(data, rows, cols, steps, spec):
    import numbasom

    _seed_numba(spec["seed"])
    with contextlib.redirect_stdout(io.StringIO()):
        lattice = numbasom.SOM(som_size=(rows, cols), is_torus=False).train(data, steps)
    return lattice, "its fixed schedule (r0=max/2, lr 0.1)"


def train_minisom(data, rows, cols, steps, spec):
    from minisom import MiniSom

    sigma = max(rows, cols) / 4
    som = MiniSom(
        rows,
        cols,
        data.shape[1],
        sigma=sigma,
        learning_rate=0.5,
        sigma_decay_function="inverse_decay_to_one",
        random_seed=spec["seed"],
    )
    som.random_weights_init(data)
    with contextlib.redirect_stdout(io.StringIO()):
        som.train(data, steps, random_order=True)
    return som.get_weights(), f"sigma={sigma:g}->1, lr=0.5, sample init, {steps} steps"


def train_xpysom(data, rows, cols, steps, spec):
    with contextlib.redirect_stdout(io.StringIO()):  # it prints a warning when cupy is absent
        from xpysom import XPySom

        som = XPySom(rows, cols, data.shape[1], random_seed=spec["seed"], xp=np)
        som.random_weights_init(data)
        epochs = batch_epochs(len(data), steps)
        som.train(data, epochs)
    return np.asarray(som.get_weights()), f"defaults, sample init, {epochs} epochs"


def train_somoclu(data, rows, cols, steps, spec):
    import somoclu

    som = somoclu.Somoclu(cols, rows)
    epochs = batch_epochs(len(data), steps)
    som.train(np.ascontiguousarray(data, dtype=np.float32), epochs=epochs)
    return np.asarray(som.codebook).reshape(rows, cols, -1), f"defaults, {epochs} epochs"


def train_intrasom(data, rows, cols, steps, spec):
    lattice, som = intrasom_map(data, rows, cols, spec["seed"])
    return lattice, (
        f"defaults, rough {som.train_rough_len} + fine {som.train_finetune_len} epochs"
    )


def intrasom_map(data, rows, cols, seed, **train_options):
    """``(lattice, som)`` of IntraSOM on a planar rectangular map from a random start, trained
    with ``train_options`` (its defaults when none), quietly, in a scratch folder (it writes
    files); also used by ``batch_bench.py``."""
    import pandas as pd
    from intrasom import intrasom

    np.random.seed(seed)  # noqa: NPY002  intrasom draws its init from numpy's global RNG
    frame = pd.DataFrame(data, columns=[f"f{i}" for i in range(data.shape[1])])
    with tempfile.TemporaryDirectory() as scratch, contextlib.chdir(scratch):
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            som = intrasom.SOMFactory.build(
                frame,
                mapsize=(cols, rows),
                mapshape="planar",
                lattice="rect",
                normalization=None,
                initialization="random",
            )
            som.train(save=False, summary=False, **train_options)
    return np.asarray(som.codebook.matrix, dtype=np.float64).reshape(rows, cols, -1), som


TRAINERS = {
    "gpusom": train_gpusom,
    "numbasom": train_numbasom,
    "minisom": train_minisom,
    "xpysom": train_xpysom,
    "somoclu": train_somoclu,
    "intrasom": train_intrasom,
}


# --------------------------------------------------------------------------- worker


def gpusom_steps(settings, n, rows, cols, steps):
    choice = settings.get("steps")
    if choice is None:
        return steps
    if choice == "fit":
        from gpusom.schedules import default_num_iterations

        return default_num_iterations(n, rows * cols)
    return max(1, round(float(choice) * steps))


def run_worker(spec):
    """Train one library (one gpusom candidate, every seed) on one data set; the row."""
    name, lib = spec["dataset"], spec["lib"]
    data = panel_data(name)
    rows, cols, steps = PANEL[name]
    if lib == "gpusom":
        steps = gpusom_steps(spec.get("settings", {}), len(data), rows, cols, steps)
    train = TRAINERS[lib]
    if lib in JIT_LIBS:
        train(data[:8], 3, 4, 20, {**spec, "seed": SEED})
    seeds = spec["seeds"] if lib == "gpusom" or spec.get("peer_seeds") else [SEED]
    per_seed = []
    for seed in seeds:
        start = time.perf_counter()
        lattice, settings = train(data, rows, cols, steps, {**spec, "seed": seed})
        seconds = time.perf_counter() - start
        lattice = np.asarray(lattice, dtype=np.float64)
        if lattice.shape != (rows, cols, data.shape[1]):
            raise ValueError(f"{lib} returned a lattice of shape {lattice.shape}")
        per_seed.append({**measures(data, lattice), "time_s": seconds})
        if spec.get("save_dir"):
            stem = re.sub(r"[^A-Za-z0-9_.=-]+", "_", spec["label"])
            np.save(Path(spec["save_dir"]) / f"{name}-{stem}-seed{seed}.npy", lattice)
    row = {
        "dataset": name,
        "library": lib,
        "label": spec["label"],
        "settings": settings,
        "steps": steps,
        "seeds": seeds,
    }
    for key in per_seed[0]:
        row[key] = float(np.mean([s[key] for s in per_seed]))
        if len(seeds) > 1:
            row[f"{key}_seeds"] = [s[key] for s in per_seed]
    return row


# --------------------------------------------------------------------------- driver


def run_pair(spec, timeout, out):
    spec = {**spec, "out": str(out)}
    base = {"dataset": spec["dataset"], "library": spec["lib"], "label": spec["label"]}
    try:
        proc = subprocess.run(
            [sys.executable, __file__, "--worker", json.dumps(spec)],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {**base, "error": f"over {timeout:g} s"}
    if proc.returncode != 0 or not out.exists():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {**base, "error": " | ".join(tail) or f"exit {proc.returncode}"}
    return json.loads(out.read_text())


def lowest_te_peers(rows, dataset):
    """The peer rows sharing the lowest TE on ``dataset``, lowest QE first."""
    peers = [r for r in rows if r["dataset"] == dataset and r["library"] != "gpusom"]
    peers = [r for r in peers if "te" in r]
    if not peers:
        return []
    low = min(r["te"] for r in peers)
    return sorted((r for r in peers if r["te"] == low), key=lambda r: r["qe"])


def score(row, rows):
    """The bars for one gpusom row: list of (bar, measured, met).

    When several peers share the lowest TE, the QE bar is met against any of them (the
    largest QE among them); the text names the strictest one too.
    """
    out = []
    tied = lowest_te_peers(rows, row["dataset"])
    if tied:
        limit = tied[0]["te"] + TE_SLACK
        out.append(("TE", f"{row['te']:.4f} <= {limit:.4f}", row["te"] <= limit + 1e-12))
        loose = tied[-1]
        text = f"{row['qe']:.4f} <= {loose['qe']:.4f} ({loose['library']})"
        if len(tied) > 1:
            text += f"; strictest {tied[0]['qe']:.4f} ({tied[0]['library']})"
        out.append(("QE", text, row["qe"] <= loose["qe"]))
    if row["dataset"] == "colors":
        out.append(("flat", f"{100 * row['flat']:.2f} % <= 1 %", row["flat"] <= FLAT_MAX))
        ref = [r for r in rows if r["dataset"] == "colors" and r["library"] == "numbasom"]
        if ref and "p99_p50" in ref[0]:
            limit = ref[0]["p99_p50"]
            out.append(("p99/p50", f"{row['p99_p50']:.2f} <= {limit:.2f}", row["p99_p50"] <= limit))
    return out


def print_table(rows):
    print("| data set | library | QE | TE | flat (< 1e-3) | p99/p50 | time (s) | settings |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for r in rows:
        if "error" in r:
            print(f"| {r['dataset']} | {r['label']} | — | — | — | — | — | {r['error']} |")
            continue
        settings = r["settings"] if r["library"] != "gpusom" else f"{r['steps']} steps"
        print(
            f"| {r['dataset']} | {r['label']} | {r['qe']:.4f} | {r['te']:.4f} | "
            f"{100 * r['flat']:.2f} % | {r['p99_p50']:.2f} | {r['time_s']:.2f} | {settings} |"
        )


def print_scores(rows, labels):
    print("\n| gpusom row | " + " | ".join(PANEL) + " | bars met |")
    print("| --- |" + " --- |" * (len(PANEL) + 1))
    for label in labels:
        cells, met, total = [], 0, 0
        for name in PANEL:
            row = next((r for r in rows if r["dataset"] == name and r["label"] == label), None)
            if row is None or "error" in row:
                cells.append("—" if row is None else row["error"])
                continue
            bars = score(row, rows)
            met += sum(ok for _, _, ok in bars)
            total += len(bars)
            cells.append(
                "<br>".join(f"{'ok' if ok else 'NO'} {bar} {text}" for bar, text, ok in bars)
            )
        print(f"| {label} | " + " | ".join(cells) + f" | {met}/{total} |")


def plot_colors(path, lattice_dir, labels):
    """The walk-through's maps (seed 0) side by side: colours above, log10 u-matrix below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gpusom import u_matrix

    fig, axes = plt.subplots(
        2, len(labels), figsize=(3.6 * len(labels), 3.9), squeeze=False, layout="constrained"
    )
    for col, label in enumerate(labels):
        stem = re.sub(r"[^A-Za-z0-9_.=-]+", "_", label)
        lattice = np.load(Path(lattice_dir) / f"colors-{stem}-seed0.npy")
        d = neighbour_distances(lattice)
        ratio = np.percentile(d, 99) / np.percentile(d, 50)
        top, bottom = axes[0, col], axes[1, col]
        top.imshow(np.clip(lattice, 0, 1), interpolation="nearest")
        top.set_title(
            f"{label}\nflat {100 * np.mean(d < FLAT):.2f} %, p99/p50 {ratio:.2f}", fontsize=8
        )
        # Flat tiles have near-zero neighbour distances: dark patches on a log scale.
        um = np.log10(np.maximum(u_matrix(lattice), 1e-6))
        image = bottom.imshow(um, interpolation="nearest", cmap="viridis", vmin=-4, vmax=-0.5)
        bottom.set_title("log10 u-matrix", fontsize=8)
        for ax in (top, bottom):
            ax.set_xticks([])
            ax.set_yticks([])
    fig.colorbar(image, ax=axes[1, :].tolist(), shrink=0.8)
    fig.savefig(path, dpi=80)


def candidate_label(settings, index):
    if "name" in settings:
        return f"gpusom {settings['name']}"
    body = ", ".join(f"{k}={v}" for k, v in settings.items())
    return f"gpusom {body}" if body else f"gpusom #{index}"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default=",".join(PANEL), help="comma list of data sets")
    parser.add_argument(
        "--libs", default=",".join(["gpusom", *PEERS]), help="comma list of libraries"
    )
    parser.add_argument(
        "--gpusom-settings",
        nargs="+",
        default=[],
        metavar="JSON",
        help="gpusom candidates, one JSON object each (SOM parameters, 'steps', 'name')",
    )
    parser.add_argument(
        "--no-defaults", action="store_true", help="leave out the gpusom defaults row"
    )
    parser.add_argument("--seeds", default="0", help="comma list of gpusom seeds (means)")
    parser.add_argument(
        "--peer-seeds", action="store_true", help="run the peers on every seed of --seeds too"
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per process")
    parser.add_argument("--reference", help="JSON of an earlier run: its peer rows are reused")
    parser.add_argument("--json", metavar="PATH", help="write machine info and rows as JSON")
    parser.add_argument("--save-lattices", metavar="DIR", help="save every lattice as .npy")
    parser.add_argument(
        "--plot-colors",
        nargs="+",
        metavar=("PNG", "LABEL"),
        help="no training: draw the colors maps saved by --save-lattices (seed 0) of these rows",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.datasets = [s.strip() for s in args.datasets.split(",") if s.strip()]
    args.libs = [s.strip() for s in args.libs.split(",") if s.strip()]
    for item in args.datasets:
        if item not in PANEL:
            parser.error(f"--datasets: unknown {item!r}")
    for item in args.libs:
        if item not in TRAINERS:
            parser.error(f"--libs: unknown {item!r}")
    args.seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    args.candidates = []
    for text in args.gpusom_settings:
        value = json.loads(text)
        args.candidates.extend(value if isinstance(value, list) else [value])
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        spec = json.loads(args.worker)
        Path(spec["out"]).write_text(json.dumps(run_worker(spec)))
        return
    if args.plot_colors:
        if not args.save_lattices or len(args.plot_colors) < 2:
            raise SystemExit("--plot-colors PNG LABEL... needs --save-lattices DIR")
        plot_colors(args.plot_colors[0], args.save_lattices, args.plot_colors[1:])
        return

    import numba

    info = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "gpusom": version_of("gpusom"),
        **{lib: version_of(dist) for lib, dist in DISTS.items()},
    }
    print("# gpusom map quality panel\n")
    for key, value in info.items():
        print(f"- {key}: {value}")
    print()

    gpusom_rows = []
    if "gpusom" in args.libs:
        if not args.no_defaults:
            gpusom_rows.append(("gpusom defaults", {}))
        gpusom_rows += [(candidate_label(c, i), c) for i, c in enumerate(args.candidates, 1)]
    peers = [lib for lib in PEERS if lib in args.libs]
    rows = []
    if args.reference:
        ref = json.loads(Path(args.reference).read_text())["rows"]
        rows += [r for r in ref if r["library"] != "gpusom" and r["dataset"] in args.datasets]
    if args.save_lattices:
        Path(args.save_lattices).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="gpusom-quality-") as tmp:
        scratch = Path(tmp)
        for name in args.datasets:
            jobs = [(label, "gpusom", s) for label, s in gpusom_rows]
            jobs += [(lib, lib, {}) for lib in peers]
            for index, (label, lib, settings) in enumerate(jobs):
                spec = {
                    "dataset": name,
                    "lib": lib,
                    "label": label,
                    "settings": settings,
                    "seeds": args.seeds,
                    "save_dir": args.save_lattices,
                    "peer_seeds": args.peer_seeds,
                }
                print(f"running {name} / {label} ...", file=sys.stderr, flush=True)
                rows.append(run_pair(spec, args.timeout, scratch / f"{name}-{index}.json"))
                if args.json:  # keep what is done if a later pair hangs the run
                    Path(args.json).write_text(json.dumps({"machine": info, "rows": rows}))

    order = {name: i for i, name in enumerate(args.datasets)}
    rows.sort(key=lambda r: (order.get(r["dataset"], 99), r["library"] != "gpusom"))
    print_table(rows)
    print_scores(rows, [label for label, _ in gpusom_rows])
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": info, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
