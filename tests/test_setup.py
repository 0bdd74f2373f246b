"""The README's two set-up commands, run in order in a fresh copy of the checkout and a fresh
virtual environment, leave a gpusom that imports, trains and runs its command from any folder.

The slow test builds a real virtual environment and installs with pip (from pip's cache after the
first time), so it needs the package index that ``.ci/run`` itself installs from.
"""

import os
import pathlib
import re
import shlex
import shutil
import subprocess
import sys
import textwrap

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
#: The one test the second command runs here: the whole suite would run this file again.
INNER_TEST = "tests/test_cli.py::test_train_project_plot_and_demo_end_to_end"


def readme_commands():
    """The shell commands of the README's "Two commands" section, in order."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Two commands\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.DOTALL)
    return [textwrap.dedent(block).strip() for block in blocks]


def test_the_readme_has_two_one_line_commands_and_ci_runs_the_second():
    commands = readme_commands()
    assert len(commands) == 2 and all("\n" not in command for command in commands)
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert ci_lines[-1] == commands[1]


def _copy_checkout(target):
    """Copy the files a fresh clone would hold (tracked, or new and not ignored) to ``target``."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("the set-up check copies a git checkout")
    for name in filter(None, listed.decode().split("\0")):
        source = ROOT / name
        if source.is_file():  # a tracked file may have been deleted in the working tree
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def _clean_environment(venv):
    """The environment of a new shell with ``venv`` activated.

    Nothing of this test run leaks in: not its interpreter's paths, not the CUDA simulator switch
    the conftest sets, and no NUMBA_CACHE_DIR, which would move numba's cache away from the
    package and hide the very problem this test is about.
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PYTHON", "NUMBA_", "GPUSOM_", "PYTEST_", "VIRTUAL_ENV"))
    }
    env["VIRTUAL_ENV"] = str(venv)
    env["PATH"] = os.pathsep.join([str(venv / "bin"), env.get("PATH", "")])
    return env


def _shell(command, cwd, env, timeout=900):
    result = subprocess.run(
        ["bash", "-c", command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, f"{command}\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result.stdout


@pytest.mark.skipif(
    os.environ.get("GPUSOM_TEST_CUDASIM") == "0",
    reason="GPU runs check the kernels; their machines have no package index to install from",
)
@pytest.mark.skipif(sys.platform == "win32", reason="runs the commands in bash")
def test_the_readme_commands_in_order_leave_a_working_install(tmp_path):
    first, second = readme_commands()
    clone = tmp_path / "gpusom-clone"
    _copy_checkout(clone)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    env = _clean_environment(venv)

    _shell(first, clone, env)
    assert (clone / "colors-out" / "projection.png").is_file()
    inner = dict(env, PYTEST_ADDOPTS=f"-q -p no:cacheprovider {INNER_TEST}")
    assert "1 passed" in _shell(second, clone, inner)

    site = _shell(
        "python -c \"import sysconfig; print(sysconfig.get_path('purelib'))\"", clone, env
    )
    # Anything there (numba's cache of a non-editable install outlives its uninstall) imports as
    # a namespace package ahead of the editable install, outside the checkout.
    leftovers = pathlib.Path(site.strip()) / "gpusom"
    assert not leftovers.exists(), sorted(p.name for p in leftovers.rglob("*"))

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    version = re.search(r'^version = "(.+)"$', (clone / "pyproject.toml").read_text(), re.M)[1]
    script = (
        "import gpusom, numpy as np\n"
        "data = np.random.default_rng(0).random((40, 3))\n"
        "lattice = gpusom.SOM((4, 5), seed=0, verbose=False).train(data, 500)\n"
        "np.savetxt('data.csv', data, delimiter=',')\n"
        "print(gpusom.__version__, gpusom.__file__, lattice.shape)\n"
    )
    out = _shell(f"python -c {shlex.quote(script)}", elsewhere, env).split()
    assert out[:2] == [version, str(clone / "gpusom" / "__init__.py")]
    assert _shell("gpusom --version", elsewhere, env).split() == ["gpusom", version]
    _shell("gpusom train data.csv --size 3x4 --seed 0 --out map.gpusom", elsewhere, env)
    assert (elsewhere / "map.gpusom").is_file()
