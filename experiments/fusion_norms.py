"""How loud the memory is in the heads of trained memory agents: the measurement behind docs/results.md's
diagnosis of the MiniGrid-MemoryS11 failure.

For each run directory it plays the run's latest checkpoint (sampled actions, seed 0) in its own environment and
reports, over all steps:
- the L2 norm of the CNN's features and of the memory's output, as the two streams give them, before the fusion;
- the memory's share of the heads' first layer: |W_mem m| / (|W_mem m| + |W_cnn f|) for the actor's first
  Linear, with m and f after the run's fusion. Near 0 the memory is drowned: whatever it holds moves the policy
  by a vanishing fraction, and the gradient that would teach the heads to read it shrinks by the same factor.

    python experiments/fusion_norms.py runs/evidence/concat-memory-s11/*oracle* runs/fusion/* --steps 400 \
        --out docs/runs/evidence/fusion-norms.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from shelm.agents.cnn import CNNAgent
from shelm.envs import EnvSettings, make_vec_env
from shelm.files import write_json_atomic
from shelm.ppo import load_policy, ppo_actor
from shelm.runs import checkpoint_step


def measure(run_dir: Path, steps: int, n_envs: int) -> dict[str, float | str | int]:
    config, policy, _ = load_policy(run_dir)
    agent = policy.agent
    if not isinstance(agent, CNNAgent) or policy.memory_dim == 0:
        raise SystemExit(f"{run_dir}: agent '{config.agent}' has no memory beside a CNN; nothing to measure")
    envs = make_vec_env(EnvSettings.from_config(config), n_envs)
    obs, infos = envs.reset(seed=0)
    actor = ppo_actor(policy, n_envs, seed=0, greedy=False)
    actor.start(obs, infos)
    frames, memories = [], []
    for _ in range(steps):
        decision = actor.decide()
        with torch.no_grad():
            frames.append(agent.encoder(actor.obs))
        memories.append(actor.memory_out.float())
        obs, _, terminated, truncated, infos = envs.step(decision.action.cpu().numpy())
        actor.observe(obs, infos, terminated | truncated)
    envs.close()
    frame, memory = torch.cat(frames), torch.cat(memories)
    width = policy.memory_dim
    with torch.no_grad():
        fused = agent.fuse(memory, frame)
    first = agent.heads.actor[0].weight.detach().float()
    from_memory = (fused[:, :width] @ first[:, :width].T).norm(dim=-1)
    from_frame = (fused[:, width:] @ first[:, width:].T).norm(dim=-1)
    return {
        "run": str(run_dir),
        "agent": config.agent,
        "fusion": agent.fusion,
        "checkpoint_step": checkpoint_step(run_dir, "latest"),
        "cnn_feature_norm": frame.norm(dim=-1).mean().item(),
        "memory_norm": memory.norm(dim=-1).mean().item(),
        "memory_share": (from_memory / (from_memory + from_frame)).mean().item(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="run directories of memory agents")
    parser.add_argument("--steps", type=int, default=400, help="steps played per environment")
    parser.add_argument("--envs", type=int, default=4, help="environments played at once")
    parser.add_argument("--out", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = [measure(run, args.steps, args.envs) for run in args.runs]
    print("| run | fusion | step | CNN feature norm | memory norm | memory's share of the actor's first layer |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {Path(row['run']).name} | {row['fusion']} | {row['checkpoint_step']:,} | {row['cnn_feature_norm']:.2f} "
            f"| {row['memory_norm']:.2f} | {row['memory_share']:.3f} |"
        )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(args.out, rows)


if __name__ == "__main__":
    main()
