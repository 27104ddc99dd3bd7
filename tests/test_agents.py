import pytest
import torch

from shelm.agents import AGENTS, get_agent_spec
from shelm.agents.cnn import CNNAgent
from shelm.agents.encoders import CNNEncoder, conv_layout
from shelm.agents.lstm import LSTMAgent
from shelm.agents.policy import build_policy
from shelm.config import TrainConfig
from shelm.envs import probe_env
from shelm.errors import ShelmError
from shelm.trainers import trainer_of


def test_conv_layout_follows_the_paper():
    assert conv_layout(56, 56) == ((8, 4), (4, 2))
    assert conv_layout(64, 64) == ((8, 4), (4, 2))
    assert conv_layout(9, 9) == ((4, 2), (2, 1))
    with pytest.raises(ValueError, match="too small"):
        conv_layout(4, 4)


@pytest.mark.parametrize(("shape", "flat"), [((56, 56, 3), 128 * 5 * 5), ((9, 9, 3), 128 * 2 * 2)])
def test_paper_cnn_shapes(shape, flat):
    encoder = CNNEncoder(shape, channels=(64, 128), features=1024)
    assert encoder.linear.in_features == flat
    out = encoder(torch.randint(0, 256, (5, *shape), dtype=torch.uint8))
    assert out.shape == (5, 1024) and (out >= 0).all()


def test_heads_match_the_spec_and_the_memory_reaches_them():
    torch.manual_seed(0)
    agent = CNNAgent((56, 56, 3), n_actions=7, memory_dim=10, cnn_features=32)
    actor, critic = agent.heads.actor, agent.heads.critic
    assert actor[0].in_features == 42 and actor[0].out_features == 128 and actor[3].out_features == 7
    assert critic[0].out_features == 512 and critic[3].out_features == 1
    assert not actor[1].elementwise_affine and not critic[1].elementwise_affine
    obs = torch.randint(0, 256, (4, 56, 56, 3), dtype=torch.uint8)
    memory = torch.randn(4, 10)
    logits, values, state = agent.step(obs, memory, agent.initial_state(4), torch.zeros(4, dtype=torch.bool))
    assert logits.shape == (4, 7) and values.shape == (4,) and state.shape == (4, 0)
    changed, _, _ = agent.step(obs, memory + 1, state, torch.zeros(4, dtype=torch.bool))
    assert not torch.allclose(logits, changed)  # the memory vector reaches the heads
    fused = agent.fuse(memory, agent.encoder(obs))  # what the heads read: memory first, then the frame, at unit norm
    assert fused.shape == (4, 42) and torch.allclose(fused[:, :10].norm(dim=-1), torch.ones(4))
    assert torch.allclose(fused[:, 10:].norm(dim=-1), torch.ones(4)) and torch.equal(agent.heads(fused)[0], logits)


def test_normalized_fusion_gives_each_stream_the_same_voice_whatever_its_scale():
    torch.manual_seed(0)
    obs = torch.randint(0, 256, (4, 56, 56, 3), dtype=torch.uint8)
    memory = torch.nn.functional.one_hot(torch.tensor([5, 6, 5, 6]), 11).float()
    start, none = torch.zeros(4, dtype=torch.bool), torch.zeros(4, 0)
    normalized = CNNAgent((56, 56, 3), n_actions=7, memory_dim=11, cnn_features=32, fusion="normalized")
    concat = CNNAgent((56, 56, 3), n_actions=7, memory_dim=11, cnn_features=32, fusion="concat")
    concat.load_state_dict(normalized.state_dict())  # the same weights; only the fusion differs
    for agent in (normalized, concat):
        agent.encoder.linear.weight.data.mul_(1000.0)  # the CNN's features grown a thousandfold
    # Concatenated, the grown features drown the memory: the cue barely moves the logits.
    swap = memory.flip(0)
    drowned = (concat.step(obs, memory, none, start)[0] - concat.step(obs, swap, none, start)[0]).abs().max()
    heard = (normalized.step(obs, memory, none, start)[0] - normalized.step(obs, swap, none, start)[0]).abs().max()
    assert heard > 100 * drowned
    # Normalized, neither stream's scale matters.
    scaled_logits, scaled_values, _ = normalized.step(obs, 7.0 * memory, none, start)
    logits, values, _ = normalized.step(obs, memory, none, start)
    torch.testing.assert_close(scaled_logits, logits)
    torch.testing.assert_close(scaled_values, values)
    normalized.encoder.linear.weight.data.div_(1000.0)
    torch.testing.assert_close(normalized.step(obs, memory, none, start)[0], logits, rtol=1e-4, atol=1e-5)
    # With no memory there is nothing to fuse: CNN-PPO is the same network, with the same weights, under any fusion.
    alone = CNNAgent((56, 56, 3), n_actions=7, cnn_features=32, fusion="normalized")
    for fusion in ("concat", "standardized"):
        plain = CNNAgent((56, 56, 3), n_actions=7, cnn_features=32, fusion=fusion)
        plain.load_state_dict(alone.state_dict())  # strict: no statistics for a memory it does not have
        torch.testing.assert_close(alone.step(obs, none, none, start)[0], plain.step(obs, none, none, start)[0])
    # Standardized: a memory that is mostly a vector common to every step, and a cue that perturbs it by 1%.
    common = torch.zeros(11)
    common[0] = 100.0
    told = common + memory
    standardized = CNNAgent((56, 56, 3), n_actions=7, memory_dim=11, cnn_features=32, fusion="standardized")
    standardized.load_state_dict(normalized.state_dict(), strict=False)  # the same weights; new statistics
    standardized.observe_memory(told.repeat(8, 1))

    def cue_effect(agent: CNNAgent) -> torch.Tensor:
        return (agent.step(obs, told, none, start)[0] - agent.step(obs, told.flip(0), none, start)[0]).abs().max()

    assert cue_effect(standardized) > 10 * cue_effect(normalized)
    with pytest.raises(ValueError, match="fusion 'sum'"):
        CNNAgent((56, 56, 3), n_actions=7, fusion="sum")


def test_lstm_state_resets_at_episode_start_and_sequences_match_steps():
    torch.manual_seed(0)
    agent = LSTMAgent((9, 9, 3), n_actions=4, lstm_hidden=8)
    obs = torch.randint(0, 256, (5, 2, 9, 9, 3), dtype=torch.uint8)
    none = torch.zeros(2, 0)
    carried = torch.randn(2, 4, 8)  # h and c of the actor LSTM, then of the critic LSTM
    logits_reset, _, _ = agent.step(obs[0], none, carried, torch.ones(2, dtype=torch.bool))
    logits_fresh, _, _ = agent.step(obs[0], none, agent.initial_state(2), torch.zeros(2, dtype=torch.bool))
    torch.testing.assert_close(logits_reset, logits_fresh)

    state, stepped = carried, []
    for t in range(5):
        logits, _, state = agent.step(obs[t], none, state, torch.zeros(2, dtype=torch.bool))
        stepped.append(logits)
    seq_logits, _ = agent.forward_sequences(obs, torch.zeros(5, 2, 0), carried)
    torch.testing.assert_close(seq_logits, torch.stack(stepped))


def test_lstm_actor_and_critic_have_their_own_recurrence():
    """The value loss trains the critic LSTM and the shared CNN, never the actor LSTM or the policy layer; the
    policy's logits do not depend on the critic's half of the state."""
    torch.manual_seed(0)
    agent = LSTMAgent((9, 9, 3), n_actions=4, lstm_hidden=8)
    obs = torch.randint(0, 256, (6, 3, 9, 9, 3), dtype=torch.uint8)
    state = torch.randn(3, 4, 8)
    _, values = agent.forward_sequences(obs, torch.zeros(6, 3, 0), state)
    values.square().mean().backward()
    grads = {name: p.grad for name, p in agent.named_parameters()}
    assert all(grads[name] is None for name in grads if name.startswith(("actor_lstm.", "actor.")))
    critic_side = [name for name in grads if name.startswith(("critic_lstm.", "critic.", "encoder."))]
    assert critic_side and all(grads[name].abs().sum() > 0 for name in critic_side)

    other_critic_state = state.clone()
    other_critic_state[:, 2:] = torch.randn(3, 2, 8)
    with torch.no_grad():
        logits, values = agent.forward_sequences(obs, torch.zeros(6, 3, 0), state)
        logits_other, values_other = agent.forward_sequences(obs, torch.zeros(6, 3, 0), other_critic_state)
    torch.testing.assert_close(logits, logits_other)
    assert not torch.allclose(values, values_other)


def test_registry():
    config = TrainConfig()
    for name, spec in AGENTS.items():
        if spec.build is None:  # its trainer builds its own networks: its runs hold no shelm policy, which says so
            assert not trainer_of(name).reads_policy
            other = TrainConfig(env_id="MiniGrid-Empty-5x5-v0", agent=name)
            with pytest.raises(ShelmError, match=f"agent '{name}' builds no shelm PPO policy"):
                build_policy(other, probe_env(other))
            continue
        assert trainer_of(name).reads_policy
        agent = spec.build(config, (56, 56, 3), 7, 0)
        assert agent.is_recurrent == (name == "lstm")
    # A variant's label names what sets it apart: here the papers' fusion, which only a memory agent has.
    papers = TrainConfig(fusion="concat", lm_layers=2)
    assert get_agent_spec("oracle").label(papers) == "oracle [control] (fusion=concat)"
    assert get_agent_spec("helm").label(papers) == "helm (lm_layers=2, fusion=concat)"
    assert get_agent_spec("cnn").label(papers) == "cnn"
    with pytest.raises(ShelmError, match="unknown agent 'transformer'"):
        get_agent_spec("transformer")
