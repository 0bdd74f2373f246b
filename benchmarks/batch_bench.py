"""Batch training: gpusom against the batch peers XPySom, somoclu and IntraSOM; and on Dask.

Run from the repository root::

    python benchmarks/batch_bench.py                    # workloads b and L, every library
    python benchmarks/batch_bench.py --workloads b --libs gpusom xpysom
    python benchmarks/batch_bench.py --workloads b --epochs 3 5 10 --data-seeds 1 2 3
    python benchmarks/batch_bench.py --dask --dask-gb 4 --worker-memory 1GiB

Peers: ``pip install -r benchmarks/requirements.txt``. A peer that is not installed, fails,
runs past ``--timeout`` or past ``--max-memory-gb`` of address space is skipped with the
reason printed in its row.

Workloads (bench.py's generator ``clustered``: 20 centres uniform in [0, 1)^dim, noise 0.05),
``--epochs`` (3) batch epochs each; several values run each of them. ``--data-seeds`` (1) draws
other samples from the same 20 centres: the table shows the mean time, QE and TE over the draws
and TE's range, because a few-epoch map's TE swings with the draw (0.08-0.13 for somoclu at 3
epochs on b, benchmarks/RESULTS.md).

- ``b``: 10,000 x 64-d, 40x40 lattice (bench.py's workload b, trained in batch).
- ``L``: 20,000 x 32-d, 200x200 lattice (40,000 cells, more cells than samples).

What is measured. Each (workload, library) pair runs in its own fresh Python process; a first
call loads numba's cache or compiles (gpusom's rows: one epoch of the workload's data on its
lattice, because the sizes pick the search that compiles: after a tiny call, a cold cache put
0.6-1.3 s of compilation into the timed call; the peers: 8 samples, a 3x4 lattice, one epoch,
for somoclu's OpenMP start-up), then the timed call is initialisation + training. QE and TE of
every library's lattice come from gpusom's exact ``quantization_error`` /
``topographic_error`` (8-neighbours, plane), not timed.

Library settings, all Gaussian on a rectangular plane, codebooks initialised from the data:

- ``gpusom``: ``SOM(algorithm="batch", init="pca")`` on the CPU engine, the other settings at
  their defaults (radius ``max(rows, cols) / 4`` falling to 1 on the "inverse" decay, Gaussian
  cut at 2 radii), ``--epochs`` epochs. With three epochs a PCA start matters: from a random
  start the map is still unfolding at the end (QE 0.94 on b, measured).
- ``gpusom-linear``: as ``gpusom`` with ``sigma_decay="linear"``: more epochs at a large radius
  (a lower TE), fewer at a small one (a higher QE).
- ``gpusom-fine``: as ``gpusom`` with ``sigma_end=0.7``: a tighter fit (a lower QE) for runs of
  ten epochs or more, where the map is ordered before the radius gets small.
- ``gpusom-defaults``: ``SOM(algorithm="batch")`` with every default, 20 epochs (not
  ``--epochs``): what a user gets without settings.
- ``xpysom`` (numpy backend): constructor defaults, ``random_weights_init(data)``, seed 0,
  ``train(data, epochs)``.
- ``somoclu`` (dense CPU kernel, OpenMP): ``Somoclu(cols, rows)`` defaults, ``train(data
  as float32, epochs=epochs)``; its random init is seeded in its C++ code.
- ``intrasom``: ``SOMFactory.build(..., initialization="random")``, ``train(train_rough_len=
  epochs - 1, train_finetune_len=1)`` with its default radii, numpy seeded with 0, in a scratch
  folder (it writes files).

``--dask`` runs the out-of-core check instead: a ``distributed.LocalCluster`` of
``--dask-workers`` single-threaded worker processes with ``--worker-memory`` each trains
``gpusom._dask.train_batch`` on ``--dask-gb`` of float32 samples from ``dask.array.random``
(regenerated chunk by chunk at every epoch, never held whole), ``--dask-epochs`` epochs. It
reports samples x cells per second, the peak resident memory of each worker (the workers'
own ``SystemMonitor`` samples, every 0.5 s), the time of one bare pass over the data (the
generator's share), and the efficiency against the single-process
``gpusom._batch.train_epochs`` on a ``--dask-subset`` of the same data held in memory.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import io
import json
import os
import resource
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

from bench import clustered, host_info, import_gpusom, version_of  # noqa: E402
from quality import intrasom_map  # noqa: E402

SEED = 0
# name: (samples, dim, rows, cols)
WORKLOADS = {"b": (10_000, 64, 40, 40), "L": (20_000, 32, 200, 200)}
LIBS = [
    "gpusom",
    "gpusom-linear",
    "gpusom-fine",
    "gpusom-defaults",
    "xpysom",
    "somoclu",
    "intrasom",
]
DISTS = {
    "gpusom": "gpusom",
    "gpusom-linear": "gpusom",
    "gpusom-fine": "gpusom",
    "gpusom-defaults": "gpusom",
    "xpysom": "XPySom",
    "somoclu": "somoclu",
    "intrasom": "IntraSOM",
}


# --------------------------------------------------------------------------- gpusom


def gpusom_sigmas(rows, cols, epochs):
    """The Gaussian standard deviation of each epoch: min(rows, cols) / 4 falling to 0.5."""
    return np.geomspace(max(min(rows, cols) / 4, 0.5), 0.5, epochs)


def gpusom_settings(rows, cols, epochs):
    """The keyword arguments of ``_batch.train_epochs`` / ``_dask.train_batch`` but the data."""
    from gpusom import SOM
    from gpusom._math import NEIGHBORHOODS, TOPOLOGIES

    truncate = inspect.signature(SOM).parameters["truncate"].default
    return {
        "sigmas": gpusom_sigmas(rows, cols, epochs).tolist(),
        "rows": rows,
        "cols": cols,
        "is_torus": False,
        "neighborhood": NEIGHBORHOODS["gaussian"],
        "truncate": truncate,
        "topology": TOPOLOGIES["rectangular"],
    }


# The rows of ``--libs`` that train ``SOM(algorithm="batch", init="pca")`` for ``--epochs``
# epochs, with these settings on top of the defaults.
GPUSOM_VARIANTS = {
    "gpusom": {},
    "gpusom-linear": {"sigma_decay": "linear"},
    "gpusom-fine": {"sigma_end": 0.7},
}


def gpusom_trainer(options):
    """The ``TRAINERS`` entry of a ``GPUSOM_VARIANTS`` row."""
    settings = ", ".join(
        ["algorithm='batch'", "init='pca'"] + [f"{k}={v!r}" for k, v in options.items()]
    )

    def train(data, rows, cols, epochs):
        from gpusom import SOM

        som = SOM((rows, cols), algorithm="batch", init="pca", num_iterations=epochs, seed=SEED,
                  backend="cpu", verbose=False, **options)  # fmt: skip
        return som.fit(data).lattice_, f"SOM({settings}), other settings default"

    return train


def train_gpusom_defaults(data, rows, cols, epochs):
    from gpusom import SOM

    som = SOM((rows, cols), algorithm="batch", seed=SEED, backend="cpu", verbose=False)
    return som.fit(data).lattice_, "SOM(algorithm='batch') defaults: random init, 20 epochs"


# --------------------------------------------------------------------------- peers


def train_xpysom(data, rows, cols, epochs):
    with contextlib.redirect_stdout(io.StringIO()):  # it prints a warning when cupy is absent
        from xpysom import XPySom

        som = XPySom(rows, cols, data.shape[1], random_seed=SEED, xp=np)
        som.random_weights_init(data)
        som.train(data, epochs)
    return np.asarray(som.get_weights()), "defaults, sample init"


def train_somoclu(data, rows, cols, epochs):
    import somoclu

    som = somoclu.Somoclu(cols, rows)
    som.train(np.ascontiguousarray(data, dtype=np.float32), epochs=epochs)
    return np.asarray(som.codebook).reshape(rows, cols, -1), "defaults, random init"


def train_intrasom(data, rows, cols, epochs):
    rough = max(epochs - 1, 1)
    lattice, _ = intrasom_map(data, rows, cols, SEED, train_rough_len=rough, train_finetune_len=1)
    return lattice, f"random init, rough {rough} + fine 1 epochs"


TRAINERS = {
    **{name: gpusom_trainer(options) for name, options in GPUSOM_VARIANTS.items()},
    "gpusom-defaults": train_gpusom_defaults,
    "xpysom": train_xpysom,
    "somoclu": train_somoclu,
    "intrasom": train_intrasom,
}


# --------------------------------------------------------------------------- worker


def run_worker(spec):
    """Train one library on one workload in this process; write its row to ``spec["out"]``."""
    from gpusom import quantization_error, topographic_error

    n, dim, rows, cols = WORKLOADS[spec["workload"]]
    data = clustered(n, dim=dim, sample_seed=spec["data_seed"])
    train = TRAINERS[spec["lib"]]
    if DISTS[spec["lib"]] == "gpusom":
        train(data, rows, cols, 1)  # numba's cache load or compilation of the run's own paths
    else:
        train(data[:8], 3, 4, 1)  # somoclu's OpenMP start-up, the others' imports
    start = time.perf_counter()
    lattice, notes = train(data, rows, cols, spec["epochs"])
    seconds = time.perf_counter() - start
    lattice = np.asarray(lattice, dtype=np.float64)
    if lattice.shape != (rows, cols, dim):
        raise ValueError(f"{spec['lib']} returned a lattice of shape {lattice.shape}")
    row = {
        "workload": spec["workload"],
        "library": spec["lib"],
        "epochs": spec["epochs"],
        "data_seed": spec["data_seed"],
        "seconds": seconds,
        "qe": float(quantization_error(data, lattice)),
        "te": float(topographic_error(data, lattice)),
        "notes": notes,
    }
    Path(spec["out"]).write_text(json.dumps(row))


def _limit_memory(max_bytes):
    """A ``preexec_fn``: cap the child's address space, so a peer that would swamp this shared
    machine fails with a MemoryError instead."""

    def apply():
        resource.setrlimit(resource.RLIMIT_AS, (max_bytes, max_bytes))

    return apply


def run_pair(workload, lib, epochs, data_seed, args, scratch):
    base = {"workload": workload, "library": lib, "epochs": epochs, "data_seed": data_seed}
    if version_of(DISTS[lib]) == "not installed":
        return {**base, "error": f"{DISTS[lib]} is not installed"}
    out = Path(scratch) / f"{workload}-{lib}-{epochs}-{data_seed}.json"
    spec = {**base, "lib": lib, "out": str(out)}
    try:
        proc = subprocess.run(
            [sys.executable, __file__, "--worker", json.dumps(spec)],
            capture_output=True,
            text=True,
            timeout=args.timeout,
            check=False,
            preexec_fn=_limit_memory(int(args.max_memory_gb * 2**30)),
        )
    except subprocess.TimeoutExpired:
        return {**base, "error": f"over the {args.timeout:g} s timeout"}
    if proc.returncode != 0 or not out.exists():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-2:]
        return {**base, "error": " | ".join(tail) or f"exit {proc.returncode}"}
    return json.loads(out.read_text())


def summarise(rows):
    """One row per (workload, epochs, library): the means over the data seeds, and TE's range."""
    groups = {}
    for r in rows:
        groups.setdefault((r["workload"], r["epochs"], r["library"]), []).append(r)
    out = []
    for (workload, epochs, library), runs in groups.items():
        done = [r for r in runs if "error" not in r]
        row = {"workload": workload, "epochs": epochs, "library": library, "runs": len(done)}
        if not done:
            out.append({**row, "error": runs[0]["error"]})
            continue
        for key in ("seconds", "qe", "te"):
            row[key] = float(np.mean([r[key] for r in done]))
        row["te_range"] = (min(r["te"] for r in done), max(r["te"] for r in done))
        out.append({**row, "notes": done[0]["notes"]})
    return out


def print_table(rows):
    """The summary as a markdown table; times relative to ``gpusom`` at the same epochs."""
    print(
        "| workload | epochs | library | seconds | time / gpusom's | QE | TE | TE range | runs "
        "| notes |"
    )
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: | --- | ---: | --- |")
    ours = {
        (r["workload"], r["epochs"]): r["seconds"]
        for r in rows
        if r["library"] == "gpusom" and "seconds" in r
    }
    for r in rows:
        head = f"| {r['workload']} | {r['epochs']} | {r['library']} |"
        if "error" in r:
            print(f"{head} n/a | | | | | | skipped: {r['error']} |")
            continue
        ratio = r["seconds"] / ours.get((r["workload"], r["epochs"]), float("nan"))
        low, high = r["te_range"]
        print(
            f"{head} {r['seconds']:.3f} | {ratio:.2f} | {r['qe']:.4f} | {r['te']:.4f} | "
            f"{low:.4f}-{high:.4f} | {r['runs']} | {r['notes']} |"
        )


def machine_info():
    return {**host_info(), **{name: version_of(dist) for name, dist in DISTS.items()}}


# --------------------------------------------------------------------------- dask


def _peak_rss(dask_worker):
    """The largest resident memory the worker's ``SystemMonitor`` sampled, in bytes."""
    return max(dask_worker.monitor.quantities["memory"], default=0)


def run_dask(args):
    import dask
    import dask.array as da
    import distributed

    from gpusom import _backend, _batch, _dask

    rows, cols = args.dask_shape
    dim, epochs = args.dask_dim, args.dask_epochs
    n = int(args.dask_gb * 2**30 // (4 * dim))
    chunk = max(1, int(args.chunk_mb * 2**20 // (4 * dim)))
    settings = gpusom_settings(rows, cols, epochs)
    cells = rows * cols
    data = da.random.default_rng(SEED).random((n, dim), chunks=(chunk, dim), dtype=np.float32)
    codebook = data[:cells].compute()  # the first samples as the starting codebook

    with (
        distributed.LocalCluster(
            n_workers=args.dask_workers,
            threads_per_worker=1,
            processes=True,
            memory_limit=args.worker_memory,
            dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        # numba's cache load or compilation in every worker, outside the timing
        warm = da.from_array(np.asarray(codebook[:8]), chunks=4)
        _dask.train_batch(warm, codebook[:12], [1.0], 3, 4, False, 0, 2.0, 0, client=client)
        start = time.perf_counter()
        dask.compute(data.sum(axis=0))
        generate_s = time.perf_counter() - start
        start = time.perf_counter()
        _dask.train_batch(data, codebook, client=client, **settings)
        dask_s = time.perf_counter() - start
        peaks = client.run(_peak_rss)
        limit = cluster.workers[next(iter(cluster.workers))].memory_manager.memory_limit
    dask_rate = n * cells * epochs / dask_s

    subset = data[: args.dask_subset].compute()
    host = _backend.cpu_engine()
    _batch.train_epochs(host, codebook[:12], subset[:8], [1.0], 3, 4, False, 0, 2.0, 0)
    start = time.perf_counter()
    _batch.train_epochs(host, codebook, subset, **settings)
    single_s = time.perf_counter() - start
    single_rate = len(subset) * cells * epochs / single_s

    gb = n * dim * 4 / 2**30
    print(
        f"Dask: {n:,} x {dim} float32 samples ({gb:.2f} GiB, chunks of {chunk:,} rows), "
        f"{rows}x{cols} lattice, {epochs} epochs, {args.dask_workers} single-threaded worker "
        f"processes with a memory limit of {limit / 2**30:.2f} GiB each"
    )
    print(f"  train_batch:       {dask_s:.1f} s, {dask_rate:.3g} samples x cells / s")
    print(f"  one bare pass over the data (generation): {generate_s:.1f} s")
    for address, peak in sorted(peaks.items()):
        print(f"  peak worker memory {address}: {peak / 2**20:.0f} MiB")
    print(
        f"  single process, train_epochs on {len(subset):,} samples in memory: {single_s:.1f} s, "
        f"{single_rate:.3g} samples x cells / s"
    )
    # The workers run one thread each (distributed sets OMP/OPENBLAS_NUM_THREADS=1 in them);
    # the single process uses every core through its BLAS threads, so the ratio compares the
    # same cores
    print(
        f"  efficiency: {dask_rate / single_rate:.2f} x the single process "
        f"({os.cpu_count()} cores: its BLAS threads against {args.dask_workers} workers)"
    )
    print(json.dumps(machine_info()))


# --------------------------------------------------------------------------- driver


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=WORKLOADS)
    parser.add_argument("--libs", nargs="+", default=LIBS, choices=LIBS)
    parser.add_argument("--epochs", type=int, nargs="+", default=[3], help="one run per value")
    parser.add_argument(
        "--data-seeds",
        type=int,
        nargs="+",
        default=[1],
        help="sample seeds of the generator (the same 20 centres): QE and TE are averaged",
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per library run")
    parser.add_argument("--max-memory-gb", type=float, default=8.0, help="per library run")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--dask", action="store_true", help="the out-of-core run instead")
    parser.add_argument("--dask-gb", type=float, default=4.0, help="float32 data, GiB")
    parser.add_argument("--dask-dim", type=int, default=32)
    parser.add_argument("--dask-shape", type=int, nargs=2, default=(20, 20))
    parser.add_argument("--dask-epochs", type=int, default=3)
    parser.add_argument("--dask-workers", type=int, default=2)
    parser.add_argument("--dask-subset", type=int, default=500_000, help="samples, in memory")
    parser.add_argument("--worker-memory", default="1GiB")
    parser.add_argument("--chunk-mb", type=float, default=32.0)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        run_worker(json.loads(args.worker))
        return
    gpusom, error = import_gpusom()
    if gpusom is None:
        sys.exit(f"gpusom is needed for every row (training or scoring): {error}")
    if args.dask:
        run_dask(args)
        return
    from gpusom.schedules import DEFAULT_EPOCHS

    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for workload in args.workloads:
            for epochs in args.epochs:
                for data_seed in args.data_seeds:
                    for lib in args.libs:
                        run = epochs
                        if lib == "gpusom-defaults":  # its own default epochs: once is enough
                            if epochs != args.epochs[0]:
                                continue
                            run = DEFAULT_EPOCHS
                        rows.append(run_pair(workload, lib, run, data_seed, args, scratch))
                        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    for workload in args.workloads:
        n, dim, r, c = WORKLOADS[workload]
        print(f"{workload}: {n:,} x {dim}-d samples, {r}x{c} lattice")
    print(f"data seeds {args.data_seeds}; means over them")
    print_table(summarise(rows))
    print(json.dumps(machine_info()))
    if args.json:
        args.json.write_text(json.dumps({"machine": machine_info(), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
