"""Cheap gates in front of the suite: lint, formatting, fastmath discipline, no stray prints."""

import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
SOURCES = sorted((ROOT / "gpusom").rglob("*.py"))


@pytest.mark.parametrize("command", [["check", "."], ["format", "--check", "."]])
def test_ruff_is_clean(command):
    # ruff comes with the test extra; run through this interpreter so no PATH set-up is needed.
    result = subprocess.run(
        [sys.executable, "-m", "ruff", *command], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_fastmath_comes_from_the_config_only():
    offenders = [p.name for p in SOURCES if re.search(r"fastmath\s*=\s*True", p.read_text())]
    assert offenders == []


def test_prints_only_in_the_verbose_helpers():
    # each prints only behind verbose=True, except the command line, whose output is the point
    allowed = {"som.py", "analysis.py", "io.py", "demo.py", "cli.py"}
    offenders = [p.name for p in SOURCES if "print(" in p.read_text() and p.name not in allowed]
    assert offenders == []


def test_importing_gpusom_imports_no_optional_or_heavy_modules():
    # pandas, tqdm and scikit-learn are imported only when an input or a long run needs them.
    script = (
        "import sys, gpusom\n"
        "heavy = ['pandas', 'tqdm', 'sklearn', 'matplotlib.pyplot', 'cupy']\n"
        "print([name for name in heavy if name in sys.modules])"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
