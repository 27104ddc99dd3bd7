"""What every agent's trainable side offers the one PPO trainer.

An agent sees, per environment step, the current frame and the output of its frozen memory module (an
empty vector for the baselines). Recurrent agents also carry a state tensor; feed-forward agents carry an
empty one, so the trainer never branches on the agent type except to choose how to cut minibatches.

A third kind, windowed agents (`window` > 0, Transformer-XL), attend over what they computed at their own last
`window` steps of the episode. Their state is that window, laid out so that the trainer can store it compactly:
[N, window, record_size + 1], oldest step first; slot j holds the `record_size` numbers the agent computed at the
step `window - j` steps back (its record), then 1.0 where that step belongs to the current episode and 0.0 where
the slot is empty. The rollout keeps only each step's record (`newest_record` of the state `step` returned) and the
window carried over from before the rollout, rebuilds from them the window every step acted on, and the update
re-evaluates single shuffled steps with `forward_windows`.
"""

from __future__ import annotations

import torch
from torch import nn


class Agent(nn.Module):
    """Base class of the trainable parts. Shapes: N environments, L steps, A actions."""

    is_recurrent: bool = False
    window: int = 0
    """Windowed agents: how many previous steps their state holds (see the module's docstring); 0 for the others."""
    record_size: int = 0
    """Windowed agents: the numbers kept per step of the window (and per step in the rollout)."""

    def initial_state(self, n_envs: int) -> torch.Tensor:
        """State at the start of training: [N, ...]; feed-forward agents use an empty [N, 0]."""
        return torch.zeros(n_envs, 0)

    def step(
        self, obs: torch.Tensor, memory: torch.Tensor, state: torch.Tensor, episode_start: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One step for N envs: obs uint8 [N, H, W, C], memory [N, M], episode_start bool [N].

        Returns logits [N, A], values [N] and the next state. A recurrent agent zeroes the state of
        environments whose episode starts here before using it.
        """
        raise NotImplementedError

    def observe_memory(self, memory: torch.Tensor) -> None:
        """Called by the trainer after each update with the rollout's memory outputs [T, N, M]: an agent that keeps
        statistics of its memory's outputs updates them here, between updates, so that acting and the update on
        one rollout always see the same statistics. Agents without such statistics ignore it."""

    def newest_record(self, state: torch.Tensor) -> torch.Tensor:
        """Windowed agents: the record [N, record_size] of the step that returned `state`, what the rollout keeps."""
        return state[:, -1, : self.record_size]

    def forward_windows(
        self, obs: torch.Tensor, memory: torch.Tensor, rows: torch.Tensor, index: torch.Tensor, valid: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Windowed agents: re-evaluate B stored steps for the PPO update. obs [B, H, W, C], memory [B, M]; the window
        each step acted on is given as rows of a table shared by the batch: `rows` [R, record_size] (stored records,
        no gradient), `index` [B, window] the row of each slot (oldest first), `valid` [B, window] whether the slot
        holds a step of the step's own episode.

        Returns logits [B, A], values [B] and the agent's own auxiliary loss on these steps, already weighted, which
        the update adds to PPO's (None when it has none).
        """
        raise NotImplementedError

    def window_attention(
        self, obs: torch.Tensor, memory: torch.Tensor, state: torch.Tensor, episode_start: torch.Tensor
    ) -> torch.Tensor | None:
        """What `step` on these inputs attends to: [N, layers, heads, window + 1] attention weights over the window's
        slots (oldest first) and the step itself (last), 0 on empty slots; None for agents that do not attend over
        their own past (`shelm inspect` shows it)."""
        return None

    def forward_sequences(
        self, obs: torch.Tensor, memory: torch.Tensor, initial_state: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Re-evaluate stored steps for the PPO update: obs [L, B, H, W, C], memory [L, B, M].

        Each of the B columns is one episode segment (no episode starts inside it) that begins from
        `initial_state` [B, ...]. Returns logits [L, B, A] and values [L, B].
        """
        raise NotImplementedError
