"""TransformerXL from its original files.

Tiny models with random weights are written here the way the original code wrote wt103 (a state dict under the
original parameter names, saved with torch.save in the legacy format; config.json; the pickled vocabulary dict)
and loaded through `lm=transfo-xl:DIR`. Their outputs are checked against `reference_forward`, a direct
transcription of the original definition (sequence-first layout, memories of hidden states re-projected at every
segment, the zero-pad "rel shift"), which shares no code with shelm.
"""

from __future__ import annotations

import collections
import itertools
import json
import os
import pickle
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from shelm.cli import main
from shelm.errors import ShelmError
from shelm.memory.clip import shared_words
from shelm.memory.lm_backend import Prefix
from shelm.memory.transfo_xl import WordVocabulary
from shelm.memory.weights import load_language_model, load_tokenizer

CPU = torch.device("cpu")
TINY = {
    "model_type": "transfo-xl",
    "vocab_size": 40,
    "cutoffs": [10, 20],
    "d_model": 16,
    "d_embed": 16,
    "n_head": 2,
    "d_head": 8,
    "d_inner": 32,
    "div_val": 2,
    "n_layer": 2,
    "pre_lnorm": False,
    "same_length": True,
    "clamp_len": 1000,
    "attn_type": 0,
    "untie_r": True,
    "mem_len": 1600,
    "layer_norm_epsilon": 1e-5,
}
WORDS = ["<eos>", "the", ",", ".", "of", "and", "a", "<unk>", "@-@", "key", "ball", "door", "red", "green", "blue"]
WORDS += ["wall", "box", "grey", "goal", "lava", "purple", "yellow", "open", "locked", "nothing", "traffic", "light"]
WORDS += [f"w{i}" for i in range(40 - len(WORDS))]


# --- the original files and the original definition


def original_state_dict(config: dict, seed: int, prefix: str = "transformer.", shared_biases: bool = False) -> dict:
    """Random weights under the original names, including the adaptive-softmax head (crit.*) the files carry."""
    generator = torch.Generator().manual_seed(seed)

    def rand(*shape: int, std: float = 0.5) -> torch.Tensor:
        return torch.randn(*shape, generator=generator) * std

    d, inner, heads = config["d_model"], config["d_inner"], config["n_head"] * config["d_head"]
    # With div_val 1 the original has one table for all words (the cutoffs only split its softmax).
    bounds = [0, *config["cutoffs"], config["vocab_size"]] if config["div_val"] > 1 else [0, config["vocab_size"]]
    state: dict[str, torch.Tensor] = collections.OrderedDict()
    for i, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        width = config["d_embed"] // config["div_val"] ** i
        state[f"{prefix}word_emb.emb_layers.{i}.weight"] = rand(hi - lo, width)
        state[f"{prefix}word_emb.emb_projs.{i}"] = rand(d, width, std=width**-0.5)
    biases = {"r_w_bias": (config["n_head"], config["d_head"]), "r_r_bias": (config["n_head"], config["d_head"])}
    for layer in range(config["n_layer"]):
        p = f"{prefix}layers.{layer}."
        state[p + "dec_attn.qkv_net.weight"] = rand(3 * heads, d, std=d**-0.5)
        state[p + "dec_attn.o_net.weight"] = rand(d, heads, std=heads**-0.5)
        state[p + "dec_attn.layer_norm.weight"] = 1 + rand(d, std=0.1)
        state[p + "dec_attn.layer_norm.bias"] = rand(d, std=0.1)
        state[p + "dec_attn.r_net.weight"] = rand(heads, d, std=d**-0.5)
        if not shared_biases:
            state.update({p + f"dec_attn.{name}": rand(*shape) for name, shape in biases.items()})
        state[p + "pos_ff.CoreNet.0.weight"] = rand(inner, d, std=d**-0.5)
        state[p + "pos_ff.CoreNet.0.bias"] = rand(inner, std=0.1)
        state[p + "pos_ff.CoreNet.3.weight"] = rand(d, inner, std=inner**-0.5)
        state[p + "pos_ff.CoreNet.3.bias"] = rand(d, std=0.1)
        state[p + "pos_ff.layer_norm.weight"] = 1 + rand(d, std=0.1)
        state[p + "pos_ff.layer_norm.bias"] = rand(d, std=0.1)
    if shared_biases:
        state.update({prefix + name: rand(*shape) for name, shape in biases.items()})
    state[prefix + "pos_emb.inv_freq"] = 1 / 10000 ** (torch.arange(0.0, d, 2.0) / d)
    state["crit.cluster_weight"] = rand(len(config["cutoffs"]), d)
    state["crit.cluster_bias"] = rand(len(config["cutoffs"]))
    for i in range(len(bounds) - 1):
        state[f"crit.out_layers.{i}.weight"] = state[f"{prefix}word_emb.emb_layers.{i}.weight"]
        state[f"crit.out_layers.{i}.bias"] = rand(bounds[i + 1] - bounds[i])
        state[f"crit.out_projs.{i}"] = state[f"{prefix}word_emb.emb_projs.{i}"]
    return state


def original_vocab_dict() -> dict:
    """What the original code saved as vocab.bin: its Vocab object's attributes."""
    return {
        "special": ["<eos>"],
        "min_freq": 0,
        "max_size": None,
        "lower_case": False,
        "delimiter": None,
        "vocab_file": None,
        "counter": collections.Counter({w: 100 - i for i, w in enumerate(WORDS)}),
        "idx2sym": list(WORDS),
        "sym2idx": collections.OrderedDict((w, i) for i, w in enumerate(WORDS)),
        "eos_idx": 0,
    }


def write_original_files(directory: Path, config: dict, state: dict, weights: str = "legacy") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config))
    if weights == "safetensors":
        from safetensors.torch import save_file

        unique = {k: v.clone().contiguous() for k, v in state.items()}  # safetensors refuses shared storage
        save_file(unique, directory / "model.safetensors")
    else:
        torch.save(state, directory / "pytorch_model.bin", _use_new_zipfile_serialization=weights == "zip")
    torch.save(original_vocab_dict(), directory / "vocab.bin", _use_new_zipfile_serialization=False)
    return directory


def _rel_shift(x: torch.Tensor) -> torch.Tensor:
    """x [q, k, ...] indexed by (query, key position from the far end) -> indexed by (query, key): the original's
    trick of padding a zero column and reading the buffer with the other shape."""
    q, k = x.shape[:2]
    padded = torch.cat([x.new_zeros(q, 1, *x.shape[2:]), x], 1)
    return padded.view(k + 1, q, *x.shape[2:])[1:].view_as(x)


def reference_forward(state: dict, config: dict, inputs: torch.Tensor, mems: list | None, mem_len: int):
    """One segment of the original TransformerXL: inputs [q, B, d], mems per layer [m, B, d] or None.
    Returns (last layer's output [q, B, d], the new mems: each layer's input over the last mem_len positions)."""
    sd = {key.removeprefix("transformer."): value for key, value in state.items()}
    q, batch, d = inputs.shape
    heads, dh, eps = config["n_head"], config["d_head"], config["layer_norm_epsilon"]
    m = 0 if mems is None else mems[0].shape[0]
    klen = m + q
    ones = torch.ones(q, klen, dtype=torch.bool)
    masked = torch.triu(ones, 1 + m)
    if config["same_length"]:
        excess = klen - mem_len
        masked = masked | torch.tril(ones, -(q - excess if excess > 0 else q))
    distance = torch.arange(klen - 1, -1, -1.0)
    if config["clamp_len"] > 0:
        distance = distance.clamp(max=config["clamp_len"])
    angles = torch.outer(distance, sd["pos_emb.inv_freq"])
    r = torch.cat([angles.sin(), angles.cos()], -1)

    def norm(x: torch.Tensor, name: str) -> torch.Tensor:
        return F.layer_norm(x, (d,), sd[name + ".weight"], sd[name + ".bias"], eps)

    pre = config["pre_lnorm"]
    h, hids = inputs, []
    for layer in range(config["n_layer"]):
        hids.append(h)
        p = f"layers.{layer}."
        r_w = sd.get(p + "dec_attn.r_w_bias", sd.get("r_w_bias"))
        r_r = sd.get(p + "dec_attn.r_r_bias", sd.get("r_r_bias"))
        whole = h if m == 0 else torch.cat([mems[layer], h], 0)
        if pre:
            whole = norm(whole, p + "dec_attn.layer_norm")
        wq, wk, wv = (whole @ sd[p + "dec_attn.qkv_net.weight"].T).chunk(3, -1)
        wq = wq[-q:].reshape(q, batch, heads, dh)
        wk, wv = wk.reshape(klen, batch, heads, dh), wv.reshape(klen, batch, heads, dh)
        rk = (r @ sd[p + "dec_attn.r_net.weight"].T).reshape(klen, heads, dh)
        ac = torch.einsum("ibnd,jbnd->ijbn", wq + r_w, wk)
        bd = _rel_shift(torch.einsum("ibnd,jnd->ijbn", wq + r_r, rk))
        score = ((ac + bd) / dh**0.5).masked_fill(masked[:, :, None, None], float("-inf"))
        vec = torch.einsum("ijbn,jbnd->ibnd", score.softmax(1), wv).reshape(q, batch, heads * dh)
        out = vec @ sd[p + "dec_attn.o_net.weight"].T
        h = h + out if pre else norm(h + out, p + "dec_attn.layer_norm")
        x = norm(h, p + "pos_ff.layer_norm") if pre else h
        core = F.relu(x @ sd[p + "pos_ff.CoreNet.0.weight"].T + sd[p + "pos_ff.CoreNet.0.bias"])
        core = core @ sd[p + "pos_ff.CoreNet.3.weight"].T + sd[p + "pos_ff.CoreNet.3.bias"]
        h = h + core if pre else norm(h + core, p + "pos_ff.layer_norm")
    new_mems = [(x if mems is None else torch.cat([mems[i], x], 0))[-mem_len:] for i, x in enumerate(hids)]
    return h, new_mems


def reference_at_once(state: dict, config: dict, inputs: torch.Tensor, mem_len: int) -> torch.Tensor:
    """inputs [B, T, d] as one segment -> [B, T, d]."""
    return reference_forward(state, config, inputs.transpose(0, 1), None, mem_len)[0].transpose(0, 1)


def reference_segments(state: dict, config: dict, inputs: torch.Tensor, k: int, mem_len: int) -> torch.Tensor:
    """inputs [B, T*k, d] fed k positions at a time through the original mems -> each segment's last output."""
    mems, outputs = None, []
    for start in range(0, inputs.shape[1], k):
        out, mems = reference_forward(state, config, inputs[:, start : start + k].transpose(0, 1), mems, mem_len)
        outputs.append(out[-1])
    return torch.stack(outputs, 1)


@pytest.fixture(scope="module")
def make_model(tmp_path_factory):
    """(directory, original state, config) of a tiny TransformerXL with the given config changes."""
    made: dict[str, tuple[Path, dict, dict]] = {}

    def make(seed: int = 0, **changes) -> tuple[Path, dict, dict]:
        name = f"txl-{seed}-" + "-".join(f"{k}={v}" for k, v in sorted(changes.items()))
        if name not in made:
            config = {**TINY, **changes}
            state = original_state_dict(config, seed)
            made[name] = (write_original_files(tmp_path_factory.mktemp("txl") / name, config, state), state, config)
        return made[name]

    return make


def memory_of(directory: Path, mem_len: int, k: int = 1, **load):
    return load_language_model(f"transfo-xl:{directory}", **load).memory(CPU, mem_len, k)


def run_steps(memory, inputs: torch.Tensor, starts: torch.Tensor | None = None) -> torch.Tensor:
    """inputs [N, T*k, d] fed k at a time (episode starts bool [T, N], default: only the first) -> [N, T, d]."""
    n, length, _ = inputs.shape
    steps = length // memory.k
    if starts is None:
        starts = torch.zeros(steps, n, dtype=torch.bool)
        starts[0] = True
    memory.reset(n)
    chunks = inputs.view(n, steps, memory.k, -1)
    return torch.stack([memory.step(chunks[:, t], starts[t]) for t in range(steps)], 1)


def close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)


# --- the forward pass and the memory


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize(
    "changes",
    [{}, {"same_length": False}, {"pre_lnorm": True}, {"clamp_len": 2}, {"div_val": 1, "d_embed": 8}],
    ids=["wt103-like", "not-same-length", "pre-lnorm", "clamp-len-2", "div-val-1"],
)
def test_step_by_step_through_the_memory_equals_the_original_at_once(make_model, changes, k):
    directory, state, config = make_model(**changes)
    torch.manual_seed(0)
    inputs = torch.randn(3, 12, 16)  # 3 environments, 12 positions; the window holds them all
    expected = reference_at_once(state, config, inputs, mem_len=12)
    # The original's own mems mechanism gives the same (a check of the transcription above).
    close(reference_segments(state, config, inputs, k, mem_len=12), expected[:, k - 1 :: k])
    close(run_steps(memory_of(directory, 12, k), inputs), expected[:, k - 1 :: k])


@pytest.mark.parametrize("k", [1, 2])
@pytest.mark.parametrize("same_length", [True, False])
def test_the_sliding_window_equals_the_original_mems(make_model, same_length, k):
    """12 steps through a window of 4 positions: the window slides, as the original's mems did."""
    directory, state, config = make_model(same_length=same_length)
    torch.manual_seed(1)
    inputs = torch.randn(2, 12 * k, 16)
    outputs = run_steps(memory_of(directory, 4, k), inputs)
    close(outputs, reference_segments(state, config, inputs, k, mem_len=4))
    if same_length:  # every position sees exactly the last 4: one segment of everything gives the same
        close(outputs, reference_at_once(state, config, inputs, mem_len=4)[:, k - 1 :: k])


def test_a_sequence_fed_at_once_equals_it_fed_step_by_step(make_model):
    directory, _, _ = make_model()
    torch.manual_seed(2)
    inputs = torch.randn(2, 10, 16)
    at_once = run_steps(memory_of(directory, 10, k=10), inputs)[:, -1]
    step_by_step = run_steps(memory_of(directory, 10, k=1), inputs)[:, -1]
    close(at_once, step_by_step)


@pytest.mark.parametrize("k", [1, 2])
@pytest.mark.parametrize("same_length", [True, False])
def test_the_attention_replay_reproduces_the_sliding_window_step_outputs(make_model, same_length, k):
    """9 steps through a window of 4 positions replayed at once: the outputs of the step, attention rows of 1."""
    directory, _, _ = make_model(same_length=same_length)
    memory = memory_of(directory, 4, k)
    torch.manual_seed(4)
    inputs = torch.randn(1, 9 * k, 16)
    stepped = run_steps(memory, inputs)[0]
    attentions, replayed, _ = memory.attention(inputs.view(9, k, 16))
    close(replayed, stepped)
    assert len(attentions) == 2 and attentions[0].shape == (2, 9 * k, 9 * k)
    torch.testing.assert_close(attentions[1].sum(-1), torch.ones(2, 9 * k))
    assert (attentions[1].triu(1) == 0).all()  # nothing attends to a later position


def test_a_prefix_equals_its_tokens_fed_as_the_episodes_first_steps(make_model):
    """Without same_length and with a window holding everything, a prefix of 3 positions is exactly those 3
    vectors fed as the first 3 steps of the episode; env 1 has a prefix of 1 and starts again at step 4."""
    directory, _, _ = make_model(same_length=False)
    torch.manual_seed(5)
    prefixes = torch.randn(2, 3, 16)
    inputs = torch.randn(2, 8, 16)
    starts = torch.zeros(8, 2, dtype=torch.bool)
    starts[0], starts[4, 1] = True, True
    memory = load_language_model(f"transfo-xl:{directory}").memory(CPU, 20, 1, prefix_len=3)
    memory.reset(2)
    outputs = []
    for t in range(8):
        prefix = None
        if t == 0:
            prefix = Prefix(prefixes, torch.tensor([3, 1]))
        elif t == 4:
            prefix = Prefix(prefixes[1:, :2], torch.tensor([2]))
        outputs.append(memory.step(inputs[:, t, None], starts[t], prefix))
    outputs = torch.stack(outputs, 1)
    plain = memory_of(directory, 20)
    close(outputs[0], run_steps(plain, torch.cat([prefixes[0], inputs[0]])[None])[0, 3:])
    close(outputs[1, :4], run_steps(plain, torch.cat([prefixes[1, :1], inputs[1, :4]])[None])[0, 1:])
    close(outputs[1, 4:], run_steps(plain, torch.cat([prefixes[1, :2], inputs[1, 4:]])[None])[0, 2:])


@pytest.mark.parametrize("same_length", [True, False])
def test_the_replay_with_a_prefix_reproduces_the_steps_after_the_window_slid(make_model, same_length):
    directory, _, _ = make_model(same_length=same_length)
    torch.manual_seed(6)
    prefix, inputs = torch.randn(2, 16), torch.randn(1, 9, 1, 16)
    memory = load_language_model(f"transfo-xl:{directory}").memory(CPU, 3, 1, prefix_len=4)
    memory.reset(1)
    stepped = torch.stack(
        [
            memory.step(
                inputs[:, t], torch.tensor([t == 0]), Prefix(prefix[None], torch.tensor([2])) if t == 0 else None
            )
            for t in range(9)
        ]
    )[:, 0]
    replay = memory.attention(inputs[0], prefix)
    close(replay.outputs, stepped)
    assert replay.prefix == 2 and replay.attentions[0].shape == (2, 11, 11)
    assert (replay.attentions[0][:, -1, :2] > 0).all()  # the last step still attends to the prefix


@pytest.mark.parametrize("mem_len", [3, 20])
def test_a_new_episode_forgets_the_previous_one_exactly(make_model, mem_len):
    """Env 0 starts a new episode at step 7 while env 1 continues."""
    directory, state, config = make_model()
    torch.manual_seed(3)
    inputs = torch.randn(2, 16, 16)
    starts = torch.zeros(16, 2, dtype=torch.bool)
    starts[0] = True
    starts[7, 0] = True
    outputs = run_steps(memory_of(directory, mem_len), inputs, starts)
    fresh = reference_segments(state, config, inputs[:1, 7:], 1, mem_len)
    close(outputs[0, 7:], fresh[0])
    close(outputs[1], reference_segments(state, config, inputs[1:], 1, mem_len)[0])
    # Without the reset env 0 would still see its first episode.
    remembered = reference_segments(state, config, inputs[:1], 1, mem_len)[0, 7:]
    assert not torch.allclose(outputs[0, 7:], remembered, atol=1e-4)


def test_the_embedding_matrix_is_the_original_input_of_every_word(make_model):
    directory, state, config = make_model()
    memory = memory_of(directory, 4)
    bounds = [0, *config["cutoffs"], config["vocab_size"]]
    expected = []
    for word in range(config["vocab_size"]):  # the original's lookup of one id: its cluster, row and projection
        cluster = next(i for i in range(len(bounds) - 1) if word < bounds[i + 1])
        row = state[f"transformer.word_emb.emb_layers.{cluster}.weight"][word - bounds[cluster]]
        expected.append(F.linear(row, state[f"transformer.word_emb.emb_projs.{cluster}"]) * config["d_model"] ** 0.5)
    close(memory.embedding_matrix, torch.stack(expected))
    assert memory.embedding_matrix is memory.embedding_matrix  # computed once


def test_original_names_without_prefix_and_shared_biases(tmp_path):
    """The original PyTorch code's names (no `transformer.`) with one pair of relative biases for all layers."""
    config = {**TINY, "untie_r": False}
    state = original_state_dict(config, seed=4, prefix="", shared_biases=True)
    directory = write_original_files(tmp_path / "kimiyoung", config, state)
    torch.manual_seed(4)
    inputs = torch.randn(2, 6, 16)
    close(run_steps(memory_of(directory, 6), inputs), reference_at_once(state, config, inputs, mem_len=6))


@pytest.mark.parametrize("weights", ["zip", "safetensors"])
def test_every_weight_file_format_loads_the_same_model(make_model, tmp_path, weights):
    legacy, state, config = make_model()
    other = write_original_files(tmp_path / weights, config, state, weights=weights)
    assert load_language_model(f"transfo-xl:{other}").sha256 == load_language_model(f"transfo-xl:{legacy}").sha256


def test_lm_layers_and_lm_dtype(make_model):
    directory, state, config = make_model()
    full, first = (load_language_model(f"transfo-xl:{directory}", layers=n) for n in (0, 1))
    assert (full.layers, first.layers, len(first.model.layers)) == (2, 1, 1) and first.sha256 != full.sha256
    torch.manual_seed(5)
    inputs = torch.randn(2, 6, 16)
    close(run_steps(first.memory(CPU, 6), inputs), reference_at_once(state, {**config, "n_layer": 1}, inputs, 6))
    with pytest.raises(ShelmError, match="lm_layers=3, but the language model has 2 layers"):
        load_language_model(f"transfo-xl:{directory}", layers=3)
    half = memory_of(directory, 6, dtype="bfloat16")
    assert half.dtype == torch.bfloat16
    torch.testing.assert_close(run_steps(half, inputs), run_steps(memory_of(directory, 6), inputs), atol=0.1, rtol=0.1)


# --- loading safely


class Plain:
    """Any class of the test module: no loader may build it."""


class Payload:
    """Unpickling this would call `_ran`: a stand-in for a malicious file."""

    def __reduce__(self):
        return (_ran, ())


RAN: list[bool] = []


def _ran() -> None:
    RAN.append(True)


@pytest.mark.parametrize(
    ("entry", "named"),
    [(Plain(), "Plain"), (Payload(), "_ran"), (os.system, "system"), (3, "x (int)")],
    ids=["class-instance", "code-on-load", "function", "plain-value"],
)
def test_a_weights_file_holding_anything_but_tensors_is_refused(make_model, tmp_path, entry, named):
    _, state, config = make_model()
    directory = write_original_files(tmp_path / "bad", config, {**state, "x": entry})
    with pytest.raises(ShelmError, match=re.escape(named)) as error:
        load_language_model(f"transfo-xl:{directory}")
    assert "pytorch_model.bin" in str(error.value) and "\n" not in str(error.value)
    assert not RAN


@pytest.mark.parametrize("name", ["vocab.bin", "vocab.pkl"])
def test_a_vocabulary_holding_another_class_is_refused(make_model, tmp_path, name):
    _, state, config = make_model()
    directory = write_original_files(tmp_path / "bad", config, state)
    (directory / "vocab.bin").unlink()
    contents = {**original_vocab_dict(), "tokenizer": Payload()}
    if name == "vocab.bin":
        torch.save(contents, directory / name)
    else:
        (directory / name).write_bytes(pickle.dumps(contents))
    with pytest.raises(ShelmError, match=f"{name} holds the object .*_ran"):
        load_tokenizer(f"transfo-xl:{directory}")
    assert not RAN


def test_missing_unexpected_and_misshapen_keys_are_named(make_model, tmp_path):
    _, state, config = make_model()
    damaged = {k: v for k, v in state.items() if k != "transformer.layers.1.dec_attn.r_net.weight"}
    damaged["transformer.layers.0.dec_attn.extra"] = torch.zeros(2)
    directory = write_original_files(tmp_path / "keys", config, damaged)
    with pytest.raises(ShelmError) as error:
        load_language_model(f"transfo-xl:{directory}")
    message = str(error.value)
    assert "missing keys layers.1.dec_attn.r_net.weight" in message
    assert "unexpected keys layers.0.dec_attn.extra" in message
    directory = write_original_files(tmp_path / "shape", {**config, "d_inner": 64}, state)
    with pytest.raises(ShelmError, match=r"CoreNet.0.weight has shape \[32, 16\], but config.json implies \[64, 16\]"):
        load_language_model(f"transfo-xl:{directory}")


# --- the vocabulary


@pytest.mark.parametrize("name", ["vocab.bin", "vocab.pkl", "vocab.txt"])
def test_the_vocabulary_files_of_the_original(make_model, tmp_path, name):
    _, state, config = make_model()
    directory = write_original_files(tmp_path / name, config, state)
    (directory / "vocab.bin").unlink()
    if name == "vocab.bin":
        torch.save(original_vocab_dict(), directory / name)  # the current zip format this time
    elif name == "vocab.pkl":
        (directory / name).write_bytes(pickle.dumps(original_vocab_dict()))
    else:
        (directory / name).write_text("".join(f"{w} {100 - i}\n" for i, w in enumerate(WORDS)))
    vocabulary = load_tokenizer(f"transfo-xl:{directory}")
    assert len(vocabulary) == 40 and vocabulary.decode([9, 10]) == "key ball"
    assert vocabulary(" red key", add_special_tokens=False)["input_ids"] == [12, 9]
    assert vocabulary.encode("traffic-light zebra") == [25, 8, 26, 7]  # WikiText's "@-@"; unknown is <unk>


def test_a_vocabulary_of_another_size_is_refused(make_model, tmp_path):
    _, state, config = make_model()
    directory = write_original_files(tmp_path / "size", {**config, "vocab_size": 41}, state)
    with pytest.raises(ShelmError, match=r"vocab\.bin has 40 words, but config\.json says vocab_size=41"):
        load_tokenizer(f"transfo-xl:{directory}")


def test_every_word_of_a_word_level_vocabulary_can_be_shared_with_clip():
    class ClipVocab:
        def get_vocab(self):
            return {"ball</w>": 0, "key</w>": 1, "zebra</w>": 2, "door": 3}

    pairs = shared_words(ClipVocab(), WordVocabulary(["<unk>", "key", "door", "ball", "Ball"]))
    assert pairs == [("ball", 3), ("key", 1)]


# --- through the command line


def _train(run_dir: Path, lm: str, agent: str = "helm", *extra: str) -> int:
    argv = ["train", "--env", "MiniGrid-MemoryS7-v0", "--agent", agent, "--steps", "128", "--n-envs", "4"]
    argv += ["--run-dir", str(run_dir), "--quiet", "--set", f"lm={lm}", "--set", "mem_len=8", "--set", "n_steps=16"]
    return main([*argv, "--set", "cnn_features=32", "--set", "critic_hidden=32", *extra])


def test_helm_trains_and_evaluates_with_transfo_xl(make_model, tmp_path, capsys):
    directory, _, _ = make_model()
    lm = f"transfo-xl:{directory}"
    assert _train(tmp_path / "run", lm) == 0
    info = json.loads((tmp_path / "run" / "checkpoints" / "latest" / "trainer.json").read_text())
    memory = info["memory"]
    assert memory["lm"] == lm and memory["lm_sha256"] == load_language_model(lm, memory["lm_dtype"]).sha256
    assert main(["eval", str(tmp_path / "run"), "--episodes", "1", "--json"]) == 0  # the checkpoint's LM matches
    assert json.loads(capsys.readouterr().out)["episodes"] == 1


def test_shelm_trains_with_transfo_xl(make_model, tmp_path):
    """SHELM's words (symbolic retriever) become TransformerXL words; unknown ones are <unk>."""
    directory, _, _ = make_model()
    assert _train(tmp_path / "run", f"transfo-xl:{directory}", "shelm", "--set", "topk=2") == 0


def test_a_bad_transfo_xl_directory_exits_2_before_writing(make_model, tmp_path, capsys):
    assert _train(tmp_path / "run", "transfo-xl:/no/such/dir") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "lm='transfo-xl:/no/such/dir': /no/such/dir has no config.json" in err
    no_weights = tmp_path / "no-weights"
    no_weights.mkdir()
    (no_weights / "config.json").write_text(json.dumps(TINY))
    assert _train(tmp_path / "run", f"transfo-xl:{no_weights}") == 2
    assert "has none of model.safetensors, pytorch_model.bin" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
