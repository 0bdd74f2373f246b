"""``benchmarks/bench.py``'s rounds: rows merged across rounds and the paired ratios."""

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench", REPO / "benchmarks/bench.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def timed_row(lib, times, first_call=0.5):
    return {"workload": "b", "library": lib, "times_s": times, "time_s": min(times),
            "first_call_s": first_call, "settings": "s", "qe": 0.1, "te": 0.0}  # fmt: skip


def test_rounds_merge_into_one_row_with_every_round(bench):
    row = bench.merged_rounds([timed_row("gpusom", [0.6, 0.5], 0.9), timed_row("gpusom", [0.4])])
    assert row["round_times_s"] == [0.5, 0.4]
    assert row["times_s"] == [0.6, 0.5, 0.4]
    assert row["time_s"] == 0.4
    assert row["first_call_s"] == 0.9  # the first round's: later rounds find the cache warm
    failed = {"workload": "b", "library": "gpusom", "error": "boom"}
    assert bench.merged_rounds([timed_row("gpusom", [0.5]), failed]) is failed


def test_round_ratios_pair_the_libraries_round_by_round(bench, capsys):
    rows = [
        bench.merged_rounds([timed_row("gpusom", [1.0]), timed_row("gpusom", [2.0])]),
        bench.merged_rounds([timed_row("numbasom", [10.0]), timed_row("numbasom", [30.0])]),
    ]
    bench.print_round_ratios(rows)
    out = capsys.readouterr().out
    # paired by round (10x, 15x), not best over best (10 / 1)
    assert "- b / numbasom: 10.0x, 15.0x; median 12.5x" in out
    assert bench.parse_args(["--rounds", "3"]).rounds == 3
    with pytest.raises(SystemExit):
        bench.parse_args(["--rounds", "0"])
