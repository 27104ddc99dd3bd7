"""`--agent trxl`: a Transformer-XL memory trained by the one PPO trainer.

The update must see exactly what acting saw: each stored step is re-evaluated over the window it acted on, rebuilt
from the per-step records the rollout keeps, across episode starts and past the window's length. A step never sees a
previous episode, attends directly to at most `trxl_memory_length` steps back, and the agent learns a task that
needs memory. Bad settings and env keywords are refused in one line; env keywords reach every env a run makes.
"""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import kill_after_rows, start_cli, train_run

from shelm import ppo
from shelm.acting import EnvLoop, EpisodeTracker
from shelm.agents import resolve_config
from shelm.agents.policy import Actor, build_policy
from shelm.agents.trxl import TrXLAgent
from shelm.cli import main
from shelm.envs import EnvSettings, make_vec_env, probe_env, success_rule
from shelm.rollout import RewardNormalizer, Rollout, window_minibatches
from shelm.runs import load_run_config, read_metrics

SHAPE = (9, 9, 3)
NO_MEMORY = torch.zeros(0)


ENCODINGS = ["absolute", "relative", "none"]


def _agent(layers: int = 2, window: int = 5, seed: int = 0, encoding: str = "absolute") -> TrXLAgent:
    torch.manual_seed(seed)
    agent = TrXLAgent(SHAPE, 4, layers=layers, heads=2, dim=16, memory_length=window, positional_encoding=encoding)
    return agent.eval()


def _frames(n_steps: int, n_envs: int, seed: int) -> torch.Tensor:
    return torch.randint(
        0, 256, (n_steps, n_envs, *SHAPE), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed)
    )


def _act(agent: TrXLAgent, frames: torch.Tensor, starts: torch.Tensor, state: torch.Tensor | None = None):
    """Step the agent through frames [T, N, ...] with episode starts [T, N]: logits [T, N, A], values [T, N], each
    step's record [T, N, F], and the state before the first and after the last step."""
    n_steps, n_envs = starts.shape
    state = agent.initial_state(n_envs) if state is None else state
    first, logits, values, records = state, [], [], []
    with torch.no_grad():
        for t in range(n_steps):
            step_logits, step_values, state = agent.step(frames[t], NO_MEMORY.expand(n_envs, 0), state, starts[t])
            logits.append(step_logits)
            values.append(step_values)
            records.append(agent.newest_record(state))
    return torch.stack(logits), torch.stack(values), torch.stack(records), first, state


def _recompute(rollout: Rollout, agent: TrXLAgent, n_minibatches: int) -> tuple[torch.Tensor, torch.Tensor]:
    """What the update computes for every step of the rollout, put back at [t, n]."""
    n_steps, n_envs = rollout.actions.shape
    logits = torch.full((n_steps, n_envs, 4), float("nan"))
    values = torch.full((n_steps, n_envs), float("nan"))
    with torch.no_grad():
        for batch in window_minibatches(rollout, n_minibatches, torch.Generator().manual_seed(0)):
            out_logits, out_values, auxiliary = agent.forward_windows(
                batch.obs[0], batch.memory[0], batch.window_rows, batch.window_index, batch.window_valid
            )
            assert auxiliary is None
            # The oldest slot's row says where the step is: env * (window + T) + t.
            env, t = batch.window_index[:, 0].div(agent.window + n_steps, rounding_mode="floor"), None
            t = batch.window_index[:, 0] - env * (agent.window + n_steps)
            assert torch.isnan(values[t, env]).all()  # every step once
            logits[t, env], values[t, env] = out_logits, out_values
    assert not torch.isnan(values).any()
    return logits, values


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_the_update_recomputes_what_acting_produced_at_every_step(encoding):
    """Across episode starts (one at step 0, others mid-rollout), more steps than the window, and a window carried
    over from before the rollout, the update's logits and values equal acting's (float32, to rounding), with every
    positional encoding."""
    agent = _agent(window=5, encoding=encoding)
    n_steps, n_envs = 23, 3
    # A previous rollout leaves every env mid-episode with a full window.
    _, _, _, _, carried = _act(agent, _frames(7, n_envs, 1), torch.zeros(7, n_envs, dtype=torch.bool))
    starts = torch.zeros(n_steps, n_envs, dtype=torch.bool)
    starts[0, 0] = starts[3, 1] = starts[9, 1] = starts[12, 2] = starts[13, 2] = True
    frames = _frames(n_steps, n_envs, 2)
    logits, values, records, first, _ = _act(agent, frames, starts, carried)
    assert (first[..., -1] > 0).all()  # the carried windows are full
    rollout = Rollout.empty(n_steps, n_envs, SHAPE, 0, first, agent.record_size)
    rollout.obs, rollout.episode_start, rollout.records, rollout.values = frames, starts, records, values
    rollout.compute_returns(torch.zeros(n_envs), 0.99, 0.95)
    again_logits, again_values = _recompute(rollout, agent, n_minibatches=4)
    torch.testing.assert_close(again_logits, logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(again_values, values, rtol=1e-5, atol=1e-5)
    # Each record ends with its step's position in its episode, counted on from the carried windows (7 steps in).
    positions = records[..., -1]
    assert positions[:, 0].tolist() == list(range(23))
    assert positions[:, 1].tolist() == [7, 8, 9, *range(6), *range(14)]
    assert positions[:, 2].tolist() == [*range(7, 19), 0, *range(10)]


@pytest.mark.parametrize(("encoding", "uses_positions"), [("absolute", True), ("relative", False), ("none", False)])
def test_only_the_absolute_encoding_reads_the_episode_positions(encoding, uses_positions):
    """The same window at later positions in its episode: the absolute encoding's outputs change, the relative one
    (which sees only how far back each step lies) and none give the same outputs bit for bit."""
    agent = _agent(window=4, encoding=encoding)
    frames, starts = _frames(6, 2, 7), torch.zeros(6, 2, dtype=torch.bool)
    starts[0] = True
    _, _, _, _, state = _act(agent, frames, starts)
    later = state.clone()
    later[..., agent.record_size - 1] += 40.0  # the same steps, 40 further into their episode
    obs, no_start = _frames(1, 2, 8)[0], torch.zeros(2, dtype=torch.bool)
    with torch.no_grad():
        logits, values, after = agent.step(obs, NO_MEMORY.expand(2, 0), state, no_start)
        later_logits, later_values, later_after = agent.step(obs, NO_MEMORY.expand(2, 0), later, no_start)
    assert agent.newest_record(after)[:, -1].tolist() == [6.0, 6.0]
    assert agent.newest_record(later_after)[:, -1].tolist() == [46.0, 46.0]
    same = torch.equal(logits, later_logits) and torch.equal(values, later_values)
    assert same != uses_positions


def test_the_trainers_rollouts_are_reproduced_by_its_update():
    """The same through the trainer's own collector on MiniGrid (episodes of 6 steps by an env keyword): on the
    second rollout, whose windows carry over from the first, the update reproduces every stored log-probability and
    value before any gradient step."""
    overrides = {"n_envs": 2, "n_steps": 20, "precision": "float32", "trxl_dim": 16, "trxl_heads": 2}
    overrides |= {"trxl_memory_length": 4, "env_kwargs": "max_steps=6"}
    config, _ = resolve_config("MiniGrid-MemoryS7-v0", "trxl", overrides)
    torch.manual_seed(0)
    envs = make_vec_env(EnvSettings.from_config(config), config.n_envs)
    policy = build_policy(config, probe_env(config))
    actor = Actor(policy, config.n_envs, torch.Generator().manual_seed(0))
    loop = EnvLoop(envs, actor, EpisodeTracker(config.n_envs, None, success_rule(config.env_id)))
    collector = ppo.Collector(loop, config, RewardNormalizer(config.n_envs, config.gamma, config.reward_clip))
    loop.reset(seed=0)
    collector.collect()
    rollout = collector.collect()
    envs.close()
    assert rollout.episode_start[1:].sum() >= 4 and (rollout.initial_state[..., -1] > 0).any()
    with torch.no_grad():
        for cpu_batch in ppo.minibatches(rollout, policy.agent, config, torch.Generator().manual_seed(0)):
            logits, values, _ = ppo.evaluate_minibatch(policy.agent, cpu_batch)
            logprob = torch.distributions.Categorical(logits=logits).log_prob(cpu_batch.actions)
            torch.testing.assert_close(logprob, cpu_batch.logprobs, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(values, cpu_batch.values, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_a_step_never_sees_a_previous_episode(encoding):
    """Changing every frame of an earlier episode leaves each later episode's outputs bit for bit the same, when
    acting and in the update; changing an earlier frame of the same episode changes them."""
    agent = _agent(window=8, encoding=encoding)
    starts = torch.zeros(14, 1, dtype=torch.bool)
    starts[0, 0] = starts[5, 0] = True  # episode A: steps 0-4, episode B: steps 5-13 (the window spans both)
    frames = _frames(14, 1, 3)
    other = frames.clone()
    other[:5] = _frames(5, 1, 4)
    changed_in_b = frames.clone()
    changed_in_b[6] = _frames(1, 1, 5)[0]
    outputs = []
    for seen in (frames, other, changed_in_b):
        logits, values, records, first, _ = _act(agent, seen, starts)
        rollout = Rollout.empty(14, 1, SHAPE, 0, first, agent.record_size)
        rollout.obs, rollout.episode_start, rollout.records, rollout.values = seen, starts, records, values
        rollout.compute_returns(torch.zeros(1), 0.99, 0.95)
        outputs.append((logits, values, *_recompute(rollout, agent, n_minibatches=3)))
    for acted, recomputed in zip(outputs[0], outputs[1], strict=True):
        assert torch.equal(acted[5:], recomputed[5:])
        assert not torch.equal(acted[:5], recomputed[:5])
    for acted, recomputed in zip(outputs[0], outputs[2], strict=True):
        assert torch.equal(acted[:6], recomputed[:6]) and not torch.equal(acted[7:], recomputed[7:])


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("layers", [1, 2])
def test_a_step_attends_directly_to_at_most_its_window(layers, encoding):
    """With one layer, the output at step t depends on frames t - W .. t only. Each deeper layer attends to inputs
    that were themselves computed over their own windows, so L layers reach L * W steps back and no further."""
    window, n_steps = 3, 16
    agent = _agent(layers=layers, window=window, encoding=encoding)
    starts = torch.zeros(n_steps, 1, dtype=torch.bool)
    starts[0, 0] = True
    frames = _frames(n_steps, 1, 6)
    logits, values, _, _, _ = _act(agent, frames, starts)
    reach = layers * window
    t = n_steps - 1
    for back in range(1, t + 1):
        changed = frames.clone()
        changed[t - back] = _frames(1, 1, 100 + back)[0]
        other_logits, other_values, _, _, _ = _act(agent, changed, starts)
        same = torch.equal(other_logits[t], logits[t]) and torch.equal(other_values[t], values[t])
        assert same == (back > reach), f"a frame {back} steps back {'does not change' if same else 'changes'} step t"


class CueRecall(gym.Env):
    """A memory task two steps long: the first frame is all red or all blue, the next `delay` frames are black, and
    on the last one the agent is paid 1 for naming the first frame's colour (action 0 red, 1 blue). Without memory
    the best policy is right half the time."""

    def __init__(self, delay: int = 2):
        self.observation_space = gym.spaces.Box(0, 255, (6, 6, 3), np.uint8)
        self.action_space = gym.spaces.Discrete(2)
        self.delay = delay

    def _frame(self) -> np.ndarray:
        frame = np.zeros((6, 6, 3), np.uint8)
        if self.t == 0:
            frame[..., 0 if self.cue == 0 else 2] = 255
        return frame

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.cue, self.t = int(self.np_random.integers(2)), 0
        return self._frame(), {}

    def step(self, action):
        self.t += 1
        if self.t <= self.delay:
            return self._frame(), 0.0, False, False, {}
        return self._frame(), float(int(action) == self.cue), True, False, {}


CUE_RECALL = "shelm-test/CueRecall-v0"
if CUE_RECALL not in gym.registry:
    gym.register(CUE_RECALL, entry_point=CueRecall)


def test_trxl_learns_a_task_that_needs_memory(tmp_path, capsys):
    """Recalling a colour seen 3 steps earlier, in 4k steps: its greedy policy names it in at least 15 of 16 new
    episodes (a memoryless agent: half). Measured over seeds 0-2 (absolute positions): sampled success 0.48-0.58 at
    first, 0.94-0.98 at the end."""
    run = tmp_path / "run"
    argv = ["train", "--env", CUE_RECALL, "--agent", "trxl", "--steps", "4096", "--n-envs", "8", "--seed", "0"]
    settings = ["n_steps=16", "n_minibatches=4", "n_epochs=4", "lr=1e-3", "lr_decay=linear", "max_grad_norm=0.25"]
    settings += ["trxl_dim=32", "trxl_heads=2", "trxl_layers=1", "trxl_memory_length=4", "stats_window=64"]
    settings += ["precision=float32", "torch_threads=1"]
    argv += [arg for setting in settings for arg in ("--set", setting)]
    assert main([*argv, "--run-dir", str(run), "--quiet"]) == 0
    rows = read_metrics(run)
    assert rows[0]["success_rate"] < 0.7 and rows[-1]["success_rate"] >= 0.9, [r["success_rate"] for r in rows]
    capsys.readouterr()
    assert main(["eval", str(run), "--episodes", "16", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["greedy"]["success_rate"] >= 15 / 16


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--set", "trxl_dim=30"], "trxl_dim=30 does not split into trxl_heads=4 equal heads; set trxl_dim to a"),
        (["--set", "trxl_heads=0"], "trxl_heads=0 must be >= 1"),
        (["--set", "trxl_layers=0"], "trxl_layers=0 must be >= 1"),
        (["--set", "trxl_memory_length=-1"], "trxl_memory_length=-1 must be >= 1"),
        (["--set", "trxl_reconstruction_coef=-0.5"], "trxl_reconstruction_coef=-0.5 must be >= 0"),
        (["--set", "trxl_positional_encoding=learned"], "expected one of absolute, relative, none"),
        (["--set", "trxl_memory_length=100000000"], "lower --n-envs or the agent's window (--set trxl_memory_length)"),
        (["--env-kwargs", "agent_view_size"], "--env-kwargs 'agent_view_size': expected KEY=VALUE"),
        (["--env-kwargs", "max_steps=5,max_steps=6"], "--env-kwargs gives max_steps twice"),
        (["--env-kwargs", "colour=red"], "--env-kwargs colour=red: env 'MiniGrid-MemoryS7-v0' refuses them"),
        (["--env-kwargs", "agent_view_size=4"], "--env-kwargs agent_view_size=4: env 'MiniGrid-MemoryS7-v0' refuses"),
    ],
)
def test_bad_settings_are_one_line_exit_2(tmp_path, capsys, extra, fragment):
    run = tmp_path / "run"
    argv = ["train", "--env", "MiniGrid-MemoryS7-v0", "--agent", "trxl", "--steps", "256", "--run-dir", str(run)]
    assert main([*argv, *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and fragment in err, err
    assert not run.exists()


def test_sigkill_then_resume_then_eval_and_inspect_keep_the_env_keywords(tmp_path, capsys):
    """Killed with SIGKILL and resumed, a trxl run finishes its budget with continuous records; the env keywords
    are in config.json and every later env has them (episodes of at most 8 steps); eval and inspect read the run,
    and the page shows the attention over the window."""
    run = tmp_path / "run"
    batch, iterations = 2 * 16, 10
    argv = ["train", "--env", "MiniGrid-MemoryS7-v0", "--agent", "trxl", "--steps", str(batch * iterations)]
    argv += ["--n-envs", "2", "--run-dir", str(run), "--quiet", "--env-kwargs", "max_steps=8", "--set", "n_steps=16"]
    for setting in ("trxl_dim=16", "trxl_heads=2", "trxl_memory_length=4", "checkpoint_every=1", "torch_threads=1"):
        argv += ["--set", setting]
    argv += ["--set", "trxl_reconstruction_coef=0.1"]
    kill_after_rows(start_cli(argv), run, rows=3, deadline_s=180)
    assert main(["train", "--resume", str(run), "--env-kwargs", "max_steps=9"]) == 2
    assert "drop --env-kwargs" in capsys.readouterr().err
    kill_after_rows(start_cli(["train", "--resume", str(run), "--quiet"]), run, rows=6, deadline_s=180)
    assert main(["train", "--resume", str(run), "--quiet"]) == 0

    rows = read_metrics(run)
    assert [row["global_step"] for row in rows] == list(range(batch, batch * (iterations + 1), batch))
    assert all(row["auxiliary_loss"] > 0 for row in rows) and all(row["length_mean"] <= 8 for row in rows[1:])
    assert load_run_config(run).env_kwargs == "max_steps=8"
    assert load_run_config(run).gym_kwargs == {"max_steps": 8}
    capsys.readouterr()
    assert main(["eval", str(run), "--episodes", "3", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["greedy"]["length_mean"] <= 8 and report["sampled"]["episodes"] == 3
    assert main(["inspect", str(run), "--json", "--out", str(tmp_path / "page")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["agent"] == "trxl" and summary["episodes"][0]["length"] <= 8
    page = (tmp_path / "page" / "inspect.html").read_text()
    assert "attention over its window" in page and 'title="step 0: ' in page


def test_the_memory_estimate_counts_the_window():
    """The pre-flight counts the rollout's per-step records and the agent's windows, which grow with the window."""
    sizes = []
    for window in (8, 64):
        config, _ = resolve_config("MiniGrid-MemoryS7-v0", "trxl", {"trxl_memory_length": window})
        policy = build_policy(config, probe_env(config))
        sizes.append(ppo.memory_estimate(config, (56, 56, 3), policy))
    assert sizes[1]["agent windows"] > 4 * sizes[0]["agent windows"] > 0
    assert sizes[0]["rollout"] == sizes[1]["rollout"] > config.n_steps * config.n_envs * 4 * config.trxl_dim * 2


def test_same_seed_gives_identical_metrics(tmp_path):
    """As every agent: the same seed gives the same metrics rows (all but the machine's timings), another differs."""
    settings = ["trxl_dim=16", "trxl_heads=2", "trxl_memory_length=6", "trxl_reconstruction_coef=0.1"]
    extra = [arg for setting in [*settings, "torch_threads=1"] for arg in ("--set", setting)]

    def rows(name: str, seed: int) -> list[dict]:
        extra_env = ["--env-kwargs", "max_steps=9"]
        run = train_run(tmp_path / name, "MiniGrid-MemoryS7-v0", "trxl", 384, *extra, *extra_env, seed=seed)
        return [{k: v for k, v in row.items() if k not in ppo.MACHINE_KEYS} for row in read_metrics(run)]

    first = rows("a", 1)
    assert len(first) == 3 and first == rows("b", 1) and first != rows("c", 2)
