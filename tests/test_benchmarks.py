"""benchmarks/trxl_vs_cleanrl.py without the peer: bad flags are refused in one line before anything runs, the peer's
iterations are timed from the metrics rows its harness writes (a stand-in harness here), and the rows' timings become
the report's medians and ratio."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY / "benchmarks"))
import training  # noqa: E402
import trxl_vs_cleanrl  # noqa: E402


@pytest.fixture
def peer_script(tmp_path: Path) -> Path:
    script = tmp_path / "peer" / "ppo_trxl.py"
    script.parent.mkdir()
    script.write_text("")
    return script


@pytest.mark.parametrize(
    ("flags", "fragment"),
    [
        (["--peer-script", "/nonexistent/ppo_trxl.py"], "--peer-script /nonexistent/ppo_trxl.py: no such file"),
        (["--peer-script", str(REPOSITORY / "experiments" / "trxl_parity.py")], "it is inside this repository"),
        (["--iterations", "0"], "--iterations 0: give 1 or more"),
        (["--warmup", "-1"], "--warmup -1: give 0 or more"),
        (["--repeats", "0"], "--repeats 0: give 1 or more"),
        (["--threads", "4096"], "--threads 4096: give 1 to"),
    ],
)
def test_bad_flags_are_refused_in_one_line_and_nothing_is_written(tmp_path, capsys, peer_script, flags, fragment):
    out = tmp_path / "report.md"
    argv = ["--peer-script", str(peer_script), "--out", str(out), *flags]  # a later --peer-script overrides
    with pytest.raises(SystemExit) as stopped:
        trxl_vs_cleanrl.main(argv)
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and fragment in err, err
    assert not out.exists()


# A stand-in for experiments/trxl_parity.py: one trial folder with a metrics row per iteration of the peer's
# rollout, each iteration twice as fast as the one before; it saves what it was given beside the metrics.
FAKE_HARNESS = """
import argparse, json, os, sys
from pathlib import Path

parser = argparse.ArgumentParser()
for flag in ("--peer-script", "--seeds", "--steps", "--threads", "--out"):
    parser.add_argument(flag)
args = parser.parse_args()
run_dir = Path(args.out) / "MiniGrid-MemoryS9-v0__cleanrl-trxl__s1"
run_dir.mkdir(parents=True)
with (run_dir / "metrics.jsonl").open("w") as file:
    for iteration in range(int(args.steps) // 4096):
        file.write(json.dumps({"global_step": 4096 * (iteration + 1), "sps": 100.0 * 2**iteration}) + "\\n")
seen = {"argv": sys.argv[1:], "omp": os.environ.get("OMP_NUM_THREADS")}
Path(os.environ["SEEN"]).write_text(json.dumps(seen))
"""


def test_the_peers_iterations_are_timed_from_its_harness_metrics_rows_after_the_warmup(
    tmp_path, monkeypatch, peer_script
):
    harness = tmp_path / "harness.py"
    harness.write_text(FAKE_HARNESS)
    monkeypatch.setattr(trxl_vs_cleanrl, "HARNESS", harness)
    monkeypatch.setenv("SEEN", str(tmp_path / "seen.json"))
    seconds = trxl_vs_cleanrl.measure_peer(peer_script, 2, warmup=1, iterations=2)
    assert seconds == [4096 / 200, 4096 / 400]  # the first row, the warm-up, is left out
    seen = json.loads((tmp_path / "seen.json").read_text())
    assert seen["omp"] == "2"
    assert seen["argv"][:6] == ["--peer-script", str(peer_script), "--seeds", "1", "--steps", str(3 * 4096)]
    assert seen["argv"][6:8] == ["--threads", "2"]


def test_a_failing_peer_stops_the_benchmark_with_its_exit_code(tmp_path, monkeypatch, peer_script):
    harness = tmp_path / "harness.py"
    harness.write_text("import sys\nprint('trxl_parity.py: the peer lacks tyro', file=sys.stderr)\nsys.exit(2)\n")
    monkeypatch.setattr(trxl_vs_cleanrl, "HARNESS", harness)
    with pytest.raises(SystemExit) as stopped:
        trxl_vs_cleanrl.measure_peer(peer_script, 1, warmup=0, iterations=1)
    assert stopped.value.code == 2


def test_the_rows_run_interleaved_and_the_report_gives_medians_and_the_ratio(capsys, peer_script):
    calls = []

    def timed(key: str, seconds: list[float]):
        def measure(warmup: int, iterations: int) -> list[float]:
            calls.append((key, warmup, iterations))
            return [seconds[sum(k == key for k, _, _ in calls) - 1]] * iterations

        return measure

    rows = [
        trxl_vs_cleanrl.Row("peer", "CleanRL ppo_trxl.py (peer)", timed("peer", [80.0, 40.0, 64.0])),
        trxl_vs_cleanrl.Row("shelm", "shelm trxl", timed("shelm", [32.0, 64.0, 16.0])),
    ]
    sps = training.interleaved_sps(rows, repeats=3, warmup=1, iterations=2, batch=4096)
    assert [key for key, _, _ in calls] == ["peer", "shelm"] * 3
    assert {(w, i) for _, w, i in calls} == {(1, 2)}
    assert sps == {"peer": [51.2, 102.4, 64.0], "shelm": [128.0, 64.0, 256.0]}

    args = SimpleNamespace(peer_script=peer_script, warmup=1, iterations=2, repeats=3, threads=1)
    text = trxl_vs_cleanrl.report(args, rows, sps, ["1.00, 1.00, 1.00", "2.00, 2.00, 2.00"])
    assert "| CleanRL ppo_trxl.py (peer) | 64 | 51, 102, 64 |" in text
    assert "| shelm trxl | 128 | 128, 64, 256 |" in text
    assert "| shelm trxl / peer | 2.00x | shelm trxl >= 1.0x the peer: met |" in text
    assert "at start: 1.00, 1.00, 1.00; at end: 2.00, 2.00, 2.00" in text
    slower = trxl_vs_cleanrl.report(args, rows, {"peer": [100.0], "shelm": [50.0]}, ["0", "0"])
    assert "| shelm trxl / peer | 0.50x | shelm trxl >= 1.0x the peer: not met |" in slower
