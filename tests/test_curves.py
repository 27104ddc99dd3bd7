import json

import pytest

from shelm.cli import main
from shelm.config import TrainConfig
from shelm.inspect.figures import short_count


def _fake_run(path, agent, seed, values, **settings):
    path.mkdir(parents=True)
    config = TrainConfig(env_id="MiniGrid-MemoryS7-v0", agent=agent, seed=seed, **settings)
    (path / "config.json").write_text(json.dumps({"config": config.to_dict()}))
    rows = [{"global_step": 100 * (i + 1), "success_rate": v} for i, v in enumerate(values)]
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_plot_aggregates_seeds_and_reports_final_values(tmp_path, capsys):
    # 10 rows each: the final 10% of training is the last row.
    _fake_run(tmp_path / "a", "cnn", 1, [None] + [0.1] * 8 + [0.5])
    _fake_run(tmp_path / "b", "cnn", 2, [0.0] * 9 + [0.7])
    _fake_run(tmp_path / "c", "lstm", 1, [0.0] * 9 + [1.0])
    out = tmp_path / "fig.png"
    assert main(["plot", str(tmp_path / "a"), str(tmp_path / "b"), str(tmp_path / "c"), "--out", str(out)]) == 0
    table = capsys.readouterr().out
    assert "| MiniGrid-MemoryS7-v0 | cnn | 2 | 1,000 | 0.600 ± 0.100 |" in table
    assert "| MiniGrid-MemoryS7-v0 | lstm | 1 | 1,000 | 1.000 ± 0.000 |" in table
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_step_ticks_are_written_short():
    """The learning curves' step axis: 2M steps and its ticks must not run into each other."""
    ticks = [short_count(v) for v in (0, 500, 50_000, 250_000, 1_500_000, 2e6)]
    assert ticks == ["0", "500", "50k", "250k", "1.5M", "2M"]


def test_plot_tells_memory_variants_apart(tmp_path, capsys):
    _fake_run(tmp_path / "a", "shelm", 1, [0.2], retriever="symbolic", lm_layers=2)
    _fake_run(tmp_path / "b", "shelm", 1, [0.4], retriever="imagenet", lm_layers=2)
    _fake_run(tmp_path / "c", "helm", 1, [0.6])
    runs = [str(tmp_path / name) for name in "abc"]
    assert main(["plot", *runs, "--out", str(tmp_path / "fig.png")]) == 0
    table = capsys.readouterr().out
    assert "| shelm (symbolic oracle, lm_layers=2) | 1 | 100 | 0.200 ± 0.000 |" in table
    assert "| shelm (imagenet, lm_layers=2) | 1 | 100 | 0.400 ± 0.000 |" in table
    assert "| helm | 1 | 100 | 0.600 ± 0.000 |" in table


def test_plot_of_a_metric_without_values(tmp_path, capsys):
    _fake_run(tmp_path / "a", "cnn", 1, [None, None])
    assert main(["plot", str(tmp_path / "a")]) == 2
    assert "has no 'success_rate' values yet" in capsys.readouterr().err


@pytest.mark.parametrize("missing", ["nowhere"])
def test_plot_of_a_missing_run(tmp_path, capsys, missing):
    assert main(["plot", str(tmp_path / missing)]) == 2
    assert "not a shelm run directory" in capsys.readouterr().err
