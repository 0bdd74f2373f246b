"""Registers, spills and resident threads of the CUDA training kernels, computed without a GPU.

Compiles ``gpusom.cuda.kernels.train_persistent`` and ``train_phase`` (float32 and float64) to
PTX for a compute capability, assembles them with the CUDA toolkit's ``ptxas`` and prints, per
kernel, what ``ptxas -v`` reports and how many threads a multiprocessor then keeps resident. A
memory-bound kernel needs enough loads in flight per multiprocessor to cover the memory latency,
so resident threads are the first thing to look at when tuning it. Needs numba-cuda and ptxas
(the ``cuda12``/``cuda13`` extra installs both); no device::

    python benchmarks/kernel_resources.py [--cc 9.0] [--ptxas PATH]
"""

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

#: Per-multiprocessor limits of compute capability 8.0 and later: registers, threads, blocks.
REGISTERS, MAX_THREADS, MAX_BLOCKS = 65536, 2048, 32
#: Registers are allocated per warp, in units of this many.
REGISTER_UNIT = 256


def resident_threads(registers, threads_per_block):
    """Threads one multiprocessor keeps resident for a kernel using ``registers`` per thread."""
    warps = -(-threads_per_block // 32)
    per_warp = -(-registers * 32 // REGISTER_UNIT) * REGISTER_UNIT
    blocks = min(REGISTERS // per_warp // warps, MAX_THREADS // threads_per_block, MAX_BLOCKS)
    return blocks * threads_per_block


def find_ptxas(given):
    """Path of ptxas: given, on PATH, in a CUDA toolkit, or from the nvidia-cuda-nvcc wheel."""
    candidates = [given, shutil.which("ptxas"), "/usr/local/cuda/bin/ptxas"]
    for root in sys.path:
        candidates += glob.glob(os.path.join(root, "nvidia", "*", "bin", "ptxas"))
    for path in candidates:
        if path and os.path.isfile(path):
            return path
    raise SystemExit("no ptxas found: pass --ptxas or pip install -e '.[cuda12]'")


def signatures(nt):
    """(dtype name, kernel name, argument types) of every training kernel variant."""
    variants = [
        ("float32", nt.float32, "_packed", ()),
        ("float64", nt.float64, "", (nt.float64[:, ::1], nt.int64[:, ::1])),
    ]
    for dtype_name, dtype, suffix, partials in variants:
        matrix = nt.Array(dtype, 2, "C")
        common = (matrix, matrix, nt.int64[::1], nt.float64[::1], nt.float64[::1], nt.int64)
        common += (nt.int64, nt.boolean, nt.int64, nt.float64, nt.int64[::1], *partials)
        yield dtype_name, "train_persistent" + suffix, common
        yield dtype_name, "train_phase" + suffix, (*common, nt.int64)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cc", default="9.0", help="compute capability (default 9.0, H100/H200)")
    parser.add_argument("--ptxas", help="path of ptxas")
    args = parser.parse_args(argv)
    cc = tuple(int(part) for part in args.cc.split("."))
    ptxas = find_ptxas(args.ptxas)

    import numba.cuda.dispatcher
    from numba import cuda
    from numba import types as nt

    # Compiling device functions asks the current device for its compute capability; there
    # need not be one: answer with the target's.
    numba.cuda.dispatcher.get_current_device = lambda: types.SimpleNamespace(compute_capability=cc)
    from gpusom.cuda import kernels

    print(f"sm_{cc[0]}{cc[1]}, {ptxas}")
    print("| kernel | dtype | registers | spill bytes | resident threads/SM (256, 128 per block) |")
    print("| --- | --- | ---: | ---: | --- |")
    with tempfile.TemporaryDirectory() as scratch:
        for dtype_name, name, signature in signatures(nt):
            ptx, _ = cuda.compile_ptx(getattr(kernels, name).py_func, signature, cc=cc)
            source = Path(scratch, f"{name}_{dtype_name}.ptx")
            source.write_text(ptx)
            # -c: grid.sync() links against the device runtime, which a whole-program build needs.
            report = subprocess.run(
                [ptxas, "-v", "-c", f"-arch=sm_{cc[0]}{cc[1]}", str(source), "-o", os.devnull],
                capture_output=True,
                text=True,
                check=True,
            ).stderr
            registers = int(re.search(r"Used (\d+) registers", report).group(1))
            spills = re.search(r"(\d+) bytes spill stores", report)
            resident = [resident_threads(registers, size) for size in (256, 128)]
            print(
                f"| {name} | {dtype_name} | {registers} | {spills.group(1) if spills else 0} | "
                f"{resident[0]}, {resident[1]} of {MAX_THREADS} |"
            )


if __name__ == "__main__":
    main()
