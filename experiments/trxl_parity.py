"""The peer side of the Transformer-XL parity check: CleanRL's own `ppo_trxl.py`, run from its file (kept outside
this repository, given with --peer-script) with its own command line, its episodes scored by shelm's tracker and
logged the way shelm logs a run.

The check: MiniGrid-MemoryS9-v0 with the peer's env and recipe, 2,048,000 steps, seeds 1-3 each of the peer and
of shelm's `trxl`, both on the same machine at the same thread count. The peer's command is the one of its docs for
this task (16 envs x 256 steps, 2 layers, 4 heads, dim 256, memory 64, grad norm 0.25, lr and entropy annealed over
4,096,000 steps; its docs' `--clip_coef 0.2` stands after a line without its backslash, so the peer runs its
default 0.1). Get the peer's two files (ppo_trxl.py and pom_env.py of cleanrl/ppo_trxl) into a folder outside the
repository, install what they import that shelm does not (`pip install "tyro>=0.8.3,<0.9" "einops>=0.7,<0.8"`,
the peer's pins), then:

    python experiments/trxl_parity.py --peer-script /work/peers/cleanrl_trxl/ppo_trxl.py --seeds 1 2 3 \
        --steps 2048000 --out runs/evidence/trxl-parity-peer

It prints the shelm side at the end (`shelm_command`): a sweep of trxl with the same recipe, each setting named
(`cleanrl_trxl_settings` in shelm/experiments/peer_recipes.py says why each has its value):

    shelm sweep --agents trxl --envs MiniGrid-MemoryS9-v0 --seeds 3 --steps 2048000 --out runs/evidence/trxl-parity \
        --set env_kwargs=agent_view_size=3,max_episode_steps=96 --set minigrid_tile_size=28 --set n_envs=16 ... \
        --set torch_threads=1

How the peer is run. `runpy` executes its file as `__main__` with its own arguments, its folder first on the import
path and the trial's `peer/` folder as the working directory (its TensorBoard logs land there). The vector env it
makes (`gymnasium.vector.SyncVectorEnv`) is replaced for that run by `ScoredSyncVectorEnv`, which passes every step
to shelm's `EpisodeTracker` (the suite's success rule, the last 100 episodes, as `shelm train` scores them) and
appends a metrics row after each of the peer's iterations (rollout and update, so `sps` counts both). It also gives
the peer the vector API of gymnasium 0.29, which the peer pins and this environment's gymnasium 1.x changed: the
episode that ends resets in the same step (1.x would spend the next step on the reset, and the peer's per-episode
memory index would overrun its 96-step table), and `final_info` is one info dict per env (None for envs that did
not end), as the peer reads it. Nothing of the peer's own code is changed.

Each trial writes DIR/MiniGrid-MemoryS9-v0__cleanrl-trxl__sSEED/{config.json, metrics.jsonl} in the layout
experiments/lstm_parity.py writes, so `shelm report` and experiments/publish_finished.py read it. A finished trial
is skipped when the command runs again; an interrupted one starts over (the peer keeps no checkpoint).

What differs besides the code: the peer's network is its own (a 3-convolution CNN 32-64-64 to 256, attention
scaled by the model width with one projection shared by the heads, a one-layer feed-forward block, no final norm,
each step attending to its previous trxl_memory_length - 1 steps but not itself); shelm's trxl is described in
shelm/agents/trxl.py. The peer's value loss is the squared error times vf_coef 0.5; shelm's is half the squared
error, so shelm's vf_coef 1.0 weighs it the same.

Speed: benchmarks/trxl_vs_cleanrl.py times both sides in one run, on the same machine at the same thread count:
the peer through this script in a child process and shelm's trxl with the same settings, each iteration's rollout
and update from the metrics rows, the two rows one after the other, repeated, so that background load falls on
both alike. In a 4-iteration run of the peer (16,384 steps, seed 1), its own printout agreed with shelm's scoring of
its episodes (mean return 0.20, 0.18, 0.15, 0.23; mean length 73.9, 78.3, 81.9, 72.7).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.util
import json
import os
import runpy
import shlex
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn
from unittest import mock

import gymnasium as gym
import numpy as np
import torch

from shelm.acting import EpisodeTracker
from shelm.envs import success_rule
from shelm.experiments.peer_recipes import CLEANRL_TRXL_ANNEAL_STEPS, cleanrl_trxl_settings
from shelm.files import write_json_atomic
from shelm.runs import append_metrics, read_metrics

PEER = "cleanrl.ppo_trxl"
PEER_FOLDER = "cleanrl-trxl"
ENV_ID = "MiniGrid-MemoryS9-v0"
REPOSITORY = Path(__file__).resolve().parents[1]
# The peer's command for MiniGrid-MemoryS9-v0, from its docs (see the module's docstring); --seed and
# --total_timesteps are added per trial.
PEER_RECIPE: dict[str, Any] = {
    "num_envs": 16,
    "num_steps": 256,
    "trxl_num_layers": 2,
    "trxl_num_heads": 4,
    "trxl_dim": 256,
    "trxl_memory_length": 64,
    "max_grad_norm": 0.25,
    "anneal_steps": CLEANRL_TRXL_ANNEAL_STEPS,
}
STATS_WINDOW = 100  # episodes averaged, as shelm's stats_window and the peer's own deque
# What the peer's scripts import that a shelm install may lack, with the peer's pins.
PEER_IMPORTS = {"tyro": "tyro>=0.8.3,<0.9", "einops": "einops>=0.7,<0.8", "memory_gym": "memory-gym>=1.0.2,<2"}


def shelm_command(seeds: Sequence[int], steps: int, threads: int, out: Path) -> str:
    """The sweep that trains shelm's side: trxl on the same task with the peer's recipe, seeds as given (one sweep
    per run of consecutive seeds, joined by &&)."""
    settings = {**cleanrl_trxl_settings(), "torch_threads": threads}
    options = []
    for key, value in settings.items():
        options += ["--set", f"{key}={str(value).lower() if isinstance(value, bool) else value}"]
    runs: list[list[int]] = []
    for seed in sorted(set(seeds)):
        if runs and seed == runs[-1][-1] + 1:
            runs[-1].append(seed)
        else:
            runs.append([seed])
    commands = []
    for run in runs:
        argv = ["shelm", "sweep", "--agents", "trxl", "--envs", ENV_ID, "--seeds", f"{run[0]}-{run[-1]}"]
        commands.append(shlex.join([*argv, "--steps", str(steps), "--out", str(out), *options]))
    return " && ".join(commands)


def per_env_info(batched: Mapping[str, Any], env: int) -> dict[str, Any]:
    """One env's info out of gymnasium 1.x's batched infos (arrays with a `_KEY` mask per key, nested dicts alike)."""
    out: dict[str, Any] = {}
    for key, value in batched.items():
        if key.startswith("_"):
            continue
        mask = batched.get(f"_{key}")
        if mask is not None and not mask[env]:
            continue
        out[key] = per_env_info(value, env) if isinstance(value, Mapping) else value[env]
    return out


class ScoredSyncVectorEnv(gym.vector.SyncVectorEnv):
    """The peer's vector env: scores every step with shelm's EpisodeTracker, appends a metrics row after each of
    the peer's iterations, and steps with gymnasium 0.29's semantics (see the module's docstring). `run_dir`,
    `env_id` and `steps_per_iteration` are set on a subclass made per trial (`scored_vector_env`)."""

    run_dir: Path
    env_id: str
    steps_per_iteration: int

    def __init__(self, env_fns: Sequence[Callable[[], gym.Env]], **kwargs: Any):
        kwargs["autoreset_mode"] = gym.vector.AutoresetMode.SAME_STEP
        super().__init__(env_fns, **kwargs)
        self.tracker = EpisodeTracker(self.num_envs, STATS_WINDOW, success_rule(self.env_id))
        self.steps_taken = 0
        self.rows_written = 0
        self.started = time.perf_counter()

    def reset(self, *args: Any, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        self.started = time.perf_counter()  # iterations are timed from the peer's first reset
        return super().reset(*args, **kwargs)

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        if self.steps_taken and self.steps_taken % self.steps_per_iteration == 0:
            self._write_row()  # the previous iteration's update is done: its row, timed through it
        obs, rewards, terminations, truncations, infos = super().step(actions)
        self.steps_taken += 1
        self.tracker.update(np.asarray(rewards, dtype=np.float64), terminations | truncations, infos)
        if "final_info" in infos:  # gymnasium 0.29's layout: one info dict per env, None where none ended
            ended = infos["_final_info"]
            per_env = np.empty(self.num_envs, dtype=object)
            for env in np.flatnonzero(ended):
                per_env[env] = per_env_info(infos["final_info"], int(env))
            infos = {**infos, "final_info": per_env}
        return obs, rewards, terminations, truncations, infos

    def close(self, **kwargs: Any) -> None:
        if self.steps_taken and self.steps_taken % self.steps_per_iteration == 0:
            self._write_row()  # the last iteration: the peer closes its envs after its update
        super().close(**kwargs)

    def _write_row(self) -> None:
        iteration = self.steps_taken // self.steps_per_iteration
        if iteration <= self.rows_written:
            return
        now = time.perf_counter()
        row = {"global_step": self.steps_taken * self.num_envs, "iteration": iteration, **self.tracker.summary()}
        row |= {"episodes": self.tracker.total_episodes, "sps": self.steps_per_iteration * self.num_envs}
        row["sps"] /= now - self.started
        append_metrics(self.run_dir, row)
        self.rows_written, self.started = iteration, now


def scored_vector_env(run_dir: Path, env_id: str, steps_per_iteration: int) -> type[ScoredSyncVectorEnv]:
    """`ScoredSyncVectorEnv` bound to one trial."""
    bound = {"run_dir": run_dir, "env_id": env_id, "steps_per_iteration": steps_per_iteration}
    return type("ScoredSyncVectorEnv", (ScoredSyncVectorEnv,), bound)


@contextlib.contextmanager
def peer_process_state(peer_script: Path, argv: list[str], workdir: Path) -> Iterator[None]:
    """sys.argv, the import path and the working directory as `python PEER ARGS` run from `workdir` has them,
    restored afterwards."""
    saved_argv, saved_path = sys.argv, list(sys.path)
    sys.argv = [str(peer_script), *argv]
    sys.path.insert(0, str(peer_script.parent))
    try:
        with contextlib.chdir(workdir):
            yield
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path


def peer_argv(env_id: str, seed: int, steps: int, recipe: Mapping[str, Any], device: str) -> list[str]:
    """The peer's own command line (tyro's: `--key value`, booleans as `--flag`/`--no-flag`)."""
    argv = ["--env_id", env_id, "--seed", str(seed), "--total_timesteps", str(steps)]
    for key, value in recipe.items():
        argv += [f"--{key}", str(value)]
    return [*argv, "--cuda" if device == "cuda" else "--no-cuda"]


def finished(run_dir: Path, steps: int) -> bool:
    rows = read_metrics(run_dir) if (run_dir / "metrics.jsonl").is_file() else []
    return bool(rows) and rows[-1]["global_step"] >= steps


def train_peer(
    peer_script: Path,
    env_id: str,
    seed: int,
    steps: int,
    out: Path,
    command: str,
    recipe: Mapping[str, Any] = PEER_RECIPE,
    device: str = "cpu",
) -> Path:
    """One trial of the peer into OUT/ENV__cleanrl-trxl__sSEED (skipped when finished; restarted when not)."""
    run_dir = out / f"{env_id}__{PEER_FOLDER}__s{seed}"
    if finished(run_dir, steps):
        print(f"skip   {run_dir.name} (finished)")
        return run_dir
    (run_dir / "peer").mkdir(parents=True, exist_ok=True)
    (run_dir / "metrics.jsonl").unlink(missing_ok=True)  # an interrupted trial starts over
    argv = peer_argv(env_id, seed, steps, recipe, device)
    config = {
        "peer": f"{PEER} {hashlib.sha256(peer_script.read_bytes()).hexdigest()[:12]}",
        "peer_script": str(peer_script),
        "env_id": env_id,
        "seed": seed,
        "total_steps": steps,
        "peer_argv": argv,
        "torch_threads": torch.get_num_threads(),
        "device": device,
        "command": command,
    }
    write_json_atomic(run_dir / "config.json", config)
    vector_env = scored_vector_env(run_dir, env_id, int(recipe["num_steps"]))
    print(f"start  {run_dir.name}")
    with (
        peer_process_state(peer_script, argv, run_dir / "peer"),
        mock.patch.object(gym.vector, "SyncVectorEnv", vector_env),
    ):
        runpy.run_path(str(peer_script), run_name="__main__")
    last = read_metrics(run_dir)[-1]
    print(f"done   {run_dir.name}: success_rate {last['success_rate']} at {last['global_step']} steps")
    return run_dir


def refuse(message: str) -> NoReturn:
    print(f"trxl_parity.py: {message}", file=sys.stderr)
    sys.exit(2)


def check_peer_script(path: Path) -> Path:
    """The peer's file, resolved: refused in one line when missing or inside this repository."""
    resolved = path.expanduser().resolve()
    if not resolved.is_file():
        refuse(f"--peer-script {path}: no such file; give the path of CleanRL's ppo_trxl.py (beside its pom_env.py)")
    if resolved.is_relative_to(REPOSITORY):
        refuse(f"--peer-script {path}: it is inside this repository; keep the peer's files in a folder outside it")
    return resolved


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peer-script", type=Path, required=True, help="CleanRL's ppo_trxl.py, outside the repo")
    parser.add_argument("--env", default=ENV_ID)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--steps", type=int, default=2_048_000, help="a multiple of 16 x 256 (the peer's rollout)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--out", type=Path, default=Path("runs/evidence/trxl-parity-peer"))
    parser.add_argument("--shelm-out", type=Path, default=Path("runs/evidence/trxl-parity"))
    args = parser.parse_args(argv)
    peer_script = check_peer_script(args.peer_script)
    rollout = PEER_RECIPE["num_envs"] * PEER_RECIPE["num_steps"]
    if args.steps < rollout or args.steps % rollout:
        refuse(f"--steps {args.steps}: give a multiple of {rollout} (the peer trains whole rollouts of 16 x 256)")
    if args.threads < 1:
        refuse(f"--threads {args.threads}: give 1 or more")
    missing = [pin for module, pin in PEER_IMPORTS.items() if importlib.util.find_spec(module) is None]
    if missing:
        refuse(f"the peer imports what is not installed: pip install {' '.join(shlex.quote(p) for p in missing)}")
    torch.set_num_threads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    command = shlex.join(["python", *sys.argv])
    for seed in args.seeds:
        train_peer(peer_script, args.env, seed, args.steps, args.out, command, device=args.device)
    finals = {seed: read_metrics(args.out / f"{args.env}__{PEER_FOLDER}__s{seed}")[-1] for seed in args.seeds}
    shelm = shelm_command(args.seeds, args.steps, args.threads, args.shelm_out)
    summary = {"out": str(args.out), "finals": {s: r["success_rate"] for s, r in finals.items()}}
    print(json.dumps({**summary, "shelm_command": shelm}))


if __name__ == "__main__":
    main()
