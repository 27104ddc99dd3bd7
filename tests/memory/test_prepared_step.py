"""The prepared, compiled LM step against the Hugging Face eager step: equal outputs through episode resets and a
window that has slid, on the tiny Llama and GPT-2 built here and on the packaged SmolLM2; the fallbacks."""

from __future__ import annotations

import warnings

import pytest
import torch

from shelm.memory import language_model
from shelm.memory.language_model import LanguageModelMemory
from shelm.memory.weights import load_language_model

# CUDA joins every equality test on a machine that has it.
DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]


def run(memory: LanguageModelMemory, inputs: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
    """inputs [N, T, k, d], starts bool [T, N] -> outputs [N, T, d]."""
    memory.reset(inputs.shape[0])
    return torch.stack([memory.step(inputs[:, t], starts[t]) for t in range(inputs.shape[1])], dim=1)


def episode_inputs(n_envs: int, steps: int, k: int, width: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random inputs; every env starts at step 0, env 0 starts again at step 5 and env 1 at step 9."""
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(n_envs, steps, k, width, generator=generator)
    starts = torch.zeros(steps, n_envs, dtype=torch.bool)
    starts[0], starts[5, 0], starts[9, 1] = True, True, True
    return inputs, starts


def assert_same(actual: torch.Tensor, expected: torch.Tensor, dtype: str) -> None:
    """float32: elementwise to float rounding; bfloat16: each output vector to within 3% of its norm (bfloat16
    keeps 8 significant bits, and two kernel orders round differently)."""
    if dtype == "float32":
        torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-4)
        return
    error = (actual - expected).norm(dim=-1) / expected.norm(dim=-1)
    assert error.max().item() < 3e-2, error.max().item()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    ("model_dir", "dtype", "k"),
    [
        ("tiny_llama_dir", "float32", 2),
        ("tiny_llama_dir", "bfloat16", 1),
        ("tiny_gpt2_dir", "float32", 1),
        ("tiny_gpt2_dir", "bfloat16", 2),
    ],
)
def test_compiled_step_equals_the_eager_step(request, model_dir, dtype, k, device):
    model = load_language_model(str(request.getfixturevalue(model_dir)), dtype).model.to(device)
    mem_len = 3 * k  # 14 steps: the window slides several times
    inputs, starts = episode_inputs(3, 14, k, 32, seed=0)
    eager = run(LanguageModelMemory(model, mem_len, k), inputs, starts)
    compiled_memory = LanguageModelMemory(model, mem_len, k, compile=True)
    compiled = run(compiled_memory, inputs, starts)
    assert compiled_memory.prepared is not None and compiled_memory.metrics()["time_compile"] > 0
    assert compiled.dtype == eager.dtype == torch.float32 and compiled.shape == (3, 14, 32)
    assert_same(compiled, eager, dtype)
    # The restarted env 0 from step 5 on equals a memory that only ever saw that episode.
    fresh = run(LanguageModelMemory(model, mem_len, k), inputs[:1, 5:], starts[5:, :1])
    assert_same(compiled[:1, 5:], fresh, dtype)


def test_compiled_step_on_the_packaged_smollm2():
    model = load_language_model("smollm2", "bfloat16", layers=2).model
    inputs, starts = episode_inputs(4, 12, 1, 576, seed=1)
    inputs = inputs * 0.05  # the scale of SmolLM2's token embeddings
    eager = run(LanguageModelMemory(model, 4, 1), inputs, starts)
    compiled = run(LanguageModelMemory(model, 4, 1, compile=True), inputs, starts)
    assert_same(compiled, eager, "bfloat16")
    full_precision = run(
        LanguageModelMemory(load_language_model("smollm2", "float32", layers=2).model, 4), inputs, starts
    )
    assert_same(compiled, full_precision, "bfloat16")


def test_a_failed_compile_says_so_once_and_runs_the_prepared_step_eagerly(tiny_llama_dir, monkeypatch, capsys):
    def broken(decoder, device):
        def fail(*args):
            raise RuntimeError("no C++ compiler found\nmore detail")

        return fail

    monkeypatch.setattr(language_model, "compile_decoder", broken)
    model = load_language_model(str(tiny_llama_dir)).model
    inputs, starts = episode_inputs(2, 10, 1, 32, seed=2)
    memory = LanguageModelMemory(model, 3, compile=True)
    outputs = run(memory, inputs, starts)
    err = capsys.readouterr().err
    assert err.count("compiling the LM step failed (no C++ compiler found)") == 1 and len(err.splitlines()) == 1
    assert "time_compile" not in memory.metrics()
    assert_same(outputs, run(LanguageModelMemory(model, 3), inputs, starts), "float32")


def test_an_architecture_without_a_prepared_step_keeps_the_eager_step(tiny_llama_dir, monkeypatch, capsys):
    model = load_language_model(str(tiny_llama_dir)).model
    monkeypatch.setattr(model.config, "model_type", "mamba")
    memory = LanguageModelMemory(model, 3, compile=True)
    assert memory.prepared is None
    assert (
        capsys.readouterr().err == "shelm: lm_compile: no prepared step for model type 'mamba'; using the eager step\n"
    )
    inputs, starts = episode_inputs(2, 10, 1, 32, seed=3)
    assert run(memory, inputs, starts).shape == (2, 10, 32)


def test_the_eager_step_raises_no_transformers_warning(tiny_llama_dir):
    """transformers deprecated `past_key_values=` (a FutureWarning on every call); shelm passes `cache=`."""
    model = load_language_model(str(tiny_llama_dir)).model
    inputs, starts = episode_inputs(2, 10, 1, 32, seed=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run(LanguageModelMemory(model, 3), inputs, starts)
