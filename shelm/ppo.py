"""The one PPO trainer of every shelm agent.

`train(config, probe, run_dir)` reads top to bottom: build envs, the frozen memory (if the agent has one) and the
trainable agent; then per iteration collect a rollout, compute GAE returns, run the clipped-objective
update, log and checkpoint. Agents differ only in their memory module and trainable parts:
- the frozen memory is called once per environment step, under no_grad, and its output is stored in the
  rollout, so the update never calls it;
- recurrent agents are updated on whole episode segments, feed-forward ones on shuffled steps, and windowed ones
  (Transformer-XL) on shuffled steps, each with the window of its own past it acted on, rebuilt from the per-step
  records the rollout keeps (`shelm.rollout.window_minibatches`).
Under `precision=bfloat16` the agent's forward passes (acting and the update) run under autocast; its
outputs are cast back to float32 at once, so the distributions, losses, advantages, returns, the recurrent
state carried between steps and the optimizer state are all float32 (the parameters stay float32).
"""

from __future__ import annotations

import dataclasses
import math
import resource
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.distributions import Categorical
from torch.utils.tensorboard import SummaryWriter

from shelm.acting import EnvLoop, EpisodeTracker
from shelm.agents import ANY_AGENT_ANALYSES, LM_ANALYSES, AgentSpec
from shelm.agents.base import Agent
from shelm.agents.policy import Actor, Policy, build_policy, generator_continuing_global
from shelm.config import TrainConfig
from shelm.envs import EnvSettings, make_vec_env, probe_env, success_rule
from shelm.errors import ShelmError
from shelm.precision import autocast
from shelm.probe import EnvProbe
from shelm.progress import TrainingProgress
from shelm.rollout import (
    Minibatch,
    RewardNormalizer,
    Rollout,
    segment_minibatches,
    step_minibatches,
    window_minibatches,
)
from shelm.runs import (
    append_metrics,
    checkpoint_path,
    load_checkpoint,
    load_run_config,
    remove_partial_writes,
    restore_generators,
    save_checkpoint,
    truncate_metrics,
)
from shelm.tracking import WandbTracker

# Keys of a metrics row that measure the machine (wall-clock time, memory) and so differ between identical runs.
MACHINE_KEYS = (
    "sps",
    "time_env",
    "time_memory",
    "time_agent",
    "time_update",
    "time_total",
    "time_compile",
    "peak_rss_mb",
)


def peak_rss_mb() -> float:
    """The most resident memory this process has held so far, in MiB. On Linux it is the kernel's high-water mark
    of this program (VmHWM), which starts afresh at exec; getrusage's figure would include the parent's memory
    at the time it forked this process."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**10  # kB
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB elsewhere


def check_buildable(config: TrainConfig, probe: EnvProbe) -> None:
    """Build the policy once for the env `probe` looked at, so that a bad model path or memory setting is refused
    before a run writes anything (the language model load is cached for the real run); then refuse a run whose
    memory would not fit the machine (`memory_estimate`), before any of it is allocated."""
    policy = build_policy(config, probe)
    needed = memory_estimate(config, probe.obs_shape, policy)
    if policy.device.type == "cuda":  # the rollout stays in host memory; the windows and the agent live on the GPU
        on_gpu = {name: size for name, size in needed.items() if name != "rollout"}
        refuse_if_larger(on_gpu, torch.cuda.mem_get_info(policy.device)[0], "GPU memory")
        needed = {"rollout": needed["rollout"]}
    refuse_if_larger(needed, available_memory(), "memory")


def refuse_if_larger(needed: dict[str, int], available: int | None, what: str) -> None:
    """One line naming both sizes and the setting to lower when the parts of `needed` exceed `available` bytes."""
    total = sum(needed.values())
    if available is not None and total > available:
        largest = max(needed, key=needed.__getitem__)
        parts = ", ".join(f"{name} {size / 2**30:.1f}" for name, size in needed.items())
        raise ShelmError(
            f"this run would hold about {total / 2**30:.1f} GiB ({parts}) but {available / 2**30:.1f} GiB of {what} "
            f"is available; lower {LOWER[largest]}"
        )


# What to lower when a part of `memory_estimate` is too large.
LOWER = {
    "rollout": "--n-envs or --set n_steps",
    "LM windows": "--n-envs or --set mem_len",
    "agent windows": "--n-envs or the agent's window (--set trxl_memory_length)",
    "agent and optimizer": "--set cnn_features (or the other widths)",
}


def memory_estimate(config: TrainConfig, obs_shape: tuple[int, ...], policy: Policy) -> dict[str, int]:
    """Bytes the run will hold beyond what is loaded now (the frozen models are loaded by the check itself):
    the rollout (uint8 frames, float32 memory outputs, the eight per-step scalars, a windowed agent's per-step
    records and, with a `bptt_length`, a recurrent agent's per-step states), the frozen memory's per-environment
    windows, a windowed agent's windows (`agent_window_bytes`), and the agent with its gradients and AdamW's two
    moments."""
    steps = config.n_steps * config.n_envs
    agent_per_step = policy.agent.record_size
    if policy.agent.is_recurrent and config.bptt_length:
        agent_per_step += policy.agent.initial_state(1).numel()
    rollout = steps * (math.prod(obs_shape) + 4 * policy.memory_dim + 4 * 8 + 4 * agent_per_step)
    windows = policy.memory.state_bytes(config.n_envs) if policy.memory is not None else 0
    agent = 4 * sum(p.numel() * p.element_size() for p in policy.agent.parameters())
    needed = {"rollout": rollout, "LM windows": windows, "agent and optimizer": agent}
    return needed | ({"agent windows": agent_window_bytes(config, policy.agent)} if policy.agent.window else {})


def agent_window_bytes(config: TrainConfig, agent: Agent) -> int:
    """A windowed agent's windows: its acting state, [n_envs, window, record_size + 1] float32, held by the actor
    and copied into the rollout; the table of rows an update minibatch reads (the carried windows and every step's
    record, [n_envs * (window + n_steps), record_size]) and its keys and values; and the minibatch's gathered
    windows, keys and values of [B, window + 1, record_size] each, held with their gradients (about 6 such)."""
    state = config.n_envs * agent.window * (agent.record_size + 1)
    table = 3 * config.n_envs * (agent.window + config.n_steps) * agent.record_size
    gathered = 6 * -(-config.batch_size // config.n_minibatches) * (agent.window + 1) * agent.record_size
    return 4 * (2 * state + table + gathered)


def available_memory() -> int | None:
    """Bytes of memory the machine can still give (Linux's MemAvailable); None where it is not reported."""
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 2**10  # kB
    return None


def schedule(start: float, end: float, progress: float) -> float:
    """Linear interpolation from start to end as progress goes from 0 to 1."""
    return start + (end - start) * min(max(progress, 0.0), 1.0)


def annealed(config: TrainConfig, global_step: int) -> tuple[float, float]:
    """The learning rate and entropy coefficient of the iteration that starts at `global_step`: each decays
    linearly to its final value over decay_steps (total_steps when 0) where its decay is 'linear', else stays."""
    fraction = global_step / (config.decay_steps or config.total_steps)
    lr = schedule(config.lr, config.lr_final, fraction) if config.lr_decay == "linear" else config.lr
    ent_coef = (
        schedule(config.ent_coef, config.ent_coef_final, fraction) if config.ent_decay == "linear" else config.ent_coef
    )
    return lr, ent_coef


@dataclass
class Collector:
    """Fills rollouts from the environment loop; the loop carries episodes and memories over between rollouts."""

    loop: EnvLoop
    config: TrainConfig
    normalizer: RewardNormalizer

    def collect(self) -> Rollout:
        """One rollout of n_steps per env. The memory output of each observation is computed exactly once,
        when the observation arrives, and reused for acting, storage and the bootstrap value."""
        config, actor = self.config, self.loop.actor
        obs_shape = tuple(actor.obs.shape[1:])
        agent = actor.policy.agent
        keep_states = agent.is_recurrent and config.bptt_length > 0
        rollout = Rollout.empty(
            config.n_steps,
            config.n_envs,
            obs_shape,
            actor.policy.memory_dim,
            actor.state,
            agent.record_size,
            keep_states,
        )
        for t in range(config.n_steps):
            if rollout.states is not None:  # the state step t is acted from, where its piece of episode may start
                rollout.states[t] = actor.state.cpu()
            step = self.loop.step()
            if agent.window:  # the record of the step just taken: the newest slot of the state it returned
                rollout.records[t] = agent.newest_record(actor.state).cpu()
            rollout.obs[t], rollout.memory[t] = step.obs.cpu(), step.memory_out.cpu()
            rollout.episode_start[t], rollout.actions[t] = step.episode_start.cpu(), step.decision.action.cpu()
            rollout.logprobs[t], rollout.values[t] = step.decision.logprob.cpu(), step.decision.value.cpu()
            reward = self.normalizer(step.reward, step.done) if config.norm_reward else step.reward
            rollout.rewards[t] = torch.as_tensor(reward, dtype=torch.float32)
            rollout.dones[t] = torch.as_tensor(step.done)
        rollout.compute_returns(actor.value().cpu(), config.gamma, config.gae_lambda)
        return rollout


def _to(batch: Minibatch, device: torch.device) -> Minibatch:
    return Minibatch(**{k: None if v is None else v.to(device) for k, v in vars(batch).items()})


def minibatches(rollout: Rollout, agent: Agent, config: TrainConfig, generator: torch.Generator) -> Iterator[Minibatch]:
    if agent.is_recurrent:
        return segment_minibatches(rollout, config.n_minibatches, generator, config.bptt_length)
    if agent.window:
        return window_minibatches(rollout, config.n_minibatches, generator)
    return step_minibatches(rollout, config.n_minibatches, generator)


def evaluate_minibatch(agent: Agent, batch: Minibatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The agent's logits [L, B, A] and values [L, B] on the minibatch's steps, and its own auxiliary loss (None
    for agents without one): windowed agents re-evaluate single steps over their stored windows, the others run
    `forward_sequences`."""
    if batch.window_index is None:
        return *agent.forward_sequences(batch.obs, batch.memory, batch.initial_state), None
    assert batch.window_rows is not None and batch.window_valid is not None
    logits, values, auxiliary = agent.forward_windows(
        batch.obs[0], batch.memory[0], batch.window_rows, batch.window_index, batch.window_valid
    )
    return logits.unsqueeze(0), values.unsqueeze(0), auxiliary


def value_loss_of(
    values: torch.Tensor, rollout_values: torch.Tensor, returns: torch.Tensor, config: TrainConfig
) -> torch.Tensor:
    """Half the mean squared error of the values against the returns; with clip_vloss, per step the larger of that
    error and the error of the rollout's value moved towards the new one by at most clip_coef (PPO's original code
    and CleanRL's), so the update cannot gain by moving a value far from where the rollout had it."""
    if not config.clip_vloss:
        return 0.5 * (values - returns).pow(2).mean()
    clipped = rollout_values + (values - rollout_values).clamp(-config.clip_coef, config.clip_coef)
    return 0.5 * torch.max((values - returns).pow(2), (clipped - returns).pow(2)).mean()


def ppo_update(
    agent: Agent,
    optimizer: torch.optim.Optimizer,
    rollout: Rollout,
    config: TrainConfig,
    ent_coef: float,
    generator: torch.Generator,
    device: torch.device,
    precision: str,
) -> dict[str, float]:
    """n_epochs passes of the clipped PPO objective over the rollout; returns averaged diagnostics.

    Only the agent's forward pass runs in `precision` ('float32' or 'bfloat16' autocast); its logits and
    values are cast to float32 before the distribution and the losses, and backward runs outside autocast.
    """
    sums: dict[str, float] = {}
    count = 0
    for _ in range(config.n_epochs):
        for cpu_batch in minibatches(rollout, agent, config, generator):
            batch = _to(cpu_batch, device)
            with autocast(device, precision):
                logits, values, auxiliary = evaluate_minibatch(agent, batch)
            logits, values = logits.float(), values.float()
            mask = batch.mask
            dist = Categorical(logits=logits[mask])
            logprob = dist.log_prob(batch.actions[mask])
            advantages = batch.advantages[mask]
            if config.norm_adv:
                advantages = (advantages - advantages.mean()) / (advantages.std(unbiased=False) + 1e-8)
            log_ratio = logprob - batch.logprobs[mask]
            ratio = log_ratio.exp()
            policy_loss = -torch.min(
                advantages * ratio, advantages * ratio.clamp(1 - config.clip_coef, 1 + config.clip_coef)
            ).mean()
            value_loss = value_loss_of(values[mask], batch.values[mask], batch.returns[mask], config)
            entropy = dist.entropy().mean()
            loss = policy_loss + config.vf_coef * value_loss - ent_coef * entropy
            if auxiliary is not None:  # the agent's own loss (trxl's frame reconstruction), already weighted
                loss = loss + auxiliary.float()

            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(agent.parameters(), config.max_grad_norm)
            optimizer.step()

            with torch.no_grad():
                stats = {
                    "policy_loss": policy_loss.item(),
                    "value_loss": value_loss.item(),
                    "entropy": entropy.item(),
                    "approx_kl": ((ratio - 1) - log_ratio).mean().item(),
                    "clip_fraction": ((ratio - 1).abs() > config.clip_coef).float().mean().item(),
                    "grad_norm": grad_norm.item(),
                }
                if auxiliary is not None:
                    stats["auxiliary_loss"] = auxiliary.item()
            for k, v in stats.items():
                sums[k] = sums.get(k, 0.0) + v
            count += 1
    out = {k: v / count for k, v in sums.items()}
    assert rollout.returns is not None
    returns, values = rollout.returns.flatten(), rollout.values.flatten()
    variance = returns.var().item()
    out["explained_variance"] = float("nan") if variance == 0 else 1 - (returns - values).var().item() / variance
    return out


def _trainer_state(
    config: TrainConfig, global_step: int, iteration: int, best: float, elapsed: float, collector: Collector
) -> dict[str, Any]:
    """What a checkpoint records of the trainer besides the weights: progress, the reward normaliser and the
    recent episodes behind the logged statistics."""
    return {
        "env_id": config.env_id,
        "agent": config.agent,
        "global_step": global_step,
        "iteration": iteration,
        "best_return": best if math.isfinite(best) else None,
        "elapsed_s": elapsed,
        "normalizer": collector.normalizer.state_dict(),
        "episodes": collector.loop.episodes.state_dict(),
    }


def train(
    config: TrainConfig,
    probe: EnvProbe,
    run_dir: Path,
    resume: bool = False,
    progress: TrainingProgress | None = None,
) -> dict[str, Any]:
    """Train (or continue training) the agent of `config` into `run_dir`; return the last metrics row. `probe` is
    the run's look at its env, which the frozen memory reads.

    `run_dir` must already hold config.json (see `shelm.runs`). With `resume`, the latest checkpoint is
    loaded and metrics past it are dropped, so the step column stays continuous.
    """
    if config.torch_threads:
        torch.set_num_threads(config.torch_threads)
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    envs = make_vec_env(EnvSettings.from_config(config), config.n_envs, config.vectorization)
    policy = build_policy(config, probe)
    agent = policy.agent
    optimizer = torch.optim.AdamW(
        agent.parameters(), lr=config.lr, eps=config.adam_eps, weight_decay=config.weight_decay, fused=True
    )
    # Actions are drawn from their own generator, which continues the seeded global stream where building the
    # networks left it (see `generator_continuing_global`).
    actor = Actor(policy, config.n_envs, generator_continuing_global(policy.device))
    episodes = EpisodeTracker(config.n_envs, config.stats_window, success_rule(config.env_id))
    collector = Collector(
        EnvLoop(envs, actor, episodes), config, RewardNormalizer(config.n_envs, config.gamma, config.reward_clip)
    )
    global_step, start_iteration, best, elapsed = 0, 0, -math.inf, 0.0
    if resume:
        remove_partial_writes(run_dir)
    latest = checkpoint_path(run_dir, "latest") if resume else None
    if latest is not None:
        state = load_checkpoint(latest, config, agent, optimizer, policy.memory)
        global_step, start_iteration, elapsed = state["global_step"], state["iteration"], state["elapsed_s"]
        best = -math.inf if state["best_return"] is None else state["best_return"]
        collector.normalizer.load_state_dict(state["normalizer"])
        episodes.load_state_dict(state["episodes"])
    if resume:
        truncate_metrics(run_dir, global_step)
    # Episodes in flight at the checkpoint are lost; a resumed run starts fresh ones from new seeds.
    collector.loop.reset(seed=config.seed + 1_000_003 * start_iteration)
    # Minibatches are cut with a generator of their own. A resumed run continues the actor's generator and this one
    # where the checkpoint left them, so it draws what an uninterrupted run would from the same state (a checkpoint
    # written before it saved them leaves the actor's where building the networks left the global one, and this
    # one seeded with seed + iteration).
    generator = torch.Generator().manual_seed(config.seed + start_iteration)
    generators = {"actor": actor.generator, "minibatches": generator}
    if latest is not None:
        restore_generators(latest, generators)

    writer = SummaryWriter(str(run_dir), purge_step=global_step + 1 if resume else None)
    tracker = WandbTracker(config, run_dir) if config.track else None
    progress = progress or TrainingProgress(config.total_steps, global_step, quiet=True)
    row: dict[str, Any] = {}
    try:
        with progress:
            for iteration in range(start_iteration, config.n_iterations):
                started = time.perf_counter()
                lr, ent_coef = annealed(config, global_step)
                for group in optimizer.param_groups:
                    group["lr"] = lr

                rollout = collector.collect()
                global_step += config.batch_size
                tick = time.perf_counter()
                losses = ppo_update(
                    agent, optimizer, rollout, config, ent_coef, generator, policy.device, policy.precision
                )
                agent.observe_memory(rollout.memory)  # after the update: the next rollout acts on the new statistics
                time_update = time.perf_counter() - tick

                duration = time.perf_counter() - started
                elapsed += duration
                row = {
                    "global_step": global_step,
                    "iteration": iteration + 1,
                    "sps": config.batch_size / duration,
                    **episodes.summary(),
                    "episodes": episodes.total_episodes,
                    **losses,
                    "lr": lr,
                    "ent_coef": ent_coef,
                    **collector.loop.take_timings(),
                    **(policy.memory.metrics() if policy.memory is not None else {}),
                    "time_update": time_update,
                    "time_total": elapsed,
                    "peak_rss_mb": peak_rss_mb(),
                }
                append_metrics(run_dir, row)
                for key, value in row.items():
                    if key not in ("global_step", "iteration") and value is not None and math.isfinite(value):
                        writer.add_scalar(f"shelm/{key}", value, global_step)
                if tracker is not None:
                    tracker.log(row, global_step)
                progress.update(row)

                # Checkpoints (and the best-so-far candidate) are taken every checkpoint_every iterations
                # and at the end, which keeps their cost off most iterations.
                if iteration + 1 == config.n_iterations or (iteration + 1) % config.checkpoint_every == 0:
                    improved = row["return_mean"] is not None and row["return_mean"] > best
                    best = row["return_mean"] if improved else best
                    state = _trainer_state(config, global_step, iteration + 1, best, elapsed, collector)
                    if improved:
                        save_checkpoint(run_dir, "best", agent, optimizer, state, policy.memory, generators)
                    save_checkpoint(run_dir, "latest", agent, optimizer, state, policy.memory, generators)
    finally:
        writer.close()
        if tracker is not None:
            tracker.finish()
        envs.close()
    return row


# --- playing a trained run ---------------------------------------------------------------------------------


def load_policy(run_dir: Path, checkpoint: str = "latest") -> tuple[TrainConfig, Policy, dict[str, Any]]:
    """The run's config, its policy with the checkpoint's weights, and the checkpoint's trainer state."""
    config = load_run_config(run_dir)
    path = checkpoint_path(run_dir, checkpoint)
    if path is None:
        raise ShelmError(f"run '{run_dir}' has no '{checkpoint}' checkpoint yet; train it longer or resume it")
    # Evaluation, inspection and the analyses play a few episodes, too few to pay for compiling the LM step.
    playing = dataclasses.replace(config, lm_compile="false") if config.lm_compile == "auto" else config
    policy = build_policy(playing, probe_env(config))
    state = load_checkpoint(path, config, policy.agent, optimizer=None, memory=policy.memory)
    policy.agent.eval()
    return config, policy, state


def ppo_actor(policy: Policy, n_envs: int, seed: int, greedy: bool) -> Actor:
    """A PPO actor sampling from its own generator seeded with `seed`: evaluation is reproducible."""
    return Actor(policy, n_envs, torch.Generator(device=policy.device).manual_seed(seed), greedy=greedy)


class PPOTrainer:
    """shelm's PPO as a trainer (`shelm.trainers`): it trains every agent whose spec builds a policy (`build`),
    resumes its runs from their latest checkpoint, and plays them through an `Actor` over their `Policy`, whose
    memory `shelm inspect` and the analyses read."""

    label = "shelm's PPO"
    reads_policy = True
    takes_env_factory = True

    def check(self, config: TrainConfig, probe: EnvProbe) -> None:
        check_buildable(config, probe)

    def train(
        self, config: TrainConfig, probe: EnvProbe, run_dir: Path, progress: TrainingProgress | None = None
    ) -> dict[str, Any]:
        return train(config, probe, run_dir, resume=False, progress=progress)

    def resume(
        self, config: TrainConfig, probe: EnvProbe, run_dir: Path, progress: TrainingProgress | None = None
    ) -> dict[str, Any]:
        return train(config, probe, run_dir, resume=True, progress=progress)

    def load_actors(self, run_dir: Path, checkpoint: str = "latest") -> tuple[TrainConfig, Any, dict[str, Any]]:
        config, policy, state = load_policy(run_dir, checkpoint)
        return config, lambda n_envs, seed, greedy: ppo_actor(policy, n_envs, seed, greedy), state

    def analyses(self, spec: AgentSpec) -> tuple[str, ...]:
        """Those that read a language-model memory where the agent has one, and those every policy supports."""
        return (LM_ANALYSES if spec.has_language_model else ()) + ANY_AGENT_ANALYSES


PPO = PPOTrainer()
