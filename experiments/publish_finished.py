"""Copy the light part (config.json, metrics.jsonl) of every FINISHED trial of a sweep folder into docs/runs/NAME.

A trial is finished when its last metrics row has reached the config's total_steps. Unfinished trials are left
alone, so a docs folder only ever holds complete curves. Copies are atomic (write, then rename). The sweep record
(sweep.json) is merged, not replaced: a sweep folder made again after the working tree was lost records only its
own invocations, and the published record keeps those of the earlier ones too.

    python experiments/publish_finished.py runs/evidence/memory-s11 memory-s11
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from shelm.files import write_atomic, write_json_atomic
from shelm.inspect.curves import run_identity


def finished(run_dir: Path) -> bool:
    """Whether the trial's last metrics row reached its step budget (a shelm run's or a peer's, as `run_identity`
    reads either config.json)."""
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return bool(lines) and json.loads(lines[-1])["global_step"] >= run_identity(run_dir).total_steps


def read_invocations(path: Path) -> list[dict]:
    """The invocations a sweep record holds; a damaged record stops the publishing with one line naming it."""
    try:
        invocations = json.loads(path.read_text())["invocations"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
        invocations = None
    known_by = {"command", "started"}  # the keys an invocation is told apart by
    if not isinstance(invocations, list) or not all(isinstance(e, dict) and known_by <= e.keys() for e in invocations):
        print(
            f"publish_finished.py: '{path}' is damaged; move it away (the finished trials were copied)", file=sys.stderr
        )
        sys.exit(2)
    return invocations


def merge_sweep_records(source: Path, target: Path) -> None:
    """Write into `target` its own invocations followed by those of `source` it does not hold yet."""
    invocations = read_invocations(target) if target.is_file() else []
    known = {(entry["command"], entry["started"]) for entry in invocations}
    invocations += [entry for entry in read_invocations(source) if (entry["command"], entry["started"]) not in known]
    write_json_atomic(target, {"invocations": invocations})


def publish(sweep_dir: Path, name: str, docs: Path = Path("docs/runs")) -> list[str]:
    published = []
    for run_dir in sorted(p.parent for p in sweep_dir.glob("*/metrics.jsonl")):
        if not (run_dir / "config.json").is_file() or not finished(run_dir):
            continue
        target = docs / name / run_dir.name
        target.mkdir(parents=True, exist_ok=True)
        for file in ("config.json", "metrics.jsonl"):
            write_atomic(target / file, (run_dir / file).read_bytes())
        published.append(run_dir.name)
    if (sweep_dir / "sweep.json").is_file() and published:
        merge_sweep_records(sweep_dir / "sweep.json", docs / name / "sweep.json")
    return published


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python experiments/publish_finished.py SWEEP_DIR NAME")
    for trial in publish(Path(sys.argv[1]), sys.argv[2]):
        print(f"published {trial}")
