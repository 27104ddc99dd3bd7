import pytest
import torch

from shelm.agents import AGENTS, get_agent_spec
from shelm.agents.cnn import CNNAgent
from shelm.agents.encoders import CNNEncoder, conv_layout
from shelm.agents.lstm import LSTMAgent
from shelm.config import TrainConfig
from shelm.errors import ShelmError


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


def test_heads_match_the_spec_and_memory_is_concatenated():
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


def test_lstm_state_resets_at_episode_start_and_sequences_match_steps():
    torch.manual_seed(0)
    agent = LSTMAgent((9, 9, 3), n_actions=4, lstm_hidden=8)
    obs = torch.randint(0, 256, (5, 2, 9, 9, 3), dtype=torch.uint8)
    none = torch.zeros(2, 0)
    carried = torch.randn(2, 2, 8)
    logits_reset, _, _ = agent.step(obs[0], none, carried, torch.ones(2, dtype=torch.bool))
    logits_fresh, _, _ = agent.step(obs[0], none, agent.initial_state(2), torch.zeros(2, dtype=torch.bool))
    torch.testing.assert_close(logits_reset, logits_fresh)

    state, stepped = carried, []
    for t in range(5):
        logits, _, state = agent.step(obs[t], none, state, torch.zeros(2, dtype=torch.bool))
        stepped.append(logits)
    seq_logits, _ = agent.forward_sequences(obs, torch.zeros(5, 2, 0), carried)
    torch.testing.assert_close(seq_logits, torch.stack(stepped))


def test_registry():
    config = TrainConfig()
    for name, spec in AGENTS.items():
        if spec.trainer != "ppo":  # another trainer's agent has no PPO policy, and says so
            with pytest.raises(ShelmError, match=f"agent '{name}' is trained by .* and has no shelm PPO policy"):
                spec.build(config, (56, 56, 3), 7, 0)
            continue
        agent = spec.build(config, (56, 56, 3), 7, 0)
        assert agent.is_recurrent == (name == "lstm")
    with pytest.raises(ShelmError, match="unknown agent 'transformer'"):
        get_agent_spec("transformer")
