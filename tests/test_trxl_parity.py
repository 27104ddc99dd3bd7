"""experiments/trxl_parity.py without the peer: a stand-in peer script, run the way the real one is (its own file,
its own command line, the vector env it builds), has its episodes scored by shelm's tracker into the metrics layout
`shelm report` reads, and sees gymnasium 0.29's vector API; a peer file inside the repository, or missing, is
refused in one line; the shelm command it prints parses into a valid run of the peer's recipe."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import gymnasium as gym
import pytest

from shelm.agents import resolve_config
from shelm.config import parse_overrides
from shelm.inspect.curves import run_identity
from shelm.runs import read_metrics

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY / "experiments"))
import publish_finished  # noqa: E402
import trxl_parity  # noqa: E402

# A stand-in for the peer: parses its own arguments, builds gymnasium.vector.SyncVectorEnv as the peer does, steps
# it in rollouts and reads finished episodes from `final_info` the way gymnasium 0.29 lays it out (one info dict per
# env, None for the others). Its episodes last 3 steps and pay 1 or 2 by the last action; it saves what it read.
FAKE_PEER = """
import argparse
import json
import sys

import gymnasium as gym
import numpy as np


class ThreeSteps(gym.Env):
    observation_space = gym.spaces.Box(0, 255, (4, 4, 3), np.uint8)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros((4, 4, 3), np.uint8), {}

    def step(self, action):
        self.t += 1
        return np.zeros((4, 4, 3), np.uint8), float(self.t == 3) * (1 + int(action)), self.t == 3, False, {}


parser = argparse.ArgumentParser()
for key in ("num_envs", "num_steps", "total_timesteps", "seed"):
    parser.add_argument(f"--{key}", type=int)
args, rest = parser.parse_known_args()
envs = gym.vector.SyncVectorEnv(
    [lambda: gym.wrappers.RecordEpisodeStatistics(ThreeSteps()) for _ in range(args.num_envs)]
)
envs.reset(seed=args.seed)
returns = []
for iteration in range(args.total_timesteps // (args.num_envs * args.num_steps)):
    for step in range(args.num_steps):
        _, _, _, _, infos = envs.step(np.full(args.num_envs, step % 2))
        if "final_info" in infos:
            for info in infos["final_info"]:
                if info and "episode" in info:
                    returns.append(float(info["episode"]["r"]))
envs.close()
with open("seen.json", "w") as file:
    json.dump({"returns": returns, "argv": sys.argv[1:]}, file)
"""


def test_a_stand_in_peer_is_scored_into_shelms_metrics_layout(tmp_path):
    peer = tmp_path / "peer" / "ppo_trxl.py"
    peer.parent.mkdir()
    peer.write_text(FAKE_PEER)
    recipe = {"num_envs": 2, "num_steps": 6, "trxl_dim": 8}
    before = (list(sys.argv), list(sys.path), gym.vector.SyncVectorEnv, Path.cwd())
    run_dir = trxl_parity.train_peer(peer, trxl_parity.ENV_ID, 5, 36, tmp_path / "out", "cmd", recipe=recipe)
    assert before == (sys.argv, sys.path, gym.vector.SyncVectorEnv, Path.cwd())  # all restored

    assert run_dir == tmp_path / "out" / "MiniGrid-MemoryS9-v0__cleanrl-trxl__s5"
    seen = json.loads((run_dir / "peer" / "seen.json").read_text())
    assert seen["argv"][:6] == ["--env_id", "MiniGrid-MemoryS9-v0", "--seed", "5", "--total_timesteps", "36"]
    assert seen["argv"][6:] == ["--num_envs", "2", "--num_steps", "6", "--trxl_dim", "8", "--no-cuda"]
    # Episodes end and reset in the same step (gymnasium 0.29): 2 per env per rollout of 6, paying 1 then 2.
    assert seen["returns"] == [1.0, 1.0, 2.0, 2.0] * 3
    rows = read_metrics(run_dir)
    assert [row["global_step"] for row in rows] == [12, 24, 36]
    assert [row["iteration"] for row in rows] == [1, 2, 3]
    assert [row["episodes"] for row in rows] == [4, 8, 12]
    assert all(row["return_mean"] == 1.5 and row["length_mean"] == 3 and row["success_rate"] == 1 for row in rows)
    assert all(row["sps"] > 0 for row in rows)

    identity = run_identity(run_dir)
    assert (identity.label, identity.env_id, identity.seed, identity.total_steps) == (
        trxl_parity.PEER,
        trxl_parity.ENV_ID,
        5,
        36,
    )
    assert publish_finished.finished(run_dir)
    # A finished trial is skipped when asked again: its rows stay as they are.
    written = (run_dir / "metrics.jsonl").read_text()
    trxl_parity.train_peer(peer, trxl_parity.ENV_ID, 5, 36, tmp_path / "out", "cmd", recipe=recipe)
    assert (run_dir / "metrics.jsonl").read_text() == written


@pytest.mark.parametrize(
    ("where", "fragment"),
    [
        (REPOSITORY / "experiments" / "lstm_parity.py", "it is inside this repository; keep the peer's files"),
        (Path("/nonexistent/ppo_trxl.py"), "no such file; give the path of CleanRL's ppo_trxl.py"),
    ],
)
def test_a_peer_script_inside_the_repository_or_missing_is_refused(tmp_path, capsys, where, fragment):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as stopped:
        trxl_parity.main(["--peer-script", str(where), "--steps", "4096", "--out", str(out)])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--peer-script {where}: {fragment}" in err, err
    assert not out.exists()


def test_steps_that_are_not_whole_peer_rollouts_are_refused(tmp_path, capsys):
    peer = tmp_path / "ppo_trxl.py"
    peer.write_text("")
    with pytest.raises(SystemExit) as stopped:
        trxl_parity.main(["--peer-script", str(peer), "--steps", "5000", "--out", str(tmp_path / "out")])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--steps 5000: give a multiple of 4096" in err, err


def test_the_printed_shelm_command_is_a_valid_run_of_the_peers_recipe():
    argv = shlex.split(trxl_parity.shelm_command([1, 2, 3], 2_048_000, 1, Path("runs/parity")))
    sweep = ["shelm", "sweep", "--agents", "trxl", "--envs", "MiniGrid-MemoryS9-v0", "--seeds", "1-3"]
    assert argv[:12] == [*sweep, "--steps", "2048000", "--out", "runs/parity"]
    settings = parse_overrides([argv[i + 1] for i, arg in enumerate(argv) if arg == "--set"])
    config, _ = resolve_config("MiniGrid-MemoryS9-v0", "trxl", settings)
    config.validate()
    assert argv.count("sweep") == 1
    gapped = shlex.split(trxl_parity.shelm_command([4, 1, 2], 4096, 1, Path("o")))  # one sweep per run of seeds
    assert [gapped[i + 1] for i, arg in enumerate(gapped) if arg == "--seeds"] == ["1-2", "4-4"]
    assert config.gym_kwargs == {"agent_view_size": 3, "max_episode_steps": 96}
    assert (config.n_envs, config.n_steps, config.n_epochs, config.n_minibatches) == (16, 256, 3, 8)
    assert (config.gamma, config.gae_lambda, config.clip_coef, config.max_grad_norm) == (0.995, 0.95, 0.1, 0.25)
    assert (config.lr, config.lr_final, config.decay_steps, config.ent_coef_final) == (2.75e-4, 1e-5, 4_096_000, 1e-6)
    assert (config.norm_adv, config.clip_vloss, config.norm_reward, config.torch_threads) == (False, True, False, 1)
    assert (config.trxl_layers, config.trxl_heads, config.trxl_dim, config.trxl_memory_length) == (2, 4, 256, 64)
    assert config.trxl_positional_encoding == "absolute" and config.minigrid_tile_size * 3 == 84
