"""Compile every CUDA kernel with the real compiler, without a GPU: errors, registers, spills.

numba's CUDA simulator runs code that the real compiler rejects, so the simulator tests alone do
not show that the kernels build. This script compiles every ``@cuda.jit`` kernel of
``gpusom.cuda.kernels``, in every variant the CUDA backend launches, to PTX with NVVM (the device
functions are compiled into the kernels that call them), assembles it with the CUDA toolkit's
``ptxas`` and prints, per kernel, what ``ptxas -v`` reports and how many threads a
multiprocessor then keeps resident. A memory-bound kernel needs enough loads in flight per
multiprocessor to cover the memory latency, so resident threads are the first thing to look at
when tuning it. Exits non-zero when a kernel fails to compile or assemble, when a kernel has no
signature here, or when no kernel calls a device function. Needs numba-cuda with NVVM, NVRTC and
ptxas, which the ``test`` extra installs as pip wheels (``cuda-toolkit[nvcc,nvrtc]``); no
device::

    python benchmarks/kernel_resources.py [--cc 9.0 [8.0 ...] | --ci] [--ptxas PATH]

``--ci`` compiles for the compute capabilities CI checks (tests/test_nvvm_compile.py).
"""

import argparse
import glob
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import types
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

# The real compiler is the point here, even when called from a process that set the simulator up.
os.environ["NUMBA_ENABLE_CUDASIM"] = "0"
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

#: Compute capabilities CI compiles for: A100 (8.0), H100 and H200 (9.0).
CI_CCS = ("8.0", "9.0")

#: 32-bit registers per multiprocessor, allocated per warp in units of ``REGISTER_UNIT``.
REGISTERS, REGISTER_UNIT = 65536, 256
#: Resident threads and blocks per multiprocessor, per compute capability (CUDA programming
#: guide); other capabilities get no resident-thread figure.
RESIDENT_LIMITS = {(8, 0): (2048, 32), (8, 6): (1536, 16), (8, 9): (1536, 24), (9, 0): (2048, 32)}
#: Block sizes the resident-thread column is given for: the default and the faster one on an H200.
BLOCK_SIZES = (256, 128)


def resident_threads(registers, threads_per_block, cc):
    """Threads one multiprocessor keeps resident for a kernel using ``registers`` per thread."""
    max_threads, max_blocks = RESIDENT_LIMITS[cc]
    warps = -(-threads_per_block // 32)
    per_warp = -(-registers * 32 // REGISTER_UNIT) * REGISTER_UNIT
    blocks = min(REGISTERS // per_warp // warps, max_threads // threads_per_block, max_blocks)
    return blocks * threads_per_block


def find_ptxas(given):
    """Path of ptxas: given, from the nvidia-cuda-nvcc wheel, on PATH or in a CUDA toolkit.

    The wheel comes first: numba-cuda takes NVVM from the same wheels, and a ptxas older than
    the NVVM that wrote the PTX rejects its PTX version.
    """
    candidates = [given]
    for root in sys.path:
        candidates += sorted(glob.glob(os.path.join(root, "nvidia", "*", "bin", "ptxas")))
    candidates += [shutil.which("ptxas"), "/usr/local/cuda/bin/ptxas"]
    for path in candidates:
        if path and os.path.isfile(path):
            return path
    raise SystemExit("no ptxas found: pass --ptxas or pip install -e '.[test]'")


def release(text):
    """The ``release X.Y`` a CUDA tool names in its version text or in the PTX it wrote."""
    found = re.search(r"release (\d+\.\d+)", text)
    return found.group(1) if found else "unknown"


def signatures(nt):
    """(kernel name, variant, argument types) of every kernel variant the CUDA backend launches.

    The types are those numba infers at the launches in ``gpusom.cuda`` (C-contiguous device
    arrays, Python ints as int64, floats as float64, bools as boolean).
    """
    index_vector, float_vector = nt.int64[::1], nt.float64[::1]
    pairs = (nt.float64[:, ::1], nt.int64[:, ::1])
    for dtype in (nt.float32, nt.float64):
        matrix = nt.Array(dtype, 2, "C")
        # codebook, data, order, sigmas, lrs, the weight tables, rows, cols
        common = (matrix, matrix, index_vector, float_vector, float_vector, matrix)
        common += (nt.int64, nt.int64)
        # is_torus, neighborhood, truncate, topology
        common += (nt.boolean, nt.int64, nt.float64, nt.int64)
        if dtype == nt.float32:
            yield "train_persistent_packed", "float32", (*common, index_vector)
            yield "train_phase_packed", "float32", (*common, index_vector, nt.int64)
            # the batched late steps: first, distances, tile keys, group keys (then record)
            keys = nt.int64[:, ::1]
            distances = (matrix, matrix, index_vector, nt.int64, matrix, keys)
            yield "late_distances", "float32", distances
            yield "late_group_keys", "int64", (keys, keys)
            late = (nt.int64, matrix, keys, keys, index_vector)
            yield "late_walk", "float32", (*common, *late)
        # float32 maps too large for packed keys take the pair kernels as float64 maps do.
        yield "train_persistent", str(dtype), (*common, index_vector, *pairs)
        yield "train_phase", str(dtype), (*common, index_vector, *pairs, nt.int64)
        # other metrics and missing values: metric, missing flags, then as the pair kernels
        general = (*common, nt.int64, nt.boolean[::1], index_vector, *pairs)
        yield "train_persistent_any", str(dtype), general
        yield "train_phase_any", str(dtype), (*general, nt.int64)
    # gpusom._bmu_search: the Euclidean and Manhattan scores (dots, cb_sq) are float32 unless a
    # squared norm could overflow float32, cosine ones float64; data and codebook keep their own
    # dtype.
    for scores, dtype, variant in (
        (nt.float32, nt.float32, "float32"),
        (nt.float32, nt.float64, "float64"),
        (nt.float64, nt.float32, "float32, float64 scores"),
        (nt.float64, nt.float64, "float64, float64 scores"),
    ):
        matrix = nt.Array(dtype, 2, "C")
        arguments = (nt.Array(scores, 2, "C"), nt.Array(scores, 1, "C"), float_vector)
        arguments += (matrix, matrix, nt.int64, nt.int64, nt.int64[:, ::1], nt.float64[:, ::1])
        yield "rerank", variant, arguments
    # gpusom.cuda.batch: per-cell sums of the samples (their dtype), smoothing in float64
    table = nt.float64[:, ::1]
    for dtype in (nt.float32, nt.float64):
        yield "_cell_sums", str(dtype), (nt.Array(dtype, 2, "C"), index_vector, index_vector, table)
    # src, dst, sigma, size, stride, is_torus, neighborhood, truncate
    axis = (table, table, nt.float64, nt.int64, nt.int64, nt.boolean, nt.int64, nt.float64)
    yield "_smooth_axis", "float64", axis
    # src, dst, sources, sigma, rows, cols, is_torus, neighborhood, truncate, topology
    direct = (table, table, index_vector, nt.float64, nt.int64, nt.int64, nt.boolean, nt.int64)
    yield "_smooth_direct", "float64", (*direct, nt.float64, nt.int64)


def compile_all(cc, ptxas):
    """Compile and assemble every kernel variant for ``cc``: (header, table rows, errors).

    Runs in a process of its own per compute capability: numba compiles each device function
    once per process, for the capability the current device reports (answered below with
    ``cc``), and reuses it in every kernel compiled after.
    """
    import numba.cuda.dispatcher
    from numba import cuda
    from numba import types as nt

    if cuda.implementation != "NVIDIA":
        raise SystemExit("needs numba-cuda (pip install -e '.[test]'), not numba's own numba.cuda")
    # Compiling a device function asks the current device for its compute capability; there
    # need not be one: answer with the target's.
    numba.cuda.dispatcher.get_current_device = lambda: types.SimpleNamespace(compute_capability=cc)
    from gpusom.cuda import batch, kernels

    dispatchers = {
        name: value
        for module in (kernels, batch)
        for name, value in vars(module).items()
        if isinstance(value, numba.cuda.dispatcher.CUDADispatcher)
        and value.py_func.__module__ == module.__name__
    }
    kernel_names = {name for name, d in dispatchers.items() if not d.targetoptions.get("device")}
    variants = list(signatures(nt))
    named = {name for name, _, _ in variants}
    errors = [f"{name}: a kernel with no signature here" for name in sorted(kernel_names - named)]
    errors += [
        f"{name}: not a kernel of gpusom.cuda.kernels or .batch"
        for name in sorted(named - kernel_names)
    ]
    rows, nvvm_release = [], "unknown"
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        for name, variant, signature in variants:
            if name not in kernel_names:
                continue
            where = f"sm_{cc[0]}{cc[1]} {name} ({variant})"
            try:
                ptx, _ = cuda.compile_ptx(dispatchers[name].py_func, signature, cc=cc)
            except Exception as exc:  # every failure is reported, then the next variant runs
                errors.append(f"{where}: compile: {type(exc).__name__}: {exc}")
                continue
            nvvm_release = release(ptx[:400])
            source = Path(scratch, f"{name}.ptx")
            source.write_text(ptx)
            # -c: grid.sync() links against the device runtime, which a whole-program build needs.
            assembled = subprocess.run(
                [ptxas, "-v", "-c", f"-arch=sm_{cc[0]}{cc[1]}", str(source), "-o", os.devnull],
                capture_output=True,
                text=True,
            )
            report = assembled.stderr
            registers = re.search(r"Used (\d+) registers", report)
            local = re.search(
                r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads",
                report,
            )
            if assembled.returncode != 0 or registers is None or local is None:
                errors.append(f"{where}: ptxas exited {assembled.returncode}: {report.strip()}")
                continue
            used = int(registers.group(1))
            stack, stores, loads = local.groups()
            resident = (
                f"{', '.join(str(resident_threads(used, size, cc)) for size in BLOCK_SIZES)} "
                f"of {RESIDENT_LIMITS[cc][0]}"
                if cc in RESIDENT_LIMITS
                else "-"
            )
            rows.append(
                f"| {name} | {variant} | {used} | {stack} | {stores} | {loads} | {resident} |"
            )
    # A device function that no kernel calls was compiled by none of the kernels above; after a
    # failed kernel, others may look uncalled too, so they are named only when all compiled.
    if not errors:
        errors = [
            f"{name}: a device function that no kernel calls"
            for name, d in dispatchers.items()
            if d.targetoptions.get("device") and not d.overloads
        ]
    ptxas_release = release(
        subprocess.run([ptxas, "--version"], capture_output=True, text=True).stdout
    )
    header = (
        f"sm_{cc[0]}{cc[1]}: NVVM {nvvm_release}, ptxas {ptxas_release} ({ptxas}), "
        f"{len(rows)} kernel variants in {time.perf_counter() - start:.1f} s"
    )
    return header, rows, errors


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--cc", nargs="+", default=["9.0"], help="compute capabilities (default 9.0, H100/H200)"
    )
    parser.add_argument("--ci", action="store_true", help=f"--cc {' '.join(CI_CCS)}")
    parser.add_argument("--ptxas", help="path of ptxas")
    args = parser.parse_args(argv)
    ccs = [tuple(int(part) for part in cc.split(".")) for cc in (CI_CCS if args.ci else args.cc)]
    ptxas = find_ptxas(args.ptxas)

    # One fresh process per compute capability (see compile_all), all at once.
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(len(ccs), mp_context=spawn) as pool:
        results = list(pool.map(compile_all, ccs, [ptxas] * len(ccs)))
    failed = False
    for header, rows, errors in results:
        print(header)
        print(
            "| kernel | dtype | registers | stack bytes | spill stores | spill loads "
            f"| resident threads/SM ({', '.join(map(str, BLOCK_SIZES))} per block) |"
        )
        print("| --- | --- | ---: | ---: | ---: | ---: | --- |")
        print("\n".join(rows))
        print()
        for error in errors:
            print(f"error: {error}", file=sys.stderr)
        failed = failed or bool(errors)
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
