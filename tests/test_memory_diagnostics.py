"""The Memory-task diagnostics in experiments/: cue_sightings.py, memory_probe.py and memory_reach.py play the same
episodes and agree on where the cue was seen and what the memory said there; memory_reach.py's recording replays
through a rebuilt memory to the very outputs the policy saw, and a shallower LM gives other outputs from it."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import train_run
from minigrid.core.constants import OBJECT_TO_IDX

from shelm.agents import get_agent_spec
from shelm.envs import probe_env
from shelm.runs import load_run_config

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
import cue_sightings
import memory_probe
import memory_reach


@pytest.fixture(scope="module")
def helm_run(tmp_path_factory: pytest.TempPathFactory, tiny_llama_with_tokenizer_dir: Path) -> Path:
    run_dir = tmp_path_factory.mktemp("runs") / "helm"
    lm = f"lm={tiny_llama_with_tokenizer_dir}"
    return train_run(run_dir, "MiniGrid-MemoryS7-v0", "helm", 128, "--set", lm, "--set", "mem_len=8")


def test_replay_reproduces_the_policys_memory_and_depth_changes_it(helm_run: Path) -> None:
    recording, kept = memory_reach.play(helm_run, episodes=3, max_played=200)
    assert len(kept) == 3
    calls = len(recording.calls)
    assert len(recording.outputs) == calls
    for episode in kept:
        assert 0 <= episode.sighting <= episode.last < calls
        if episode.last + 1 < calls:  # the next call starts a new episode, so the memory is emptied there
            assert bool(recording.calls[episode.last + 1][1][0])
    config = load_run_config(helm_run)
    spec = get_agent_spec(config.agent)
    probe = probe_env(config)
    own = torch.stack(recording.outputs)

    def replayed(layers: int) -> torch.Tensor:
        variant = dataclasses.replace(config, lm_layers=layers, lm_compile="false")
        memory = spec.build_memory(variant, probe, recording.device)
        memory.load_state_dict(recording.memory.state_dict())
        return memory_reach.replay(recording, memory)

    assert torch.equal(replayed(config.lm_layers), own)
    assert (replayed(1) - own).abs().max() > 1e-3


def test_the_three_diagnostics_see_the_same_episodes_and_sightings(helm_run: Path) -> None:
    episodes = 12
    rows = cue_sightings.sightings(helm_run, episodes, greedy=False)
    probed = memory_probe.last_memories(helm_run, episodes)
    assert len(rows) == len(probed.cues) == episodes
    assert [row["saw_cue"] for row in rows] == probed.seen.tolist()
    assert [row["success"] for row in rows] == probed.successes.tolist()
    assert 0 < probed.seen.sum() < episodes  # both kinds of episode, so the check below compares something
    assert (probed.steps_since_sighting[~probed.seen] == -1).all()
    assert not probed.at_sighting[~probed.seen].any()
    # memory_reach keeps the episodes that saw the cue, with the indices of its recorded memory calls: the
    # outputs at those indices are the ones memory_probe kept, and so are the step counts between them.
    recording, kept = memory_reach.play(helm_run, int(probed.seen.sum()), max_played=episodes)
    assert len(kept) == probed.seen.sum()
    outputs = torch.stack(recording.outputs).numpy()
    assert np.array_equal(outputs[[e.last for e in kept]], probed.memories[probed.seen])
    assert np.array_equal(outputs[[e.sighting for e in kept]], probed.at_sighting[probed.seen])
    assert [e.last - e.sighting for e in kept] == probed.steps_since_sighting[probed.seen].tolist()
    assert [e.is_key for e in kept] == (probed.cues[probed.seen] == OBJECT_TO_IDX["key"]).tolist()


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (["--set", "lm_layers=8"], "--set lm_layers"),
        (["--set", "beta"], "--set 'beta'"),
        (["--set", "nosuchkey=1"], "'nosuchkey'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2_before_anything_is_played(
    helm_run: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    named: str,
) -> None:
    out = tmp_path / "reach.json"
    monkeypatch.setattr(sys, "argv", ["memory_reach.py", str(helm_run), *extra, "--out", str(out)])
    monkeypatch.setattr(memory_reach, "play", lambda *args: pytest.fail("played despite bad input"))
    with pytest.raises(SystemExit) as exit_info:
        memory_reach.main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("memory_reach.py: ") and named in err
    assert not out.exists()
