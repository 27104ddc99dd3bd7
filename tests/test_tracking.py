"""`--track`: Weights & Biases gets what TensorBoard gets, the config and the inspect page; run offline here
(`WANDB_MODE=offline`), into the run directory's wandb/ folder."""

from __future__ import annotations

import json

from shelm.cli import main
from shelm.tracking import wandb_run_id


def test_track_logs_metrics_config_and_the_inspect_page_offline(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = tmp_path / "run"
    argv = [
        "train",
        "--env",
        "MiniGrid-Empty-5x5-v0",
        "--agent",
        "cnn",
        "--steps",
        "256",
        "--n-envs",
        "2",
    ]  # episodes end
    argv += ["--set", "n_steps=32", "--set", "cnn_features=32", "--set", "critic_hidden=32", "--track"]
    assert main([*argv, "--run-dir", str(run), "--quiet", "--set", "wandb_project=shelm-test"]) == 0
    config = json.loads((run / "config.json").read_text())["config"]
    assert config["track"] is True and config["wandb_project"] == "shelm-test"
    assert main(["inspect", str(run), "--episodes", "1", "--json"]) == 0
    capsys.readouterr()

    # Training and inspection wrote into one offline W&B run, named by the run directory's config.
    runs = sorted((run / "wandb").glob("offline-run-*"))
    assert runs and all(r.name.endswith(wandb_run_id(run)) for r in runs)
    records = b"".join(path.read_bytes() for r in runs for path in r.glob("run-*.wandb"))
    for key in (b"shelm/return_mean", b"shelm/policy_loss", b"shelm/sps", b"inspect/page", b"wandb_project"):
        assert key in records, key
    pages = [page for r in runs for page in (r / "files" / "media" / "html").rglob("*.html")]
    assert pages and "Episode 1" in pages[0].read_text()

    # --track on a resumed run is a new setting, refused like the others.
    assert main(["train", "--resume", str(run), "--track"]) == 2
    assert "drop --track" in capsys.readouterr().err
