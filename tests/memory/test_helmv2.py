"""HELMv2: image features affinely mapped into the LM's embedding space with FIXED statistics, and the memory
end to end with the offline EfficientNet-Lite0 encoder and a tiny LM."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from shelm.agents import resolve_config
from shelm.envs import EnvSettings, make_vec_env, probe_env
from shelm.memory.helmv2 import AffineToEmbeddings, build_helmv2_memory

CPU = torch.device("cpu")


@pytest.fixture
def embeddings():
    torch.manual_seed(0)
    return torch.randn(50, 12) * torch.linspace(0.5, 3.0, 12) + torch.linspace(-2.0, 2.0, 12)


def _features(n, width, seed=1):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, width, generator=generator) * 4.0 + 7.0


# --- AffineToEmbeddings


def test_calibration_features_get_the_embeddings_mean_and_std(embeddings):
    mapping = AffineToEmbeddings(20, embeddings, seed=0)
    calibration = _features(64, 20)
    mapping.calibrate(calibration)
    mapped = mapping(calibration)
    assert mapped.shape == (64, 12)
    torch.testing.assert_close(mapped.mean(0), embeddings.mean(0), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(mapped.std(0, unbiased=False), embeddings.std(0), atol=1e-4, rtol=1e-4)
    # The statistics are those of the projected calibration features.
    projected = calibration @ mapping.projection
    torch.testing.assert_close(mapping.feature_mean, projected.mean(0))
    torch.testing.assert_close(mapping.feature_std, projected.std(0, unbiased=False))


def test_an_observation_maps_to_the_same_vector_in_any_batch(embeddings):
    mapping = AffineToEmbeddings(20, embeddings, seed=0)
    mapping.calibrate(_features(64, 20))
    batch = _features(16, 20, seed=5)
    mapped = mapping(batch)
    for i in range(16):
        torch.testing.assert_close(mapping(batch[i : i + 1])[0], mapped[i], atol=1e-6, rtol=1e-6)
    # Even a batch of one (a single environment) is mapped, not standardised away to zero.
    assert mapping(batch[:1]).abs().sum() > 0
    # The batch being mapped never changes the statistics.
    before = (mapping.feature_mean.clone(), mapping.feature_std.clone())
    mapping(_features(3, 20, seed=9) * 100)
    assert torch.equal(before[0], mapping.feature_mean) and torch.equal(before[1], mapping.feature_std)


def test_before_calibration_the_mapping_is_scale_and_shift(embeddings):
    mapping = AffineToEmbeddings(12, embeddings, seed=0)
    features = _features(5, 12)
    torch.testing.assert_close(mapping(features), features * embeddings.std(0) + embeddings.mean(0))


def test_equal_widths_need_no_projection(embeddings):
    mapping = AffineToEmbeddings(12, embeddings, seed=0)
    assert mapping.projection is None
    features = _features(8, 12)
    assert torch.equal(mapping.project(features), features)
    mapping.calibrate(features)
    assert set(mapping.state_dict()) == {"feature_mean", "feature_std"}
    torch.testing.assert_close(mapping.feature_mean, features.mean(0))


def test_the_projection_is_drawn_from_the_seed(embeddings):
    a = AffineToEmbeddings(20, embeddings, seed=3)
    b = AffineToEmbeddings(20, embeddings, seed=3)
    c = AffineToEmbeddings(20, embeddings, seed=4)
    assert a.projection.shape == (20, 12)
    assert torch.equal(a.projection, b.projection) and not torch.equal(a.projection, c.projection)
    # Drawing it does not touch torch's global random stream.
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    AffineToEmbeddings(20, embeddings, seed=3)
    assert torch.equal(torch.rand(3), expected)


def test_constant_dimensions_stay_finite(embeddings):
    mapping = AffineToEmbeddings(12, embeddings, seed=0)
    features = _features(10, 12)
    features[:, 4] = 2.0
    mapping.calibrate(features)
    mapped = mapping(features)
    assert torch.isfinite(mapped).all()
    torch.testing.assert_close(mapped[:, 4], embeddings.mean(0)[4].expand(10))


def test_state_dict_round_trip(embeddings):
    source = AffineToEmbeddings(20, embeddings, seed=0)
    source.calibrate(_features(32, 20))
    state = source.state_dict()
    assert set(state) == {"feature_mean", "feature_std", "projection"}
    target = AffineToEmbeddings(20, embeddings, seed=99)  # another projection, uncalibrated
    features = _features(4, 20, seed=2)
    assert not torch.allclose(target(features), source(features))
    target.load_state_dict(state)
    assert torch.equal(target(features), source(features))
    with pytest.raises(ValueError, match="expected tensors"):
        target.load_state_dict({"feature_mean": state["feature_mean"], "feature_std": state["feature_std"]})
    with pytest.raises(ValueError, match="shape"):
        target.load_state_dict({**state, "feature_mean": torch.zeros(13)})


# --- the memory end to end (EfficientNet-Lite0 pooled features; Empty-5x5 has few distinct frames)


@pytest.fixture(scope="module")
def config(tiny_llama_with_tokenizer_dir):
    overrides = {"lm": str(tiny_llama_with_tokenizer_dir), "mem_len": 8, "image_encoder": "imagenet", "seed": 0}
    config, _ = resolve_config("MiniGrid-Empty-5x5-v0", "helmv2", overrides)
    return config


@pytest.fixture(scope="module")
def memory(config):
    return build_helmv2_memory(config, probe_env(config), CPU)


@pytest.fixture(scope="module")
def frames():
    envs = make_vec_env(EnvSettings("MiniGrid-Empty-5x5-v0"), 4)
    try:
        obs, _ = envs.reset(seed=0)
    finally:
        envs.close()
    return torch.as_tensor(obs)


def test_calibration_frames_are_distinct_and_seeded(config):
    first = probe_env(config).frames  # what the mapping is calibrated on
    assert first.dtype == np.uint8 and first.shape[1:] == (56, 56, 3)
    assert len(np.unique(first, axis=0)) == len(first) > 1
    assert np.array_equal(probe_env(config).frames, first)


def test_helmv2_memory_steps_one_and_four_envs(memory, frames):
    assert memory.output_dim == 32 and memory.window_steps == 8 and memory.lm.k == 1
    assert memory.mapping.projection is not None and memory.mapping.projection.shape == (1280, 32)
    memory.reset(1)
    out = memory.step(frames[:1], torch.ones(1, dtype=torch.bool))
    assert out.shape == (1, 32) and torch.isfinite(out).all()
    single = memory.last.clone()
    memory.memo.entries.clear()  # computed again, this time in a batch of four
    memory.reset(4)
    for t in range(3):
        out = memory.step(frames, torch.full((4,), t == 0))
        assert out.shape == (4, 32) and torch.isfinite(out).all()
    # Env 0's input vector is the one it got alone: the batch does not change an observation's mapping.
    torch.testing.assert_close(memory.last[0], single[0], atol=1e-5, rtol=1e-5)
    words = memory.last_words()
    assert len(words) == 4 and all(len(w) == 1 and isinstance(w[0][0], str) for w in words)


def test_the_memo_hit_rate_is_reported_after_steps(memory, frames):
    memory.metrics()  # start counting here
    memory.reset(1)
    # The first frame of an episode is among the calibration frames (same seed): cached at build time.
    memory.step(frames[:1], torch.ones(1, dtype=torch.bool))
    noise = torch.as_tensor(np.random.default_rng(0).integers(0, 256, size=(1, 56, 56, 3), dtype=np.uint8))
    memory.step(noise, torch.zeros(1, dtype=torch.bool))
    memory.step(noise, torch.zeros(1, dtype=torch.bool))
    metrics = memory.metrics()
    assert metrics.pop("memo_hit_rate") == pytest.approx(2 / 3)
    assert set(metrics) <= {"time_compile"}  # the LM step compiles for a batch of one unless a test before did
    assert memory.metrics() == {}


def test_identity_and_state(memory, config):
    identity = memory.identity()
    assert identity["kind"] == "helmv2" and identity["image_encoder"] == "imagenet"
    assert identity["mem_len"] == 8 and identity["lm"] == config.lm and len(identity["image_encoder_sha256"]) == 64
    state = memory.state_dict()
    assert set(state) == {"feature_mean", "feature_std", "projection"} and state["projection"].shape == (1280, 32)
