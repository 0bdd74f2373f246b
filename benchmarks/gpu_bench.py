"""GPU against CPU: microseconds per online step, next to the GPU's memory-bandwidth floor.

Run on a machine with an NVIDIA GPU, from the repository root (``ci/gpu-check.sh`` does)::

    python benchmarks/gpu_bench.py                    # both workloads, 100,000 steps on the big map
    python benchmarks/gpu_bench.py --steps 20000 --out table.md
    python benchmarks/gpu_bench.py --sanitize         # tiny training for compute-sanitizer
    python benchmarks/gpu_bench.py --crossover        # CPU against GPU over map sizes
    python benchmarks/gpu_bench.py --first-call       # seconds of the first tiny trainings
    python benchmarks/gpu_bench.py --auto             # what backend="auto" picks here, and why

Workloads (gpusom's default schedules without the closing step, float32, seed 0):

- ``walk-through``: 200 samples uniform in [0, 1)^3, 50x100 lattice (plane), 15,000 steps.
- ``1000x1000x64``: 10,000 samples uniform in [0, 1)^64, 1000x1000 lattice, ``--steps`` steps.
- ``1000x1000x64 hexagonal``: the same on the hexagonal lattice.

Each row times ``SOM.train`` (``verbose=False``, ``backend`` and, for CUDA, the driver set):
per step = (time of the run - time of a one-step run) / (steps - 1), so initialisation, uploads
and the kernels' compilation (a short warm-up run on the same map first, ``WARMUP_STEPS``) are
not counted. A CPU step on the big map costs tens of milliseconds, so its row times a run of
``--cpu-steps`` steps: the schedule is a function of t / (T - 1), so that run samples the same
radii and rates evenly.

The floor is the time to read the codebook once per step (every step's BMU search must) at the
device-to-device copy bandwidth measured here; early steps also write the cells of a wide window.
The header also gives the rate of a kernel that only reads, which a search could approach. The
last column is the cost model of ``gpusom.cuda.late`` over the same run: plain steps, and the
batched late steps where it chose them.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from numba import cuda

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from gpusom import SOM, _backend  # noqa: E402
from gpusom._errors import BackendUnavailableError  # noqa: E402

#: ``steps`` None: ``--steps``; ``cpu_steps``: the CPU row runs ``--cpu-steps`` steps instead;
#: ``options``: further ``SOM`` settings.
WORKLOADS = {
    "walk-through": {"shape": (50, 100), "dim": 3, "samples": 200, "steps": 15_000},
    "1000x1000x64": {"shape": (1000, 1000), "dim": 64, "samples": 10_000, "cpu_steps": True},
    "1000x1000x64 hexagonal": {
        "shape": (1000, 1000),
        "dim": 64,
        "samples": 10_000,
        "cpu_steps": True,
        "options": {"topology": "hexagonal"},
    },
    # the general kernels (train_persistent_any): another metric than Euclidean
    "1000x1000x64 cosine": {
        "shape": (1000, 1000),
        "dim": 64,
        "samples": 10_000,
        "steps": 20_000,
        "cpu_steps": True,
        "options": {"metric": "cosine"},
    },
}

#: (label, backend, CUDA driver, threads per block, batched late steps). The persistent
#: kernel's block size decides how many threads stay resident (its registers per thread bound
#: the blocks per multiprocessor), so it is timed at two sizes; batched late steps
#: (``gpusom.cuda.late``) with and without; the per-step driver (the fallback) at one.
VARIANTS = [
    ("cuda persistent, 128 threads/block (default)", "cuda", "persistent", 128, "auto"),
    (
        "cuda persistent, 128 threads/block, no batched late steps",
        "cuda",
        "persistent",
        128,
        "never",
    ),
    ("cuda persistent, 256 threads/block", "cuda", "persistent", 256, "auto"),
    ("cuda per-step, 128 threads/block", "cuda", "per_step", 128, "auto"),
    ("cpu", "cpu", None, None, None),
]

#: Bytes copied to measure the device's memory bandwidth.
COPY_BYTES = 1 << 30


def train_seconds(backend, data, shape, steps, dtype="float32", **options):
    """Wall time of ``SOM(shape, **options).train(data, steps)`` on ``backend``: the online
    steps alone (``finish="none"``, the per-step times and the cost model count steps)."""
    som = SOM(shape, backend=backend, dtype=dtype, seed=0, verbose=False, finish="none", **options)
    start = time.perf_counter()
    som.train(data, steps)
    return time.perf_counter() - start


#: Steps of the warm-up run on each workload's own map, at most the timed run's: a short run
#: goes through the whole schedule, so what the map's size and the late steps choose compiles
#: there (the CPU's boxed search, the device's batched late steps), not in the timed runs. A
#: warm-up on a 2x3 map compiled neither (benchmarks/RESULTS.md).
WARMUP_STEPS = {"cuda": 1_000, "cpu": 20}


def per_step_us(backend, data, shape, steps, **options):
    """Microseconds per step of a ``steps``-step run, set-up excluded, and the cost model's
    (:class:`StepModel`)."""
    train_seconds(backend, data, shape, min(steps, WARMUP_STEPS[backend]), **options)
    overhead = train_seconds(backend, data, shape, 1, **options)
    with StepModel() as model:
        seconds = train_seconds(backend, data, shape, steps, **options)
    return (seconds - overhead) / (steps - 1) * 1e6, model.us()


class StepModel:
    """Wraps ``gpusom.cuda.late.plan`` while in use: the cost model's seconds for every step the
    CUDA engine planned (plain or batched), to print next to the measured ones."""

    def __init__(self):
        from gpusom.cuda import late

        self.late, self.plan = late, late.plan
        self.seconds, self.steps = 0.0, 0

    def __enter__(self):
        self.late.plan = self
        return self

    def __exit__(self, *exc_info):
        self.late.plan = self.plan

    def __call__(self, sigmas, neighborhood, truncate, topology, rows, cols, width, free_bytes):
        late = self.late
        blocks = self.plan(sigmas, neighborhood, truncate, topology, rows, cols, width, free_bytes)
        cells = late.window_cells(sigmas, neighborhood, truncate, topology, rows, cols)
        n_cells = rows * cols
        batched = late.late_step_seconds(cells, np.maximum(blocks, 1), n_cells, width)
        plain = late.plain_step_seconds(n_cells, width)
        self.seconds += float(np.where(blocks > 0, batched, plain).sum())
        self.steps += len(sigmas)
        return blocks

    def us(self):
        """The model's mean per step, or "-" where nothing was planned (no packed kernels)."""
        return f"{self.seconds / self.steps * 1e6:,.1f}" if self.steps else "-"


def copy_bandwidth(n_bytes, repeat=5):
    """Device-to-device copy bandwidth in bytes per second (bytes read plus bytes written)."""
    source = cuda.device_array(n_bytes, dtype=np.uint8)
    target = cuda.device_array(n_bytes, dtype=np.uint8)
    target.copy_to_device(source)
    cuda.synchronize()
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        target.copy_to_device(source)
        cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * n_bytes / best


def read_bandwidth(n_bytes, repeat=5):
    """Bytes per second a kernel reads from device memory, each thread summing a grid-stride
    share of a float32 array: the rate a BMU search, which only reads the codebook, could reach
    (a copy also writes)."""
    # zeros, not an uninitialised array: its garbage may hold NaNs, and the simulator warns
    values = cuda.to_device(np.zeros(n_bytes // 4, dtype=np.float32))
    threads = 256
    # Enough threads to fill an H200 (132 multiprocessors of 2048), each reading 16 or more.
    blocks = max(1, min(1024, values.size // (threads * 16)))
    sums = cuda.device_array(blocks * threads, dtype=np.float32)
    kernel = cuda.jit(_sum_share)[blocks, threads]
    kernel(values, sums)
    cuda.synchronize()
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        kernel(values, sums)
        cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return n_bytes / best


def _sum_share(values, sums):
    first, stride = cuda.grid(1), cuda.gridsize(1)
    total = np.float32(0)
    for i in range(first, values.size, stride):
        total += values[i]
    sums[first] = total


def bench(args):
    gpu = _backend.cuda_engine()
    # numba's simulator (the benchmark's own test) has a device without a name.
    device = getattr(cuda.current_context().device, "name", "numba CUDA simulator")
    # Read at the call, so that a test can make them small.
    bandwidth, reading = copy_bandwidth(COPY_BYTES), read_bandwidth(COPY_BYTES)
    rows_out = []
    for name, spec in WORKLOADS.items():
        rows, cols = spec["shape"]
        data = np.random.default_rng(0).random((spec["samples"], spec["dim"]), dtype=np.float32)
        floor_us = rows * cols * spec["dim"] * 4 / bandwidth * 1e6
        steps = spec.get("steps") or args.steps
        for label, backend, driver, threads, late_steps in VARIANTS:
            if driver:
                gpu.config.DRIVER = driver
                gpu.config.THREADS_PER_BLOCK = threads
                gpu.config.LATE_STEPS = late_steps
            run_steps = args.cpu_steps if backend == "cpu" and spec.get("cpu_steps") else steps
            options = spec.get("options", {})
            us, modelled = per_step_us(backend, data, spec["shape"], run_steps, **options)
            ratio = f"{us / floor_us:.1f}" if backend == "cuda" else "-"
            rows_out.append(
                (name, label, f"{run_steps:,}", f"{us:,.1f}", f"{floor_us:,.1f}", ratio, modelled)
            )
            print(f"{name} {label}: {run_steps} steps, {us:.1f} us/step", flush=True)
    name = device.decode() if isinstance(device, bytes) else device
    header = (
        "workload",
        "backend",
        "steps",
        "us/step",
        "floor us/step",
        "x floor",
        "model us/step",
    )
    lines = [
        f"{name}, device-to-device copy {bandwidth / 1e12:.2f} TB/s, read-only "
        f"{reading / 1e12:.2f} TB/s (the floor column uses the copy rate), "
        f"{time.strftime('%Y-%m-%d')}",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join(" --- " for _ in header) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows_out]
    table = "\n".join(lines)
    if args.out:
        Path(args.out).write_text(table + "\n")
    print(table)


#: (rows, cols, dim) of the crossover table: where the GPU starts to beat the CPU.
CROSSOVER_SHAPES = [
    (r, c, d)
    for d in (3, 64)
    for r, c in ((10, 10), (20, 20), (30, 30), (50, 50), (70, 70), (100, 100), (200, 200))
]
#: Fewest and most steps of a crossover row (about 0.3 s of CPU work in between).
CROSSOVER_STEPS = (200, 20_000)


def crossover(args):
    """Per-step times of the CPU and the persistent CUDA driver over map sizes."""
    gpu = _backend.cuda_engine()
    gpu.config.DRIVER = "persistent"
    gpu.config.THREADS_PER_BLOCK = 128
    header = ("rows x cols x dim", "steps", "cpu us/step", "cuda us/step", "cpu / cuda")
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    for rows, cols, dim in CROSSOVER_SHAPES:
        data = np.random.default_rng(0).random((2_000, dim), dtype=np.float32)
        steps = int(np.clip(3e7 / (rows * cols * dim), *CROSSOVER_STEPS))
        cpu, _ = per_step_us("cpu", data, (rows, cols), steps)
        gpu_us, _ = per_step_us("cuda", data, (rows, cols), steps)
        row = (f"{rows}x{cols}x{dim}", f"{steps:,}", f"{cpu:,.1f}", f"{gpu_us:,.1f}")
        lines.append("| " + " | ".join(row) + f" | {cpu / gpu_us:.2f} |")
        print(lines[-1], flush=True)
    table = "\n".join(lines)
    if args.out:
        Path(args.out).write_text(table + "\n")
    print(table)


def first_call():
    """Seconds of this process's first tiny CPU and CUDA trainings (compiling or cache loads)."""
    data = np.random.default_rng(0).random((30, 5), dtype=np.float32)
    for backend in ("cpu", "cuda"):
        print(f"first call {backend}: {train_seconds(backend, data, (9, 10), 40):.2f} s")


def auto():
    """Train a map big enough for the GPU under ``backend="auto"``; print what ran and warnings."""
    import warnings

    data = np.random.default_rng(0).random((1_000, 8), dtype=np.float32)
    som = SOM((400, 400), seed=0, verbose=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        som.train(data, 2_000)
    print(f"auto trained on {som.backend_} in {time.perf_counter() - start:.2f} s")
    for warning in caught:
        print(f"{warning.category.__name__}: {warning.message}")
    try:
        _backend.cuda_engine()
        print("backend='cuda' runs here")
    except BackendUnavailableError as error:
        print(f"backend='cuda': {error}")


def sanitize():
    """A tiny training with every kernel variant, for compute-sanitizer's memcheck/racecheck."""
    gpu = _backend.cuda_engine()
    gpu.config.THREADS_PER_BLOCK = 64  # a 9x10 map then spans two blocks
    data = np.random.default_rng(0).random((30, 5))
    for dtype in ("float32", "float64"):
        for driver in ("persistent", "per_step"):
            gpu.config.DRIVER = driver
            train_seconds("cuda", data, (9, 10), 40, dtype)
    gpu.config.LATE_STEPS = "always"  # the batched late steps' kernels too
    train_seconds("cuda", data, (9, 10), 40)
    try:
        index = gpu.find_bmus(data, data[:7], 2)[0]
    except BackendUnavailableError as error:  # no cupy: training only
        print("find_bmus skipped:", error)
        return
    print("ok", gpu.to_numpy(index)[:3, 0])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=100_000, help="steps on the big map")
    parser.add_argument("--cpu-steps", type=int, default=200, help="CPU steps timed on the big map")
    parser.add_argument("--out", help="also write the markdown table to this file")
    parser.add_argument("--sanitize", action="store_true", help="tiny run for compute-sanitizer")
    parser.add_argument("--crossover", action="store_true", help="CPU against GPU by map size")
    parser.add_argument("--first-call", action="store_true", help="time the first trainings")
    parser.add_argument("--auto", action="store_true", help="what backend='auto' picks, and why")
    args = parser.parse_args(argv)
    if args.sanitize:
        sanitize()
    elif args.crossover:
        crossover(args)
    elif args.first_call:
        first_call()
    elif args.auto:
        auto()
    else:
        bench(args)


if __name__ == "__main__":
    main()
