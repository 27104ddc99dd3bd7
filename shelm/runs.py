"""Run directories: the resolved config, metrics, TensorBoard events and checkpoints.

```
RUN_DIR/
  config.json            resolved config, preset keys, package versions, command
  metrics.jsonl          one JSON object per PPO iteration
  events.out.tfevents.*  TensorBoard
  checkpoints/latest/    model.safetensors (trainable weights)
                         trainer.safetensors (optimizer moments; the states of torch's generator, of the actor's,
                         which draws every action, and of the one that shuffles minibatches)
                         trainer.json (step, normaliser, episode window, optimizer settings)
  checkpoints/best/      the same, at the best return_mean so far
```
Every file is written to a temporary name and renamed into place; a checkpoint directory is swapped in
whole, so a process killed at any moment leaves the previous complete checkpoint. Nothing is unpickled:
tensors are safetensors, everything else JSON.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import shlex
import shutil
import sys
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from shelm.config import TrainConfig
from shelm.errors import ShelmError
from shelm.files import write_atomic, write_json_atomic
from shelm.memory import FrozenMemory

CHECKPOINT_FORMAT = "shelm-checkpoint"
CHECKPOINT_VERSION = 1
TRACKED_PACKAGES = ["shelm", "torch", "numpy", "gymnasium", "minigrid", "safetensors"]


# --- the run directory -----------------------------------------------------------------------------


def path_safe(env_id: str) -> str:
    """An env id as part of a folder name: '/' and ':' (`module:EnvId`, which rsync and TensorBoard read as a
    host or a name) become '_', and so do '<' and '>' (a Python factory's `<lambda>` or `<locals>`)."""
    return re.sub(r"[/:<>]", "_", env_id)


def default_run_dir(config: TrainConfig) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{path_safe(config.env_id)}__{config.agent}__s{config.seed}__{stamp}"


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def create_run_dir(path: Path, force: bool) -> None:
    """Make a fresh run directory. An existing non-empty one is an error unless `force` replaces it."""
    if path.exists() and not path.is_dir():
        raise ShelmError(f"run directory '{path}' is a file; choose another --run-dir")
    if path.is_dir() and any(path.iterdir()):
        if not force:
            raise ShelmError(
                f"run directory '{path}' already exists; continue it with `shelm train --resume {path}`, "
                "or pass --force to replace it"
            )
        shutil.rmtree(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ShelmError(f"--run-dir {path}: cannot create it ({exc.strerror}); choose a writable folder") from None


def save_run_config(
    path: Path,
    config: TrainConfig,
    preset_applied: dict[str, Any],
    command: str | None = None,
    env_factory: bool = False,
) -> None:
    """config.json; `command` is what started the run (the process's own command line by default). `env_factory`
    records that the env was made by a Python factory (`shelm.envs.factory`), which only a Python call can give
    back."""
    write_json_atomic(
        path / "config.json",
        {
            "config": config.to_dict(),
            "preset_applied": preset_applied,
            "versions": package_versions(),
            "command": command or shlex.join(sys.argv),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            **({"env_factory": True} if env_factory else {}),
        },
    )


def load_run_config(path: Path) -> TrainConfig:
    file = path / "config.json"
    if not file.is_file():
        raise ShelmError(
            f"'{path}' is not a shelm run directory (no config.json); give the directory `shelm train` made"
        )
    try:
        data = json.loads(file.read_text())
        return TrainConfig.from_dict(data["config"])
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ShelmError(f"'{file}' is not a valid shelm config ({type(exc).__name__}); it cannot be resumed") from None


def made_by_factory(path: Path) -> bool:
    """Whether the run's config.json records that its env was made by a Python factory (`save_run_config`)."""
    try:
        return json.loads((path / "config.json").read_text()).get("env_factory") is True
    except (OSError, json.JSONDecodeError, AttributeError):
        return False


# --- metrics ---------------------------------------------------------------------------------------


def _json_safe(value: Any) -> Any:
    """NaN and infinities are not JSON: write them as null."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def append_metrics(path: Path, row: dict[str, Any]) -> None:
    with (path / "metrics.jsonl").open("a") as f:
        f.write(json.dumps({k: _json_safe(v) for k, v in row.items()}, allow_nan=False) + "\n")
        f.flush()


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """All complete rows; a last line cut off by a crash is ignored."""
    file = path / "metrics.jsonl"
    if not file.exists():
        return []
    rows = []
    for line in file.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return rows


def remove_partial_writes(run_dir: Path) -> None:
    """Delete what a killed process was writing: temporary files and staged checkpoint directories.

    A `.NAME.old` checkpoint is kept when `NAME` itself is missing: it is then the latest complete one.
    """
    for path in [*run_dir.glob(".*.tmp"), *(run_dir / "checkpoints").glob(".*")]:
        name = path.name.removeprefix(".").removesuffix(".old")
        if path.name.endswith(".old") and not (path.parent / name).exists():
            path.rename(path.parent / name)
        elif path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()


def truncate_metrics(path: Path, global_step: int) -> None:
    """Keep the rows up to `global_step` (the resumed checkpoint), so the step column stays continuous."""
    rows = [r for r in read_metrics(path) if r["global_step"] <= global_step]
    write_atomic(path / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in rows).encode())


# --- checkpoints -----------------------------------------------------------------------------------


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, values in state["state"].items():
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer.{index}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(index), {})[name] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _optimizer_state(tensors: dict[str, torch.Tensor], info: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    for index, values in info["scalars"].items():
        state.setdefault(int(index), {}).update(values)
    return {"state": state, "param_groups": info["param_groups"]}


def save_checkpoint(
    run_dir: Path,
    name: str,
    agent: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    trainer: dict[str, Any],
    memory: FrozenMemory | None = None,
    generators: Mapping[str, torch.Generator] | None = None,
) -> None:
    """Write checkpoints/NAME/ whole, then swap it in for the previous one. `generators` are the trainer's own
    random generators by name (`restore_generators` gives them back), saved beside torch's global one.

    A frozen memory contributes its identity (model source and weight hash, settings) to trainer.json and
    its construction-time tensors (e.g. FrozenHopfield's projection) to memory.safetensors; the frozen
    language model's weights themselves are never copied into a run.
    """
    root = run_dir / "checkpoints"
    root.mkdir(exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=root, prefix=f".{name}."))
    try:
        step = str(trainer["global_step"])
        model = {k: v.detach().cpu().contiguous() for k, v in agent.state_dict().items()}
        save_file(model, staging / "model.safetensors", metadata={"global_step": step})
        opt_tensors, opt_info = _optimizer_tensors(optimizer)
        opt_tensors["rng.torch"] = torch.get_rng_state()
        for generator_name, generator in (generators or {}).items():
            opt_tensors[f"rng.{generator_name}"] = generator.get_state()
        save_file(opt_tensors, staging / "trainer.safetensors", metadata={"global_step": step})
        info = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, **trainer, "optimizer": opt_info}
        if memory is not None:
            info["memory"] = memory.identity()
            tensors = {k: v.detach().cpu().contiguous() for k, v in memory.state_dict().items()}
            save_file(tensors, staging / "memory.safetensors", metadata={"global_step": step})
        (staging / "trainer.json").write_text(json.dumps(info, indent=2, allow_nan=False) + "\n")
        for file in staging.iterdir():
            file.chmod(0o644)
            with file.open("rb") as f:
                os.fsync(f.fileno())
        staging.chmod(0o755)
        swap_in(staging, root / name)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def swap_in(staging: Path, target: Path) -> None:
    """Replace the checkpoint directory `target` with the complete directory `staging`. Between the two renames the
    previous one is `.NAME.old`, which `checkpoint_path` and `remove_partial_writes` take for `NAME`."""
    old = target.parent / f".{target.name}.old"
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        os.rename(target, old)
    os.rename(staging, target)
    shutil.rmtree(old, ignore_errors=True)


def restore_generators(path: Path, generators: Mapping[str, torch.Generator]) -> None:
    """Give each of `generators` the state the checkpoint at `path` saved under its name (`save_checkpoint`); a
    generator the checkpoint has no state for (one written before it saved them) keeps its own."""
    try:
        saved = load_file(path / "trainer.safetensors")
        for name, generator in generators.items():
            if f"rng.{name}" in saved:
                generator.set_state(saved[f"rng.{name}"])
    except (SafetensorError, OSError, RuntimeError) as exc:
        raise ShelmError(
            f"checkpoint '{path}' has a damaged generator state ({type(exc).__name__}); retrain, or point at the run "
            "directory that wrote it"
        ) from None


def checkpoint_path(run_dir: Path, name: str) -> Path | None:
    """The directory of checkpoint NAME, also if a crash came between the two renames of a swap."""
    for candidate in (run_dir / "checkpoints" / name, run_dir / "checkpoints" / f".{name}.old"):
        if (candidate / "trainer.json").is_file():
            return candidate
    return None


def checkpoint_step(run_dir: Path, name: str) -> int:
    """The global step of checkpoint NAME, 0 when there is none yet."""
    path = checkpoint_path(run_dir, name)
    if path is None:
        return 0
    try:
        return int(json.loads((path / "trainer.json").read_text())["global_step"])
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError):
        raise ShelmError(f"checkpoint '{path}' is corrupted; retrain, or restore it from a backup") from None


def load_checkpoint(
    path: Path,
    config: TrainConfig,
    agent: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None,
    memory: FrozenMemory | None = None,
) -> dict[str, Any]:
    """Restore weights (and optimizer + torch RNG when `optimizer` is given); return the trainer state.

    With a frozen memory, its identity must equal the recorded one (the same language model weights, by hash)
    and its construction-time tensors are restored.

    Anything that is not a complete shelm checkpoint of this very agent is refused with a one-line error.
    """

    def refuse(why: str) -> ShelmError:
        return ShelmError(f"checkpoint '{path}' {why}; retrain, or point at the run directory that wrote it")

    files = ("trainer.json", "model.safetensors", "trainer.safetensors") + (("memory.safetensors",) if memory else ())
    missing_files = [f for f in files if not (path / f).is_file()]
    if missing_files:
        raise refuse(f"is incomplete (missing {', '.join(missing_files)})")
    try:
        info = json.loads((path / "trainer.json").read_text())
        model = load_file(path / "model.safetensors")
        extra = load_file(path / "trainer.safetensors")
        frozen = load_file(path / "memory.safetensors") if memory is not None else {}
    except (json.JSONDecodeError, UnicodeDecodeError, SafetensorError, OSError) as exc:
        raise refuse(f"is corrupted ({type(exc).__name__})") from None
    if not isinstance(info, dict) or info.get("format") != CHECKPOINT_FORMAT:
        raise refuse("is not a shelm checkpoint")
    if info.get("version") != CHECKPOINT_VERSION:
        raise refuse(f"has format version {info.get('version')}, this shelm reads {CHECKPOINT_VERSION}")
    for key in ("env_id", "agent"):
        if info.get(key) != getattr(config, key):
            raise refuse(f"was written for {key}={info.get(key)!r}, not {getattr(config, key)!r}")
    expected = agent.state_dict()
    missing, unexpected = sorted(set(expected) - set(model)), sorted(set(model) - set(expected))
    wrong = [k for k in expected if k in model and model[k].shape != expected[k].shape]
    if missing or unexpected or wrong:
        raise refuse(
            f"does not fit this agent (missing {missing[:3]}, unexpected {unexpected[:3]}, shapes {wrong[:3]})"
        )
    if memory is not None:
        recorded, current = info.get("memory") or {}, memory.identity()
        differ = sorted(k for k in set(recorded) | set(current) if recorded.get(k) != current.get(k))
        if differ:
            key = differ[0]
            raise refuse(
                f"was trained with {key}={recorded.get(key)!r} but the memory now has {key}={current.get(key)!r} "
                "(the frozen model or its settings changed)"
            )
        try:
            memory.load_state_dict(frozen)
        except (KeyError, ValueError) as exc:
            raise refuse(f"has a damaged memory.safetensors ({exc})") from None
    agent.load_state_dict(model)
    if optimizer is not None:
        try:
            optimizer.load_state_dict(_optimizer_state(extra, info["optimizer"]))
            torch.set_rng_state(extra["rng.torch"])
        except (KeyError, ValueError, RuntimeError) as exc:
            raise refuse(f"has a damaged optimizer state ({type(exc).__name__})") from None
    return info
