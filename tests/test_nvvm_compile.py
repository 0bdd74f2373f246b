"""Every CUDA kernel builds with the real compiler, for compute capabilities 8.0 and 9.0.

The rest of the suite runs the kernels in numba's simulator, which accepts code that NVVM
rejects. Here ``benchmarks/kernel_resources.py --ci`` runs in a process without the simulator:
NVVM compiles every kernel (and the device functions it calls) to PTX and ptxas assembles it, all
from the test extra's wheels, with no GPU. A failure prints the compiler's message.
"""

import ast
import importlib.util
import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "kernel_resources.py"
#: The table headers of ``--ci``: compute capabilities 8.0 and 9.0.
TARGETS = ("sm_80", "sm_90")


def without_simulator():
    """This process's environment without the simulator that conftest switched on."""
    env = dict(os.environ)
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    return env


@pytest.fixture(scope="module")
def real_compiler():
    """Skip unless numba-cuda and its NVVM load (the test extra installs both)."""
    if importlib.util.find_spec("numba_cuda") is None:
        pytest.skip("numba-cuda is not installed (pip install -e '.[test]' installs it)")
    probe = subprocess.run(
        [sys.executable, "-c", "from numba.cuda.cudadrv.nvvm import NVVM; NVVM()"],
        env=without_simulator(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if probe.returncode != 0:
        reason = (probe.stderr.strip().splitlines() or ["no message"])[-1]
        pytest.skip(f"numba-cuda cannot load NVVM ({reason}); pip install -e '.[test]'")


def kernel_names():
    """The kernels of gpusom/cuda/kernels.py and batch.py: ``@cuda.jit`` functions without
    ``device=True``.

    Read from the source, independently of how the script finds them.
    """
    names = set()
    for module in ("kernels.py", "batch.py"):
        names |= _kernels_of(ROOT / "gpusom" / "cuda" / module)
    return names


def _kernels_of(path):
    tree = ast.parse(path.read_text())
    names = set()
    for node in tree.body:
        for decorator in getattr(node, "decorator_list", []):
            call = decorator if isinstance(decorator, ast.Call) else None
            device = call and any(
                k.arg == "device" and ast.literal_eval(k.value) for k in call.keywords
            )
            if ast.unparse(call.func if call else decorator) == "cuda.jit" and not device:
                names.add(node.name)
    return names


def tables(output):
    """``{target: [(kernel, dtype, registers, stack, spill stores, spill loads)]}`` printed."""
    found, rows = {}, None
    for line in output.splitlines():
        if re.match(r"sm_\d+:", line):
            rows = found.setdefault(line.split(":")[0], [])
        elif rows is not None and re.match(r"\| \w+ \|.*\| \d+ \|", line):
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            rows.append((cells[0], cells[1], *map(int, cells[2:6])))
    return found


@pytest.mark.usefixtures("real_compiler")
def test_every_kernel_compiles_for_8_0_and_9_0_without_spills():
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--ci"],
        env=without_simulator(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    found = tables(result.stdout)
    assert sorted(found) == sorted(TARGETS), result.stdout
    kernels = kernel_names()
    assert {"train_phase", "train_persistent", "rerank"} <= kernels
    for target, rows in found.items():
        assert {row[0] for row in rows} == kernels, (target, result.stdout)
        for kernel, dtype, registers, _, spill_stores, spill_loads in rows:
            assert registers > 0, (target, kernel, dtype)
            # A spill moves a thread's variables to local memory: slow in the memory-bound loop.
            assert spill_stores == spill_loads == 0, (target, kernel, dtype, result.stdout)
    # The default GPU path (float32, packed keys) on H100 and H200: at most 64 registers, so a
    # multiprocessor keeps 1024 threads of it resident (benchmarks/RESULTS.md).
    registers = {(row[0], row[1]): row[2] for row in found["sm_90"]}
    for kernel in ("train_persistent_packed", "train_phase_packed"):
        assert registers[kernel, "float32"] <= 64, (kernel, result.stdout)
