"""Every training setting in one place, each documented.

A run's configuration is resolved in three layers, later ones winning:
1. the defaults of `TrainConfig` below;
2. the paper preset, when `preset="paper"`: the settings the HELM, HELMv2 and SHELM authors published for the
   (environment, agent) pair, kept beside each environment suite (`shelm.envs.pair_preset`, `task_preset`),
   with the agent's own paper settings (e.g. HELM's FrozenHopfield beta) on those pairs (`AgentSpec`);
3. what the user gave explicitly (`--steps`, `--seed`, `--n-envs`, `--set key=value`).
The resolved config, and which keys the preset set, are saved in the run's `config.json`.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from shelm.errors import ShelmError

# MiniGrid frames are 7 cells of this many pixels a side; 64 (448x448 frames) is far past any use.
MAX_TILE_SIZE = 64
# `shelm inspect`'s step cap per episode unless told otherwise: its page holds every step, and one episode of an Atari
# game can last tens of thousands.
INSPECT_MAX_EPISODE_STEPS = 1000
# The sides `obs_resize=HxW` may give: the CNN encoder's smallest input, and far past any use.
MIN_FRAME_SIDE, MAX_FRAME_SIDE = 6, 1024
# More stacked frames than this is surely a typo (Atari agents stack 4).
MAX_FRAME_STACK = 16
# The `instruction` setting's value for "the memory reads no instruction".
NO_INSTRUCTION = "none"
# How the memory's output can meet the CNN's features (the `fusion` setting), and how it does unless a run says
# otherwise.
Fusion = Literal["standardized", "normalized", "concat"]
FUSIONS: tuple[str, ...] = typing.get_args(Fusion)
DEFAULT_FUSION: Fusion = "standardized"
# Settings that change how fast a run computes, not what it learns: a sweep may resume a trial with other values
# (e.g. more torch threads on a machine with more cores free). Runs differ then only as runs on two machines do.
EXECUTION_SETTINGS = ("torch_threads",)


def _doc(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass
class TrainConfig:
    """One training run. Field names are the keys of `--set key=value` and of config.json."""

    # --- task and agent
    env_id: str = field(default="MiniGrid-MemoryS7-v0", metadata=_doc("gymnasium id of the task (`shelm envs`)"))
    agent: str = field(default="cnn", metadata=_doc("which agent to train (`shelm agents`)"))
    preset: Literal["paper", "none"] = field(
        default="paper",
        metadata=_doc("'paper' applies the authors' per-task settings when the pair has them"),
    )
    seed: int = field(default=0, metadata=_doc("seeds torch, the environments and the action sampling"))
    total_steps: int = field(default=500_000, metadata=_doc("environment steps to train for, summed over envs"))

    # --- environments
    n_envs: int = field(default=16, metadata=_doc("parallel environments"))
    vectorization: Literal["sync", "async"] = field(
        default="sync",
        metadata=_doc("'sync' steps envs in this process (faster on 2 cores); 'async' uses subprocesses"),
    )
    obs_key: str = field(
        default="auto",
        metadata=_doc(
            "for envs that observe a Dict: the key of the image the agent sees; 'auto' takes the only uint8 HxWxC entry"
        ),
    )
    minigrid_tile_size: int = field(
        default=8,
        metadata=_doc("pixels per MiniGrid cell of the RGB partial view (8 -> 56x56x3, as in the papers)"),
    )
    env_kwargs: str = field(
        default="",
        metadata=_doc(
            "keyword arguments for the env's constructor, passed to gymnasium.make: comma-separated KEY=VALUE, each "
            "value read as an int, a float, true/false or else text (`--env-kwargs agent_view_size=3`; "
            "max_episode_steps=96 adds gymnasium's time limit); '' passes none"
        ),
    )
    env_actions: str = field(
        default="",
        metadata=_doc(
            "the env's actions the agent chooses from: comma-separated indices of its Discrete action space, in the "
            "order the agent numbers them (e.g. '0,1,2': MiniGrid's turn left, turn right and forward, the only "
            "actions its Memory task needs, as independent MiniGrid agents restrict them); '' gives it every action"
        ),
    )
    env_layouts: int = field(
        default=0,
        metadata=_doc(
            "episodes drawn from this many fixed layouts: every reset seeds the env with a seed drawn from "
            "0..N-1 (by a generator the run's seed seeds), as Procgen's num_levels fixes its levels and an "
            "independent LSTM-PPO trains MiniGrid's Memory tasks on 99 seeds; evaluation draws from the same N. "
            "0: every episode is new"
        ),
    )
    obs_resize: str = field(
        default="auto",
        metadata=_doc(
            "the size frames are resized to before the agent and its memory see them (OpenCV, area interpolation). "
            "'auto': frames whose larger side exceeds 96 pixels (e.g. ALE's 210x160, ViZDoom's 240x320) become "
            "64x64, Procgen's frame size, the largest the papers trained their CNN on; smaller frames, and "
            "MiniGrid/BabyAI's (minigrid_tile_size sizes those), are kept as the env makes them. 'HxW' (e.g. "
            "84x84, Atari's usual size) resizes every frame; 'none' resizes none"
        ),
    )
    obs_grayscale: bool = field(
        default=False,
        metadata=_doc(
            "frames reduced to one grey channel (HxWx1, luminance, after resizing), as Atari agents commonly see "
            "them; the pretrained image models of helmv2 and shelm's pixel retrievers see the grey repeated as RGB"
        ),
    )
    obs_frame_stack: int = field(
        default=1,
        metadata=_doc(
            "the last N frames stacked along the channels (HxWx(N*C), oldest first; an episode's first frame fills "
            "the stack), so that an agent without memory sees motion; 1 stacks none. Agents whose memory reads "
            "pixels with a pretrained image model (helmv2; shelm unless retriever=symbolic) take one frame: 1"
        ),
    )

    # --- PPO
    n_steps: int = field(default=128, metadata=_doc("rollout length per environment between updates"))
    lr: float = field(default=3e-4, metadata=_doc("AdamW learning rate"))
    lr_decay: Literal["none", "linear"] = field(
        default="none", metadata=_doc("'linear' decays the learning rate to lr_final over decay_steps")
    )
    lr_final: float = field(
        default=0.0, metadata=_doc("learning rate reached by lr_decay=linear at decay_steps, and held after it")
    )
    ent_coef: float = field(default=0.01, metadata=_doc("entropy bonus coefficient"))
    ent_decay: Literal["none", "linear"] = field(
        default="none", metadata=_doc("'linear' decays ent_coef to ent_coef_final over decay_steps")
    )
    ent_coef_final: float = field(
        default=1e-4, metadata=_doc("entropy coefficient reached by ent_decay=linear at decay_steps, and held after it")
    )
    decay_steps: int = field(
        default=0,
        metadata=_doc(
            "environment steps over which lr_decay and ent_decay go from lr and ent_coef to lr_final and "
            "ent_coef_final; 0 = total_steps. A horizon longer than the run stops the decay part-way (CleanRL "
            "ppo_trxl anneals over 4,096,000 steps in its 2,048,000-step MiniGrid-Memory runs, ending half-way)"
        ),
    )
    gamma: float = field(default=0.99, metadata=_doc("discount factor"))
    gae_lambda: float = field(default=0.99, metadata=_doc("GAE lambda"))
    clip_coef: float = field(default=0.2, metadata=_doc("PPO ratio clipping"))
    vf_coef: float = field(
        default=0.5, metadata=_doc("value loss coefficient; the value loss is half the mean squared error")
    )
    clip_vloss: bool = field(
        default=False,
        metadata=_doc(
            "clip the value loss as PPO's original code and CleanRL do: per step the larger of the squared errors "
            "of the new value and of the rollout's value moved towards it by at most clip_coef"
        ),
    )
    norm_adv: bool = field(
        default=True,
        metadata=_doc(
            "standardise the advantages of each minibatch (mean 0, std 1) before the policy loss; CleanRL "
            "ppo_trxl uses them raw (false)"
        ),
    )
    max_grad_norm: float = field(default=0.5, metadata=_doc("global gradient-norm clipping"))
    n_epochs: int = field(default=3, metadata=_doc("passes over each rollout"))
    n_minibatches: int = field(
        default=8,
        metadata=_doc("minibatches per epoch; recurrent agents split whole episode segments into this many groups"),
    )
    adam_eps: float = field(default=1e-8, metadata=_doc("AdamW epsilon"))
    weight_decay: float = field(default=0.01, metadata=_doc("AdamW decoupled weight decay (torch default)"))
    norm_reward: bool = field(
        default=True, metadata=_doc("divide rewards by the running std of the discounted return, then clip")
    )
    reward_clip: float = field(default=1.0, metadata=_doc("normalised rewards are clipped to [-reward_clip, +]"))

    # --- network sizes
    cnn_features: int = field(default=1024, metadata=_doc("width of the CNN encoder's output layer"))
    actor_hidden: int = field(default=128, metadata=_doc("hidden width of the actor head (lstm's heads are linear)"))
    critic_hidden: int = field(default=512, metadata=_doc("hidden width of the critic head (lstm's heads are linear)"))
    lstm_hidden: int = field(default=256, metadata=_doc("width of the Impala-PPO baseline's actor and critic LSTMs"))
    bptt_length: int = field(
        default=0,
        metadata=_doc(
            "recurrent agents (lstm): the most steps the PPO update backpropagates through in one piece. Each "
            "episode's part of the rollout is cut into pieces of at most this many steps, each started from the "
            "memory state acting had before its first step (truncated BPTT with stored states; an independent "
            "LSTM-PPO uses 8 on MiniGrid's Memory tasks). 0: whole episode parts of the rollout, padded to the "
            "longest in each minibatch, which costs up to n_steps times the rollout when long and short episodes mix"
        ),
    )
    trxl_layers: int = field(default=2, metadata=_doc("trxl: Transformer-XL layers of the agent's trained memory"))
    trxl_heads: int = field(default=4, metadata=_doc("trxl: attention heads per layer (trxl_dim must divide by it)"))
    trxl_dim: int = field(
        default=256, metadata=_doc("trxl: width of the Transformer-XL (the CNN's output, each layer, the heads' input)")
    )
    trxl_memory_length: int = field(
        default=64,
        metadata=_doc(
            "trxl: previous steps of the current episode each step attends to (its window of cached layer inputs, "
            "emptied at every episode start)"
        ),
    )
    trxl_positional_encoding: Literal["absolute", "relative", "none"] = field(
        default="absolute",
        metadata=_doc(
            "trxl: how attention tells the cached steps apart by position. 'absolute' (CleanRL ppo_trxl's): a "
            "sinusoid of each cached step's position in its episode added to the cached inputs its keys and values "
            "are made from, none on the query; 'relative': a learned projection of a sinusoid of how many steps "
            "back each key lies, added to the keys; 'none': no position"
        ),
    )
    trxl_reconstruction_coef: float = field(
        default=0.0,
        metadata=_doc(
            "trxl: weight of an auxiliary loss in the PPO update, a small decoder reconstructing the frame from the "
            "Transformer-XL's output (binary cross-entropy on pixels in [0, 1]); 0 builds no decoder"
        ),
    )
    fusion: Fusion = field(
        default=DEFAULT_FUSION,
        metadata=_doc(
            "how the memory's output meets the CNN's features before the heads: 'standardized' standardises the "
            "memory per dimension with running statistics of its outputs, so what it says about the episode is "
            "not hidden under the part common to every step, then scales both to unit L2 norm and concatenates "
            "(measured: docs/results.md, MemoryS11); 'normalized' only scales each to unit norm, so the CNN's "
            "features, which grow as PPO trains, cannot drown the memory; 'concat' puts the raw vectors side by "
            "side (the papers')"
        ),
    )

    # --- the frozen language-model memory (HELM family)
    lm: str = field(
        default="smollm2",
        metadata=_doc(
            "frozen LM: 'smollm2' (packaged, offline), a Hugging Face model directory, a hub id, or "
            "'transfo-xl:DIR' (the papers' TransformerXL wt103 from its original files, README)"
        ),
    )
    mem_len: int = field(default=255, metadata=_doc("past positions each environment's LM memory attends to"))
    lm_layers: int = field(default=0, metadata=_doc("keep only the LM's first L transformer blocks; 0 keeps all"))
    lm_dtype: Literal["auto", "float32", "bfloat16"] = field(
        default="auto",
        metadata=_doc(
            "dtype of the frozen LM's weights and activations, and of the frozen mapping feeding it; 'auto': "
            "bfloat16 where the device computes it natively (AMX, AVX-512 BF16, CUDA), else float32"
        ),
    )
    lm_compile: Literal["auto", "true", "false"] = field(
        default="auto",
        metadata=_doc(
            "the LM step as one compiled graph (inductor, the weights frozen into it; CUDA graphs on GPUs); "
            "'auto' compiles for runs of >= 100k steps, where the one-off compile (seconds per block) pays; "
            "falls back to the eager step, saying so, if compilation fails"
        ),
    )
    instruction: str = field(
        default=NO_INSTRUCTION,
        metadata=_doc(
            "the LM agents read the episode's instruction into their memory: the text the env gives under this key "
            "(info, or a text entry of a Dict observation; 'mission' on MiniGrid/BabyAI) fills the first "
            "positions of each episode's window and never slides out; 'none' feeds the observations only"
        ),
    )
    instruction_tokens: int = field(
        default=32,
        metadata=_doc("LM positions kept per environment for the instruction; a longer one is cut (and counted)"),
    )
    beta: float = field(
        default=1.0, metadata=_doc("FrozenHopfield inverse temperature (paper: 1, 100 or 1000; large = one token)")
    )

    # --- SHELM's retrieval and HELMv2's image features
    retriever: str = field(
        default="auto",
        metadata=_doc(
            "SHELM: how an observation becomes words. 'clip': the paper's CLIP (clip_model) against the words "
            "CLIP and the LM share; 'regions': EfficientNet-Lite0's ImageNet class names for each region of the "
            "frame (region_grid), the frame's words picked by how rare they have been (offline, from pixels); "
            "'imagenet': the same classifier on the whole frame (barely discriminates grid worlds); 'symbolic': "
            "MiniGrid/BabyAI's objects and colours in view, read from the environment's state (an oracle for "
            "perception); 'auto': symbolic on MiniGrid/BabyAI, else regions; any name added with "
            "shelm.memory.retrievers.register_retriever"
        ),
    )
    topk: int = field(default=1, metadata=_doc("SHELM: words retrieved per step, most similar first (paper 1-4)"))
    region_grid: str = field(
        default="auto",
        metadata=_doc(
            "SHELM with retriever=regions: the regions each frame is cut into and classified one by one. 'ROWSxCOLS' "
            "(equal regions), 'cells' (MiniGrid's cells of minigrid_tile_size pixels); 'auto': cells on "
            "MiniGrid/BabyAI, else 4x4"
        ),
    )
    region_pixels: int = field(
        default=128,
        metadata=_doc("SHELM with retriever=regions: the side in pixels each region is resized to for the classifier"),
    )
    image_encoder: str = field(
        default="auto",
        metadata=_doc(
            "HELMv2: image features mapped into the LM's embedding space. 'clip': clip_model's image embedding "
            "(the paper); 'imagenet': EfficientNet-Lite0's pooled features (offline); 'auto': imagenet"
        ),
    )
    clip_model: str = field(
        default="openai/clip-vit-base-patch16",
        metadata=_doc("CLIP for retriever=clip / image_encoder=clip: a hub id in the local cache or a directory"),
    )
    prompt_templates: str = field(
        default="a render of {};a render of a {};a screenshot of a {};a screenshot of {};a screen showing {};"
        "a screen showing a {}",
        metadata=_doc("SHELM with CLIP: ';'-separated prompts each word is embedded in, then averaged"),
    )
    memo_size: int = field(
        default=65_536,
        metadata=_doc("per-observation LM inputs cached (FrozenHopfield, retrieval, image features; LRU entries)"),
    )

    # --- DreamerV2 (agent dreamerv2: sheeprl's implementation on shelm's envs; the dreamer extra). sheeprl's
    # dreamer_v2 defaults hold except where a CPU needs less (the model size, the batch and the replay ratio).
    dreamer_size: Literal["small", "sheeprl"] = field(
        default="small",
        metadata=_doc(
            "DreamerV2's networks: 'small' (dense 128 x 2 layers, CNN channels x16, recurrent and hidden 128, "
            "16 x 16 discrete latents; trainable on a CPU) or 'sheeprl' (sheeprl's dreamer_v2 sizes: dense 400 x 4, "
            "channels x48, recurrent 600, 32 x 32 latents; about 15 s per gradient step on one CPU thread)"
        ),
    )
    dreamer_batch_size: int = field(
        default=8, metadata=_doc("DreamerV2: sequences per gradient step (sheeprl: 16; 8 on a CPU)")
    )
    dreamer_sequence_length: int = field(
        default=32, metadata=_doc("DreamerV2: steps per replayed sequence (sheeprl: 50; 32 on a CPU)")
    )
    dreamer_replay_ratio: float = field(
        default=0.1, metadata=_doc("DreamerV2: gradient steps per environment step (sheeprl: 0.2; 0.1 on a CPU)")
    )
    dreamer_learning_starts: int = field(
        default=1000, metadata=_doc("DreamerV2: environment steps of random play before learning (sheeprl: 1000)")
    )
    dreamer_pretrain_steps: int = field(
        default=100, metadata=_doc("DreamerV2: gradient steps at the end of learning_starts (sheeprl: 100)")
    )
    dreamer_buffer_size: int = field(
        default=5_000_000,
        metadata=_doc("DreamerV2: replay capacity in environment steps, capped at total_steps (sheeprl: 5000000)"),
    )
    dreamer_log_every: int = field(
        default=1000, metadata=_doc("DreamerV2: environment steps between metrics rows (sheeprl logs every 5000)")
    )
    dreamer_checkpoint_every: int = field(
        default=10_000,
        metadata=_doc(
            "DreamerV2: environment steps between checkpoints, which a killed run continues from (`--resume`, a sweep "
            "run again); the replay buffer is not kept, so a resumed run refills it by playing its policy for "
            "dreamer_learning_starts steps before it trains again"
        ),
    )

    # --- bookkeeping
    precision: Literal["auto", "float32", "bfloat16"] = field(
        default="auto",
        metadata=_doc(
            "the trained agent's compute: 'bfloat16' autocasts acting and the PPO update (losses, advantages, "
            "returns and optimizer state stay float32); 'auto': bfloat16 where the device computes it natively"
        ),
    )
    device: Literal["auto", "cpu", "cuda"] = field(default="auto", metadata=_doc("'auto' uses CUDA when available"))
    track: bool = field(
        default=False,
        metadata=_doc("also log to Weights & Biases (`--track`; the track extra); WANDB_MODE=offline needs no network"),
    )
    wandb_project: str = field(default="shelm", metadata=_doc("the W&B project of --track"))
    wandb_entity: str = field(default="", metadata=_doc("the W&B entity (team or user) of --track; '' = your default"))
    torch_threads: int = field(default=0, metadata=_doc("torch intra-op threads; 0 keeps torch's default"))
    stats_window: int = field(default=100, metadata=_doc("episodes averaged into return_mean and success_rate"))
    checkpoint_every: int = field(default=10, metadata=_doc("PPO iterations between checkpoints"))

    @property
    def gym_kwargs(self) -> dict[str, Any]:
        """`env_kwargs` as the keyword arguments gymnasium.make receives."""
        return parse_env_kwargs(self.env_kwargs)

    @property
    def batch_size(self) -> int:
        return self.n_envs * self.n_steps

    @property
    def n_iterations(self) -> int:
        return -(-self.total_steps // self.batch_size)

    def validate(self) -> None:
        """Reject values that cannot work, naming the key and the fix."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ShelmError(f"--set {f.name}={value}: give a finite number")
        if not 0 <= self.seed < 2**32:
            raise ShelmError(f"--seed {self.seed}: seeds are 0 .. 2**32 - 1 (numpy's and gymnasium's range)")
        cores = os.cpu_count() or 1
        if self.torch_threads > cores:
            raise ShelmError(
                f"--set torch_threads={self.torch_threads}: this machine has {cores} cores; use 0..{cores}"
            )
        if self.minigrid_tile_size > MAX_TILE_SIZE:
            raise ShelmError(
                f"--set minigrid_tile_size={self.minigrid_tile_size}: at most {MAX_TILE_SIZE} pixels per cell "
                "(the papers used 8)"
            )
        positive = ["total_steps", "n_envs", "n_steps", "n_epochs", "n_minibatches", "minigrid_tile_size"]
        positive += ["cnn_features", "actor_hidden", "critic_hidden", "lstm_hidden", "stats_window"]
        positive += ["checkpoint_every", "mem_len", "topk", "memo_size", "instruction_tokens", "region_pixels"]
        positive += ["dreamer_batch_size", "dreamer_sequence_length", "dreamer_buffer_size", "dreamer_log_every"]
        positive += ["dreamer_checkpoint_every"]
        positive += ["trxl_layers", "trxl_heads", "trxl_dim", "trxl_memory_length", "obs_frame_stack"]
        for key in positive:
            if getattr(self, key) < 1:
                raise ShelmError(f"{key}={getattr(self, key)} must be >= 1")
        for key in ["lr", "clip_coef", "max_grad_norm", "adam_eps", "reward_clip", "dreamer_replay_ratio"]:
            if not getattr(self, key) > 0:
                raise ShelmError(f"{key}={getattr(self, key)} must be > 0")
        for key in ["gamma", "gae_lambda"]:
            if not 0 <= getattr(self, key) <= 1:
                raise ShelmError(f"{key}={getattr(self, key)} must be in [0, 1]")
        at_least_zero = ["ent_coef", "ent_coef_final", "lr_final", "decay_steps", "vf_coef", "weight_decay"]
        for key in [*at_least_zero, "torch_threads", "lm_layers", "beta", "bptt_length", "env_layouts"]:
            if getattr(self, key) < 0:
                raise ShelmError(f"{key}={getattr(self, key)} must be >= 0")
        for key in ["dreamer_learning_starts", "dreamer_pretrain_steps"]:
            if getattr(self, key) < 0:
                raise ShelmError(f"{key}={getattr(self, key)} must be >= 0")
        if self.trxl_reconstruction_coef < 0:
            raise ShelmError(f"trxl_reconstruction_coef={self.trxl_reconstruction_coef} must be >= 0 (0 turns it off)")
        if self.trxl_dim % self.trxl_heads:
            raise ShelmError(
                f"trxl_dim={self.trxl_dim} does not split into trxl_heads={self.trxl_heads} equal heads; set trxl_dim "
                f"to a multiple of trxl_heads (e.g. {self.trxl_heads * max(1, round(self.trxl_dim / self.trxl_heads))})"
            )
        parse_env_kwargs(self.env_kwargs)  # refuses a malformed env_kwargs
        parse_env_actions(self.env_actions)  # refuses a malformed list; the env checks the range when it is built
        parse_obs_resize(self.obs_resize)  # refuses a malformed or out-of-range size
        if self.obs_frame_stack > MAX_FRAME_STACK:
            raise ShelmError(
                f"--set obs_frame_stack={self.obs_frame_stack}: at most {MAX_FRAME_STACK} frames (Atari agents stack 4)"
            )
        if self.n_minibatches > self.batch_size:
            raise ShelmError(
                f"n_minibatches={self.n_minibatches} exceeds the rollout of n_envs*n_steps={self.batch_size}; "
                "lower n_minibatches or raise n_steps"
            )
        for f in dataclasses.fields(self):
            choices = _literal_choices(f.name)
            if choices and getattr(self, f.name) not in choices:
                raise ShelmError(f"{f.name}={getattr(self, f.name)!r} is not one of {', '.join(choices)}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Rebuild a saved config; unknown keys are an error (a config from another shelm version). A config
        saved before a setting existed gets the value that reproduces how it ran (`SETTINGS_BEFORE_THEY_EXISTED`)."""
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ShelmError(f"config has unknown keys {unknown}; it was written by another shelm version")
        return cls(**{**SETTINGS_BEFORE_THEY_EXISTED, **values})


# Runs saved before mixed precision, the compiled LM step, the fusion setting, observation preprocessing and the
# Transformer-XL's choice of positional encoding trained in float32 with the eager step and the concatenated streams,
# on the env's frames as it made them, and (trxl) with relative positions.
SETTINGS_BEFORE_THEY_EXISTED: dict[str, Any] = {
    "precision": "float32",
    "lm_compile": "false",
    "fusion": "concat",
    "obs_resize": "none",
    "obs_grayscale": False,
    "obs_frame_stack": 1,
    "trxl_positional_encoding": "relative",
}


def config_help() -> list[tuple[str, str, str]]:
    """(key, default, help) for every field: the CLI reference and `--set` errors use it."""
    return [(f.name, repr(f.default), f.metadata["help"]) for f in dataclasses.fields(TrainConfig)]


def _field_type(key: str) -> Any:
    return typing.get_type_hints(TrainConfig)[key]


def _literal_choices(key: str) -> tuple[str, ...]:
    hint = _field_type(key)
    return typing.get_args(hint) if typing.get_origin(hint) is Literal else ()


def parse_value(key: str, text: str) -> Any:
    """Convert the text of `--set key=text` to the field's type, or say what was expected."""
    names = [f.name for f in dataclasses.fields(TrainConfig)]
    if key not in names:
        close = difflib.get_close_matches(key, names, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ShelmError(f"unknown setting '{key}'{hint}; `shelm settings` lists them all")
    hint = _field_type(key)
    choices = _literal_choices(key)
    if choices:
        if text not in choices:
            raise ShelmError(f"--set {key}={text}: expected one of {', '.join(choices)}")
        return text
    if hint is bool:
        lowered = text.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ShelmError(f"--set {key}={text}: expected true or false")
    if hint in (int, float):
        try:
            value = float(text) if hint is float else int(text.replace("_", ""))
        except ValueError:
            raise ShelmError(f"--set {key}={text}: expected {'a number' if hint is float else 'an integer'}") from None
        return value
    if hint is str or (isinstance(hint, types.UnionType) and str in typing.get_args(hint)):
        return text
    raise AssertionError(f"no parser for field {key} of type {hint}")


def parse_obs_resize(text: str) -> tuple[int, int] | str | None:
    """The `obs_resize` setting: 'auto' -> 'auto', 'none' -> None, '84x84' -> (84, 84) (height, width); anything else,
    or a side outside MIN_FRAME_SIDE .. MAX_FRAME_SIDE, is refused in one line."""
    lowered = text.strip().lower()
    if lowered in ("auto", "none"):
        return None if lowered == "none" else "auto"
    height, sep, width = lowered.partition("x")
    if not sep or not height.strip().isdigit() or not width.strip().isdigit():
        raise ShelmError(f"--set obs_resize={text}: expected auto, none or HEIGHTxWIDTH in pixels, e.g. 84x84")
    size = (int(height), int(width))
    if not all(MIN_FRAME_SIDE <= side <= MAX_FRAME_SIDE for side in size):
        raise ShelmError(
            f"--set obs_resize={text}: each side must be {MIN_FRAME_SIDE} to {MAX_FRAME_SIDE} pixels (the CNN needs "
            f"at least {MIN_FRAME_SIDE}); e.g. 84x84"
        )
    return size


def _env_value(text: str) -> Any:
    """An env keyword's value: an int, a float, a bool (true/false, any case), or else the text itself."""
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def parse_env_kwargs(text: str) -> dict[str, Any]:
    """`"agent_view_size=3,max_steps=96"` -> `{"agent_view_size": 3, "max_steps": 96}`; '' -> {}. A malformed item or a
    key given twice is refused in one line."""
    out: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise ShelmError(f"--env-kwargs {item!r}: expected KEY=VALUE with KEY a keyword, e.g. agent_view_size=3")
        if key in out:
            raise ShelmError(f"--env-kwargs gives {key} twice ({text}); give each key once")
        out[key] = _env_value(value.strip())
    return out


def parse_env_actions(text: str) -> tuple[int, ...]:
    """`"0,1,2"` -> `(0, 1, 2)`; '' -> () (every action). A non-integer, a negative index or one given twice is
    refused in one line."""
    actions: list[int] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        if not item.isdigit():
            raise ShelmError(f"--set env_actions={text}: {item!r} is not an action index; give e.g. env_actions=0,1,2")
        if int(item) in actions:
            raise ShelmError(f"--set env_actions={text}: action {item} is given twice; give each action once")
        actions.append(int(item))
    return tuple(actions)


def format_env_kwargs(items: list[str]) -> str:
    """The `env_kwargs` setting of repeated or comma-separated `--env-kwargs KEY=VALUE` arguments (checked)."""
    text = ",".join(part.strip() for item in items for part in item.split(",") if part.strip())
    parse_env_kwargs(text)
    return text


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """`["lr=1e-4", "n_envs=8"]` -> `{"lr": 1e-4, "n_envs": 8}` with every value checked."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise ShelmError(f"--set {pair!r}: expected key=value, e.g. --set lr=1e-4")
        out[key.strip()] = parse_value(key.strip(), text.strip())
    return out
