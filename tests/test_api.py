"""The Python API (`shelm.train`, `shelm.load`, `TrainedAgent`): the README's example runs as printed; an env made by a
factory in this file (a class gymnasium has never heard of) trains, is interrupted, resumes through the API, and the
commands ask for its factory in one line; a loaded agent acting step by step in a user's loop takes exactly the
actions `shelm eval` takes on the same seeds; and what users get wrong (the state, the episode starts) is refused or
warned about."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import pytest
from conftest import eval_actions, play_one_episode, train_run

import shelm
from shelm import ppo
from shelm.cli import main
from shelm.envs import factory as factory_suite
from shelm.envs import register_suite
from shelm.errors import ShelmError
from shelm.evaluate import EVAL_SEED_OFFSET
from shelm.runs import read_metrics

README = Path(__file__).parent.parent / "README.md"
# Small networks and rollouts, one torch thread (this machine's cores are shared): seconds per run.
TINY = {"cnn_features": 64, "critic_hidden": 64, "lstm_hidden": 32, "n_steps": 32, "n_envs": 4, "torch_threads": 1}


class CueEnv(gym.Env):
    """8x8 RGB frames: the first is red or green (the cue), the next `delay` grey; the action after them (0 or 1) must
    name the cue for reward 1. Only an agent that remembers the first frame can succeed more than half the time."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"]}

    def __init__(self, delay: int = 2, render_mode: str | None = None):
        self.observation_space = gym.spaces.Box(0, 255, (8, 8, 3), np.uint8)
        self.action_space = gym.spaces.Discrete(2)
        self.delay, self.render_mode = delay, render_mode
        self.cue, self.t = 0, 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.cue, self.t = int(self.np_random.integers(2)), 0
        return self.render(), {}

    def step(self, action: int):
        self.t += 1
        if self.t <= self.delay:
            return self.render(), 0.0, False, False, {}
        reward = float(int(action) == self.cue)
        return self.render(), reward, True, False, {"is_success": reward > 0}

    def render(self) -> np.ndarray:
        frame = np.full((8, 8, 3), 128, np.uint8)
        if self.t == 0:
            frame[...] = (255, 0, 0) if self.cue == 0 else (0, 255, 0)
        return frame


def make_cue_env(delay: int = 2, render_mode: str | None = None) -> gym.Env:
    return CueEnv(delay, render_mode)


def make_other_env() -> gym.Env:
    return CueEnv(1)


def _one_line_error(capsys: pytest.CaptureFixture[str], code: int) -> str:
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1, err
    return err


# --- 1. the README's example ---------------------------------------------------------------------------------

# What the test changes in the README's example, each fragment found exactly once: fewer steps, tiny networks.
README_TINY = [
    ("steps=40_000", "steps=256"),
    ('settings={"lm_layers": 2}', 'settings={"lm_layers": 2, **TINY}'),
    ("range(300)", "range(60)"),
]


def readme_example() -> str:
    """The first Python block of the README's 'Python API' section."""
    section = README.read_text().split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    found = re.search(r"```python\n(.*?)```", section, re.S)
    assert found, "the README's Python API section has no python block"
    return found.group(1)


def test_the_readme_example_trains_loads_and_plays_in_a_user_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    code = readme_example()
    for old, new in README_TINY:
        assert code.count(old) == 1, f"the README example no longer says {old}"
        code = code.replace(old, new)
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {"TINY": TINY}
    exec(compile(code, str(README), "exec"), namespace)

    run, agent = namespace["run"], namespace["agent"]
    assert run.run_dir == Path("runs/empty-shelm") and (tmp_path / run.run_dir / "checkpoints/latest").is_dir()
    assert [row["global_step"] for row in run.metrics] == [128, 256]
    saved = json.loads((tmp_path / run.run_dir / "config.json").read_text())
    assert saved["command"].startswith("shelm.train('MiniGrid-Empty-5x5-v0', agent='shelm', steps=256")
    assert saved["config"]["lm_layers"] == 2 and saved["config"]["retriever"] == "symbolic"
    assert "env_factory" not in saved
    assert agent.global_step == 256 and agent.config.agent == "shelm"
    assert namespace["done"] is True  # the single-env loop played an episode to its end
    state = namespace["state"]
    assert (state.step, state.n_envs) == (60, 4)  # the state was passed back at every step: one loop, 60 steps


# --- 2. an env made by a factory -----------------------------------------------------------------------------


def test_a_factory_env_trains_resumes_through_the_api_and_the_commands_ask_for_the_factory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    run_dir = tmp_path / "cue"
    collect, calls = ppo.Collector.collect, []

    def interrupted_after_one_rollout(self: ppo.Collector) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return collect(self)

    monkeypatch.setattr(ppo.Collector, "collect", interrupted_after_one_rollout)
    settings = {**TINY, "checkpoint_every": 1, "env_kwargs": {"delay": 3}}
    with pytest.raises(KeyboardInterrupt):
        shelm.train(make_cue_env, agent="lstm", steps=256, settings=settings, run_dir=run_dir)
    monkeypatch.setattr(ppo.Collector, "collect", collect)

    env_id = f"factory:{make_cue_env.__module__}.make_cue_env"
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["env_factory"] is True and saved["config"]["env_id"] == env_id
    assert saved["config"]["env_kwargs"] == "delay=3"
    assert [row["global_step"] for row in read_metrics(run_dir)] == [128]

    # The commands cannot rebuild the env: one line each, naming the Python call that can.
    err = _one_line_error(capsys, main(["eval", str(run_dir)]))
    assert "made by a Python factory" in err and f"shelm.load('{run_dir}', env=make_cue_env)" in err
    err = _one_line_error(capsys, main(["train", "--resume", str(run_dir), "--quiet"]))
    assert f"shelm.train(make_cue_env, resume='{run_dir}')" in err
    err = _one_line_error(capsys, main(["inspect", str(run_dir)]))
    assert "made by a Python factory" in err
    assert [row["global_step"] for row in read_metrics(run_dir)] == [128]  # nothing was touched

    # From Python: the factory must be given again, and it must be the recorded one.
    with pytest.raises(ShelmError, match=r"shelm.train\(make_cue_env, resume="):
        shelm.train(resume=run_dir)
    with pytest.raises(ShelmError, match=r"was made by factory:.*make_cue_env; give that factory"):
        shelm.train(make_other_env, resume=run_dir)
    with pytest.raises(ShelmError, match="continues a run with its saved config; drop steps="):
        shelm.train(make_cue_env, steps=512, resume=run_dir)
    run = shelm.train(make_cue_env, resume=run_dir)
    assert [row["global_step"] for row in run.metrics] == [128, 256]  # continued from the checkpoint, no gap
    assert run.factory is make_cue_env and run.config.env_id == env_id

    with pytest.raises(ShelmError, match=r"shelm.load\('.*', env=make_cue_env\)"):
        shelm.load(run_dir)
    agent = run.agent()
    env = agent.make_env()
    assert isinstance(env.unwrapped, CueEnv) and env.unwrapped.delay == 3  # the run's env_kwargs reach the factory
    obs, info = env.reset(seed=5)
    agent.reset()
    steps, terminated = 0, False
    while not terminated:
        action = agent.act(obs, info)
        assert action in (0, 1)
        obs, _, terminated, _, info = env.step(action)
        steps += 1
    assert steps == 4  # the cue, 3 grey frames, then the answer ends it
    report = agent.evaluate(episodes=2)
    assert report["env_id"] == env_id and report["greedy"]["episodes"] == 2 and report["global_step"] == 256


def test_async_vectorization_takes_a_factory_by_its_importable_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    settings = {**TINY, "n_envs": 2, "vectorization": "async"}
    with pytest.raises(ShelmError, match=r"vectorization=async .* give a module-level function or class"):
        shelm.train(lambda: CueEnv(), agent="cnn", steps=64, settings=settings, run_dir=tmp_path / "lambda")
    assert not (tmp_path / "lambda").exists()
    # Spawned workers share nothing with this process: they find the factory by its name.
    spawning = dataclasses.replace(factory_suite.SUITE, async_context="spawn")
    register_suite(spawning, replace=True)
    try:
        run = shelm.train(make_cue_env, agent="cnn", steps=64, settings=settings, run_dir=tmp_path / "async")
    finally:
        register_suite(factory_suite.SUITE, replace=True)
    assert [row["global_step"] for row in run.metrics] == [64]


# --- 3. a user loop acts as `shelm eval` -------------------------------------------------------------------


@pytest.fixture(scope="module")
def shelm_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("runs") / "shelm"
    return train_run(run_dir, "MiniGrid-MemoryS7-v0", "shelm", 128, "--set", "lm_layers=1", "--set", "torch_threads=1")


def predict_loop(agent: shelm.TrainedAgent, n_envs: int, seed: int, steps: int, deterministic: bool) -> np.ndarray:
    """A Stable-Baselines3-style loop over the run's vector env; asserts that some env began a new episode in it."""
    envs = agent.make_vec_env(n_envs)
    obs, infos = envs.reset(seed=seed)
    state, episode_start = None, np.ones(n_envs, dtype=bool)
    chosen, restarts = [], 0
    for _ in range(steps):
        actions, state = agent.predict(obs, state, episode_start, deterministic=deterministic, info=infos)
        chosen.append(actions)
        obs, _, terminated, truncated, infos = envs.step(actions)
        episode_start = terminated | truncated
        restarts += int(episode_start.sum())
    envs.close()
    assert restarts > 0, "no env began a second episode: the episode starts went untested"
    return np.stack(chosen)


@pytest.mark.parametrize("agent_name", ["cnn", "lstm", "shelm"])
def test_a_loaded_agent_in_a_user_loop_acts_as_shelm_eval_on_the_same_seeds(
    agent_name: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
):
    run_dir = request.getfixturevalue(f"{agent_name}_run")
    # 9 episodes: eval plays them in 8 envs, env 0 twice, so every env plays on past an episode's end.
    recorded = eval_actions(run_dir, 9, monkeypatch)
    agent = shelm.load(run_dir)
    seed = agent.config.seed + EVAL_SEED_OFFSET  # `shelm eval`'s default seed, and the agent's
    assert agent.seed == seed

    # One env, step by step with `act`: env 0 of eval's vector env (seeded seed + 0), to the end of its episode.
    chosen = play_one_episode(agent, seed)
    assert chosen == recorded["greedy"][: len(chosen), 0].tolist()

    # Eight envs with `predict`, greedy and sampled (the agent's draws are seeded as eval's), as long as eval played.
    for mode, deterministic in (("greedy", True), ("sampled", False)):
        steps, n_envs = recorded[mode].shape
        assert n_envs == 8
        np.testing.assert_array_equal(predict_loop(agent, n_envs, seed, steps, deterministic), recorded[mode])


# --- what users get wrong ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cue_agent(tmp_path_factory: pytest.TempPathFactory) -> shelm.TrainedAgent:
    run_dir = tmp_path_factory.mktemp("runs") / "cue-lstm"
    return shelm.train(make_cue_env, agent="lstm", steps=128, settings=TINY, run_dir=run_dir).agent()


def test_predict_refuses_a_stale_state_and_warns_when_the_state_is_dropped(cue_agent: shelm.TrainedAgent):
    envs = cue_agent.make_vec_env(2)
    obs, _ = envs.reset(seed=0)
    actions, first = cue_agent.predict(obs)
    assert actions.shape == (2,) and actions.dtype == np.int64 and first.step == 1
    obs, *_ = envs.step(actions)
    _, second = cue_agent.predict(obs, first)
    with pytest.raises(ShelmError, match="pass the state the last predict returned"):
        cue_agent.predict(obs, first)  # the memory has moved on since `first`
    with pytest.raises(ShelmError, match="one bool per env"):
        cue_agent.predict(obs, second, episode_start=[True])
    with pytest.warns(UserWarning, match="pass back the state the previous call returned"):
        cue_agent.predict(obs)  # SB3's commonest mistake: forgetting the state empties the memory every step
    _, fresh = cue_agent.predict(obs, None, episode_start=np.ones(2, dtype=bool))  # beginning anew on purpose
    assert fresh.loop > second.loop and fresh.step == 1
    other = shelm.load(cue_agent.run_dir, env=make_cue_env)
    with pytest.raises(ShelmError, match="belongs to another agent"):
        other.predict(obs, fresh)
    single, state = cue_agent.predict(obs[0])  # one env's frame: SB3 returns an unbatched action
    assert single.shape == () and state.n_envs == 1


def test_act_refuses_what_it_cannot_see(cue_agent: shelm.TrainedAgent):
    cue_agent.reset(2)
    frames = np.zeros((2, 8, 8, 3), np.uint8)
    with pytest.raises(ShelmError, match=r"obs of shape \(2, 8, 8\): this agent sees frames of shape \(8, 8, 3\)"):
        cue_agent.act(frames[..., 0])
    with pytest.raises(ShelmError, match="obs of dtype float32: this agent sees uint8 frames"):
        cue_agent.act(frames.astype(np.float32))
    with pytest.raises(ShelmError, match="obs is a dict"):
        cue_agent.act({"image": frames})
    with pytest.raises(ShelmError, match=r"3 observations for a loop of 2 envs; call agent.reset\(3\)"):
        cue_agent.act(np.zeros((3, 8, 8, 3), np.uint8))
    assert cue_agent.act(frames).tolist() in ([0, 0], [0, 1], [1, 0], [1, 1])


def test_bad_api_input_is_one_line_and_writes_nothing(tmp_path: Path):
    target = tmp_path / "run"
    cases = [
        ({"env": CueEnv(), "agent": "cnn"}, "is an env object; shelm makes its own copies"),
        ({"env": 42, "agent": "cnn"}, "give a registered env id"),
        ({"env": make_cue_env, "agent": "cnn", "settings": {"lm_layer": 2}}, "did you mean lm_layers"),
        ({"env": make_cue_env, "agent": "cnn", "settings": {"n_steps": 2.5}}, "n_steps=2.5: expected an integer"),
        ({"env": make_cue_env, "agent": "dreamerv2"}, "cannot take a Python factory"),
        ({"env": make_cue_env, "agent": "cnn", "settings": {"env_kwargs": {"colour": 1}}}, "refuses them"),
        ({"env": "MiniGrid-Nope-v0", "agent": "cnn"}, "unknown env"),
        ({"env": make_cue_env}, "needs an env"),
    ]
    for kwargs, fragment in cases:
        settings = kwargs.pop("settings", TINY)
        with pytest.raises(ShelmError, match=fragment) as raised:
            shelm.train(**kwargs, steps=64, settings=settings, run_dir=target)
        assert "\n" not in str(raised.value)
        assert not target.exists()
