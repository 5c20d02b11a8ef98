"""The benchmark itself works: a few seconds, 20 clients, our server and the naive one."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(os.name == "nt", reason="the benchmark reads /proc and raises limits with resource (POSIX)")
@pytest.mark.timeout(120)
def test_bench_smoke(tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench.py"), "--quick", "--targets",
                             "chatroom,naive", "--seconds", "1", "--json", str(out)],
                            capture_output=True, text=True, timeout=100, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "deliv/s" in result.stdout
    results = json.loads(out.read_text())["results"]
    assert {(r["target"], r["scenario"]) for r in results} == {
        (target, scenario) for target in ("chatroom", "naive") for scenario in ("light", "saturation", "slow")}
    for entry in results:
        assert entry["deliveries"] > 0
        if entry["target"] == "chatroom":
            assert (entry["lost"], entry["duplicated"], entry["out_of_order"]) == (0, 0, 0)


def test_on_windows_the_benchmark_says_it_needs_linux_or_macos():
    # Run as Windows would: sys.platform "win32" and no resource module to import.
    code = ("import runpy, sys; sys.modules['resource'] = None; sys.argv = ['bench.py', '--quick']\n"
            "sys.platform = 'win32'\n"
            "runpy.run_path('scripts/bench.py', run_name='__main__')\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert result.returncode == 2
    assert result.stderr.startswith("bench.py: error: the benchmark needs Linux or macOS") and result.stdout == ""
