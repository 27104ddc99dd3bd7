"""DreamerV2, the SHELM paper's model-based baseline, through sheeprl's maintained implementation (the dreamer extra).

shelm does not reimplement DreamerV2. `train` composes sheeprl's dreamer_v2 experiment from the run's `TrainConfig`
(`sheeprl_config`: sheeprl's defaults, the CPU-sized model unless `dreamer_size=sheeprl`, and the `dreamer_*`
settings), records it as RUN_DIR/sheeprl.yaml, and runs sheeprl on it in a child process (`python -m shelm.dreamer`,
whose code is `shelm.dreamer.worker`),
on shelm's own environments (`shelm.envs.make_env`: the frames, actions and success rule of every other agent).
sheeprl keeps process-wide state (Hydra, Fabric, seeds, thread counts); a child keeps it out of the caller's process,
so a sweep or a test can train DreamerV2 beside PPO agents.

```
RUN_DIR/
  config.json, metrics.jsonl   as for every run: the rows carry PPO's keys where they apply, and sheeprl's losses
  sheeprl.yaml                 the resolved sheeprl config that ran (every DreamerV2 setting, named)
  sheeprl/                     sheeprl's TensorBoard events, with shelm/KEY scalars beside sheeprl's own (a resumed
                               run adds a version), and while training sheeprl's last checkpoint
  dreamer.log                  sheeprl's warnings and errors (and its prints, when quiet)
  checkpoints/latest/          world_model.safetensors, actor.safetensors, trainer.json
```
Every `dreamer_checkpoint_every` steps, and at the end, sheeprl saves its checkpoint (the models, the optimizers,
its step counters) and the worker writes the world model and the actor beside it as safetensors into
checkpoints/latest, with trainer.json (the step, the recent episodes behind the logged statistics, and the name of
sheeprl's checkpoint). A killed run continues from there through sheeprl's own resume support (`train(resume=True)`):
sheeprl's checkpoint, which holds only tensors and numbers, is first read back with `weights_only=True`, then
handed to sheeprl. sheeprl does not keep the replay buffer (`buffer.checkpoint=False`), so a resumed run refills it
by playing its policy for `dreamer_learning_starts` steps before it trains again. When training ends, sheeprl's
pickled checkpoints are deleted, so nothing in a finished run needs unpickling. `load_player` rebuilds sheeprl's
DreamerV2 player from checkpoints/latest, and its `DreamerActor`s play on shelm's `EnvLoop` (evaluation), seeing each
frame preprocessed exactly as sheeprl preprocessed it in training.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from shelm.agents import AgentSpec
from shelm.agents.policy import Decision
from shelm.config import TrainConfig
from shelm.envs import EnvSettings, make_env
from shelm.errors import ShelmError, first_line
from shelm.files import write_atomic
from shelm.probe import EnvProbe
from shelm.progress import TrainingProgress
from shelm.runs import checkpoint_path, load_run_config, read_metrics, remove_partial_writes

INSTALL_HINT = 'pip install -e ".[dreamer]"'
CHECKPOINT_FORMAT = "shelm-dreamer-checkpoint"
CHECKPOINT_VERSION = 1
SHEEPRL_CONFIG = "sheeprl.yaml"
LOG = "dreamer.log"
CNN_KEY = "rgb"

# The CPU-sized networks of `dreamer_size=small`; 'sheeprl' keeps sheeprl's dreamer_v2 sizes.
SMALL_MODEL = [
    "algo.dense_units=128",
    "algo.mlp_layers=2",
    "algo.world_model.encoder.cnn_channels_multiplier=16",
    "algo.world_model.recurrent_model.recurrent_state_size=128",
    "algo.world_model.transition_model.hidden_size=128",
    "algo.world_model.representation_model.hidden_size=128",
    "algo.world_model.stochastic_size=16",
    "algo.world_model.discrete_size=16",
]


def require_sheeprl() -> None:
    """One line naming the install command when sheeprl (the dreamer extra) is missing."""
    if importlib.util.find_spec("sheeprl") is None:
        raise ShelmError(f"agent dreamerv2 runs sheeprl's DreamerV2, which is not installed: {INSTALL_HINT}")


def _quoted(value: str) -> str:
    """A Hydra override value that is a string whatever it holds (ids contain '/', ':' and '-')."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def hydra_overrides(config: TrainConfig, run_dir: Path) -> list[str]:
    """sheeprl's dreamer_v2 experiment on shelm's env `config.env_id`, with the run's settings.

    The env is built by `shelm.dreamer.worker.sheeprl_env` (shelm's `make_env`, its episodes scored by shelm's
    success rule); its one image goes under the `rgb` key, which sheeprl resizes to 64x64 as DreamerV2 expects.
    The steps are rounded up to a multiple of n_envs so that the run reaches total_steps. Continue flags are
    learned (the episodes of shelm's envs end). sheeprl checkpoints every `dreamer_checkpoint_every` steps and at the
    end through `shelm.dreamer.worker.ShelmCheckpointCallback`, which keeps only the last and writes shelm's
    checkpoint beside it. sheeprl's buffer checkpoint, videos, end-of-run test episode and model registry are off:
    shelm evaluates and keeps the weights itself."""
    steps = -(-config.total_steps // config.n_envs) * config.n_envs
    callback = "{_target_:shelm.dreamer.worker.ShelmCheckpointCallback,keep_last:1}"
    accelerator = "cpu" if config.device == "cpu" or not torch.cuda.is_available() else "cuda"
    overrides = [
        "exp=dreamer_v2",
        "env=gym",
        f"env.id={_quoted(config.env_id)}",
        "env.wrapper._target_=shelm.dreamer.worker.sheeprl_env",
        f"+env.wrapper.tile_size={config.minigrid_tile_size}",
        f"+env.wrapper.obs_key={_quoted(config.obs_key)}",
        f"+env.wrapper.obs_resize={_quoted(config.obs_resize)}",
        f"env.num_envs={config.n_envs}",
        "env.sync_env=True",
        "env.capture_video=False",
        f"algo.cnn_keys.encoder=[{CNN_KEY}]",
        f"algo.cnn_keys.decoder=[{CNN_KEY}]",
        "algo.mlp_keys.encoder=[]",
        "algo.mlp_keys.decoder=[]",
        f"algo.total_steps={steps}",
        f"algo.learning_starts={config.dreamer_learning_starts}",
        f"algo.replay_ratio={config.dreamer_replay_ratio}",
        f"algo.per_rank_pretrain_steps={config.dreamer_pretrain_steps}",
        f"algo.per_rank_batch_size={config.dreamer_batch_size}",
        f"algo.per_rank_sequence_length={config.dreamer_sequence_length}",
        "algo.world_model.use_continues=True",
        "algo.run_test=False",
        f"buffer.size={min(config.dreamer_buffer_size, steps)}",
        "buffer.checkpoint=False",
        "buffer.memmap=False",
        f"checkpoint.every={config.dreamer_checkpoint_every}",
        "checkpoint.save_last=True",
        "checkpoint.keep_last=1",
        f"fabric.callbacks=[{callback}]",
        f"fabric.accelerator={accelerator}",
        "fabric.devices=1",
        "model_manager.disabled=True",
        f"metric.log_every={config.dreamer_log_every}",
        "metric.logger._target_=shelm.dreamer.worker.ShelmTensorBoardLogger",
        f"seed={config.seed}",
        f"log_root={_quoted(str(run_dir))}",
        "root_dir=sheeprl",
        "run_name=dreamer_v2",
    ]
    if config.torch_threads:
        overrides.append(f"num_threads={config.torch_threads}")
    return overrides + (SMALL_MODEL if config.dreamer_size == "small" else [])


def sheeprl_config(config: TrainConfig, run_dir: Path) -> dict[str, Any]:
    """sheeprl's resolved config for the run, checked by sheeprl; a value it refuses is one line naming it."""
    require_sheeprl()
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf
    from sheeprl.cli import check_configs
    from sheeprl.utils.utils import dotdict

    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module="sheeprl.configs", version_base="1.3"):
            composed = compose(config_name="config", overrides=hydra_overrides(config, run_dir))
        resolved = OmegaConf.to_container(composed, resolve=True, throw_on_missing=True)
        check_configs(dotdict(resolved))
    except Exception as exc:  # Hydra's and sheeprl's own errors: a setting sheeprl cannot run with
        raise ShelmError(f"sheeprl refuses the DreamerV2 settings of this run: {first_line(exc)}") from None
    finally:
        GlobalHydra.instance().clear()
    return resolved


def check_buildable(config: TrainConfig, probe: EnvProbe) -> None:
    """Refuse, before a run writes anything, what would fail: no sheeprl, an env shelm cannot build (its `probe`
    was built), a setting sheeprl refuses, a batch of sequences the replay buffer could never hold."""
    require_sheeprl()
    if config.env_kwargs:
        raise ShelmError(
            f"--env-kwargs {config.env_kwargs}: shelm's PPO agents take env keywords, the dreamerv2 runs do not yet; "
            "drop --env-kwargs"
        )
    if config.obs_grayscale or config.obs_frame_stack > 1:
        raise ShelmError(
            "--set obs_grayscale / obs_frame_stack: sheeprl's DreamerV2 prepares its frames itself (64x64 RGB, one "
            "frame); drop them for agent dreamerv2"
        )
    if config.dreamer_sequence_length > min(config.dreamer_buffer_size, config.total_steps):
        raise ShelmError(
            f"--set dreamer_sequence_length={config.dreamer_sequence_length} is longer than the replay buffer "
            f"(min of dreamer_buffer_size and total_steps); lower it or train longer"
        )
    sheeprl_config(config, Path("runs"))


def train(
    config: TrainConfig, run_dir: Path, resume: bool = False, progress: TrainingProgress | None = None
) -> dict[str, Any]:
    """Train DreamerV2 into `run_dir` (which holds config.json) in a child process; return the last metrics row.
    With `resume`, the child continues from the run's latest checkpoint (from the start where it has none yet),
    with the sheeprl config the run started with."""
    if resume:
        remove_partial_writes(run_dir)
    if not (resume and (run_dir / SHEEPRL_CONFIG).is_file()):
        resolved = sheeprl_config(config, run_dir)
        from omegaconf import OmegaConf

        write_atomic(run_dir / SHEEPRL_CONFIG, OmegaConf.to_yaml(OmegaConf.create(resolved)).encode())
    quiet = progress is None or progress.quiet
    command = [sys.executable, "-m", "shelm.dreamer", str(run_dir), "--parent", str(os.getpid())]
    command += [*(["--quiet"] if quiet else []), *(["--resume"] if resume else [])]
    with (run_dir / LOG).open("a" if resume else "w") as log:  # sheeprl's prints and warnings; progress unless quiet
        code = subprocess.run(command, stdout=log if quiet else None, stderr=log, check=False).returncode
    if code == 2:  # the worker's one-line error
        lines = (run_dir / LOG).read_text().strip().splitlines()
        raise ShelmError((lines[-1] if lines else "DreamerV2 failed").removeprefix("shelm: error: "))
    if code != 0:
        sys.stderr.write((run_dir / LOG).read_text()[-4000:])
        raise RuntimeError(f"sheeprl's DreamerV2 exited with status {code}; its full log: {run_dir / LOG}")
    rows = read_metrics(run_dir)
    if not rows:
        raise RuntimeError(f"sheeprl's DreamerV2 finished without a metrics row; see {run_dir / LOG}")
    return rows[-1]


# --- playing a trained run ---------------------------------------------------------------------------------


def _refuse(path: Path, why: str) -> ShelmError:
    return ShelmError(f"checkpoint '{path}' {why}; retrain, or point at the run directory that wrote it")


def load_checkpoint(path: Path, config: TrainConfig) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict]:
    """The world model's and the actor's weights and the trainer state of a DreamerV2 checkpoint directory."""
    files = ("trainer.json", "world_model.safetensors", "actor.safetensors")
    missing = [name for name in files if not (path / name).is_file()]
    if missing:
        raise _refuse(path, f"is incomplete (missing {', '.join(missing)})")
    try:
        info = json.loads((path / "trainer.json").read_text())
        world_model, actor = load_file(path / "world_model.safetensors"), load_file(path / "actor.safetensors")
    except (json.JSONDecodeError, UnicodeDecodeError, SafetensorError, OSError) as exc:
        raise _refuse(path, f"is corrupted ({type(exc).__name__})") from None
    if not isinstance(info, dict) or info.get("format") != CHECKPOINT_FORMAT:
        raise _refuse(path, "is not a shelm DreamerV2 checkpoint")
    if info.get("version") != CHECKPOINT_VERSION:
        raise _refuse(path, f"has format version {info.get('version')}, this shelm reads {CHECKPOINT_VERSION}")
    for key in ("env_id", "agent"):
        if info.get(key) != getattr(config, key):
            raise _refuse(path, f"was written for {key}={info.get(key)!r}, not {getattr(config, key)!r}")
    return world_model, actor, info


def preprocess(frames: np.ndarray, screen_size: int, grayscale: bool) -> np.ndarray:
    """[N, H, W, C] uint8 frames -> [N, C', S, S] as sheeprl's env pipeline makes them for DreamerV2 (OpenCV's
    area resize to S x S, optional grayscale, channels first)."""
    import cv2

    out = []
    for frame in frames:
        if frame.shape[:2] != (screen_size, screen_size):
            frame = cv2.resize(frame, (screen_size, screen_size), interpolation=cv2.INTER_AREA)
        if grayscale and frame.shape[-1] == 3:
            frame = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)[..., None]
        out.append(frame.transpose(2, 0, 1))
    return np.stack(out)


@dataclass
class DreamerActor:
    """sheeprl's DreamerV2 player acting in N environments of shelm's `EnvLoop`, in place of a PPO `Actor`: it
    keeps the player's recurrent and stochastic state per environment and clears it where an episode starts.

    Sampling (and the posterior's stochastic state, drawn even for greedy actions) uses torch's global generator,
    as sheeprl does; it is seeded when the actor is made, so an evaluation is reproducible."""

    player: Any
    fabric: Any
    cfg: Mapping[str, Any]
    n_envs: int
    greedy: bool
    obs: torch.Tensor = field(init=False)
    infos: Mapping[str, Any] = field(init=False)
    episode_start: torch.Tensor = field(init=False)
    memory_out: torch.Tensor = field(init=False)

    def start(self, obs: Any, infos: Mapping[str, Any]) -> None:
        self.player.num_envs = self.n_envs
        self.player.init_states()
        self.observe(obs, infos, np.ones(self.n_envs, dtype=bool))

    def observe(self, obs: Any, infos: Mapping[str, Any], episode_start: Any) -> None:
        self.obs = torch.as_tensor(obs)
        self.infos = infos
        self.episode_start = torch.as_tensor(episode_start)
        self.memory_out = torch.zeros(self.n_envs, 0)
        restart = np.flatnonzero(np.asarray(episode_start))
        if 0 < len(restart) < self.n_envs:
            self.player.init_states(restart.tolist())
        elif len(restart) == self.n_envs:
            self.player.init_states()

    def decide(self) -> Decision:
        """The player's action; DreamerV2's player gives no log-probability or value, so those are NaN."""
        from sheeprl.algos.dreamer_v2.utils import prepare_obs

        env = self.cfg["env"]
        frames = preprocess(self.obs.numpy(), env["screen_size"], env["grayscale"])
        with torch.no_grad():
            seen = prepare_obs(self.fabric, {CNN_KEY: frames}, cnn_keys=[CNN_KEY], num_envs=self.n_envs)
            one_hot = self.player.get_actions(seen, greedy=self.greedy)[0][0]  # [N, A]
        nan = torch.full((self.n_envs,), float("nan"))
        return Decision(action=one_hot.argmax(-1).cpu(), logprob=nan, value=nan, logits=one_hot.float().cpu())


@dataclass
class DreamerPlayer:
    """A trained DreamerV2 run, ready to act: `actor` makes a `DreamerActor` for N environments."""

    player: Any
    fabric: Any
    cfg: Mapping[str, Any]

    def actor(self, n_envs: int, seed: int, greedy: bool) -> DreamerActor:
        torch.manual_seed(seed)
        return DreamerActor(self.player, self.fabric, self.cfg, n_envs, greedy)


def load_player(run_dir: Path, checkpoint: str = "latest") -> tuple[TrainConfig, DreamerPlayer, dict[str, Any]]:
    """The run's config, sheeprl's DreamerV2 player with the checkpoint's weights, and the checkpoint's state."""
    require_sheeprl()
    config = load_run_config(run_dir)
    path = checkpoint_path(run_dir, checkpoint)
    if path is None:
        raise ShelmError(f"run '{run_dir}' has no '{checkpoint}' checkpoint; dreamerv2 runs write 'latest' when done")
    world_model, actor, info = load_checkpoint(path, config)
    import gymnasium as gym
    from lightning import Fabric
    from omegaconf import OmegaConf
    from sheeprl.algos.dreamer_v2.agent import build_agent
    from sheeprl.utils.utils import dotdict

    cfg = dotdict(OmegaConf.to_container(OmegaConf.load(run_dir / SHEEPRL_CONFIG), resolve=True))
    env = make_env(EnvSettings.from_config(config))
    n_actions = int(env.action_space.n)
    env.close()
    channels = 1 if cfg.env.grayscale else 3
    space = gym.spaces.Box(0, 255, (channels, cfg.env.screen_size, cfg.env.screen_size), np.uint8)
    fabric = Fabric(accelerator=cfg.fabric.accelerator, devices=1, precision=cfg.fabric.precision)
    try:
        *_, player = build_agent(
            fabric, (n_actions,), False, cfg, gym.spaces.Dict({CNN_KEY: space}), world_model, actor
        )
    except (RuntimeError, KeyError) as exc:
        raise _refuse(path, f"does not fit its sheeprl.yaml ({first_line(exc)})") from None
    player.eval()
    return config, DreamerPlayer(player, fabric, cfg), info


class DreamerTrainer:
    """sheeprl's DreamerV2 as a trainer (`shelm.trainers`): it trains in a child process, continues a killed run from
    its last checkpoint through sheeprl's resume support, and plays its runs through `DreamerActor`; its runs hold no
    shelm `Policy`, so `shelm inspect` and the analyses do not apply."""

    label = "sheeprl's DreamerV2"
    reads_policy = False
    takes_env_factory = False  # the child process builds its env from the id

    def check(self, config: TrainConfig, probe: EnvProbe) -> None:
        check_buildable(config, probe)

    def train(
        self, config: TrainConfig, probe: EnvProbe, run_dir: Path, progress: TrainingProgress | None = None
    ) -> dict[str, Any]:
        return train(config, run_dir, resume=False, progress=progress)

    def resume(
        self, config: TrainConfig, probe: EnvProbe, run_dir: Path, progress: TrainingProgress | None = None
    ) -> dict[str, Any]:
        return train(config, run_dir, resume=True, progress=progress)

    def load_actors(self, run_dir: Path, checkpoint: str = "latest") -> tuple[TrainConfig, Any, dict[str, Any]]:
        config, player, state = load_player(run_dir, checkpoint)
        return config, player.actor, state

    def analyses(self, spec: AgentSpec) -> tuple[str, ...]:
        return ()


DREAMER = DreamerTrainer()
