"""`shelm analyze` and `shelm eval --perturb`: the numbers behind the figures, on synthetic inputs with known
answers and on tiny trained runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import train_run

from shelm.cli import main
from shelm.envs.minigrid import SYMBOLIC_VIEW
from shelm.envs.perturbations import Perturbation, Perturber
from shelm.errors import ShelmError
from shelm.inspect import ANALYSES
from shelm.inspect.analyze import SPECS
from shelm.inspect.attention import chosen_layers, per_step
from shelm.inspect.distances import pairwise_distances, rank_correlation
from shelm.memory.frozen_hopfield import FrozenHopfield
from shelm.memory.lm_backend import replay_mask
from shelm.memory.weights import load_language_model


def test_every_analysis_is_offered_on_the_command_line() -> None:
    assert tuple(SPECS) == ANALYSES


# --- distances -----------------------------------------------------------------------------------------------


def _equal_norm_observations(n: int, seed: int = 0) -> torch.Tensor:
    """n binary 8x8x1 images with exactly 16 lit pixels each: Euclidean distance is then a function of the angle."""
    generator = torch.Generator().manual_seed(seed)
    obs = torch.zeros(n, 64, dtype=torch.uint8)
    for i in range(n):
        obs[i, torch.randperm(64, generator=generator)[:16]] = 255
    return obs.reshape(n, 8, 8, 1)


def _isotropic_hopfield(width: int = 64) -> FrozenHopfield:
    """Embeddings +-e_i (isotropic, mean 0) and an orthonormal projection: as beta -> 0 the LM input becomes
    (beta / width) * P o / |P o|, so LM-input distances are proportional to observation distances."""
    hopfield = FrozenHopfield(torch.cat([torch.eye(width), -torch.eye(width)]), obs_size=64, beta=1.0, seed=0)
    q, _ = torch.linalg.qr(torch.randn(width, 64, generator=torch.Generator().manual_seed(1)))
    hopfield.load_state_dict({"projection": q})
    return hopfield


def test_small_beta_preserves_the_order_of_distances_and_large_beta_does_not() -> None:
    obs = _equal_norm_observations(40)
    pixels = pairwise_distances(obs.flatten(1).float() / 255)
    hopfield = _isotropic_hopfield()
    inputs = hopfield.inputs_at_betas(obs, (1e-3, 1e4))
    small = rank_correlation(pixels, pairwise_distances(inputs[1e-3]))
    large = rank_correlation(pixels, pairwise_distances(inputs[1e4]))
    assert small > 0.999
    assert large < 0.5  # each observation snaps to one of 128 tokens: distances collapse to a few values
    # The same limit through the run's kind of projection (random Gaussian, Johnson-Lindenstrauss): still high.
    jl = FrozenHopfield(torch.cat([torch.eye(512), -torch.eye(512)]), obs_size=64, beta=1.0, seed=0)
    assert rank_correlation(pixels, pairwise_distances(jl.inputs_at_betas(obs, [1e-3])[1e-3])) > 0.9


def test_rank_correlation_of_a_monotone_transform_is_one_and_of_its_reverse_minus_one() -> None:
    a = pairwise_distances(torch.randn(12, 5, generator=torch.Generator().manual_seed(0)))
    assert rank_correlation(a, a.sqrt() * 3) == pytest.approx(1.0)
    assert rank_correlation(a, -a) == pytest.approx(-1.0)


def test_hopfield_inputs_at_the_trained_beta_are_what_the_memory_feeds() -> None:
    embeddings = torch.randn(50, 16, generator=torch.Generator().manual_seed(0))
    hopfield = FrozenHopfield(embeddings, obs_size=64, beta=3.0, seed=2)
    obs = _equal_norm_observations(5)
    (inputs,) = hopfield.inputs_at_betas(obs, [3.0]).values()
    torch.testing.assert_close(inputs.float(), hopfield(obs), rtol=1e-5, atol=1e-6)


# --- attention -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 2])
def test_the_replay_reproduces_the_sliding_window_step_outputs(tiny_llama_dir: Path, k: int) -> None:
    """mem_len 6 positions with 9 steps: the window slides, and the replay's mask must follow it exactly."""
    lm = load_language_model(str(tiny_llama_dir)).memory(torch.device("cpu"), mem_len=6, inputs_per_step=k)
    lm.reset(1)
    inputs = torch.randn(9, k, 32, generator=torch.Generator().manual_seed(0))
    stepped = torch.cat(
        [lm.step(x[None], torch.tensor([t == 0])) for t, x in enumerate(inputs)]
    )  # [9, d], one step at a time through the KV-cache ring
    attentions, replayed, _ = lm.attention(inputs)
    torch.testing.assert_close(replayed, stepped, rtol=1e-4, atol=1e-5)
    assert len(attentions) == 3 and attentions[0].shape == (4, 9 * k, 9 * k)
    maps = per_step(attentions[2], k)
    assert maps.shape == (4, 9, 9)
    torch.testing.assert_close(maps.sum(-1), torch.ones(4, 9))
    window_steps = 6 // k
    for t in range(9):  # step t sees itself and the previous window_steps steps, nothing else
        seen = (maps[:, t] > 0).any(0).nonzero().flatten().tolist()
        assert seen == list(range(max(0, t - window_steps), t + 1))


def test_replay_mask_and_layer_choice() -> None:
    mask = replay_mask(steps=3, k=2, mem_len=2)
    expected = torch.tensor(
        [
            [1, 0, 0, 0, 0, 0],
            [1, 1, 0, 0, 0, 0],
            [1, 1, 1, 0, 0, 0],  # step 1 (positions 2, 3) sees the 2 positions before it: step 0
            [1, 1, 1, 1, 0, 0],
            [0, 0, 1, 1, 1, 0],  # step 2 no longer sees step 0
            [0, 0, 1, 1, 1, 1],
        ],
        dtype=torch.bool,
    )
    assert torch.equal(mask, expected)
    assert chosen_layers(30) == [0, 15, 29] and chosen_layers(2) == [0, 1] and chosen_layers(1) == [0]


# --- perturbations -------------------------------------------------------------------------------------------


def _frames(n: int = 64) -> tuple[np.ndarray, dict]:
    obs = np.full((n, 56, 56, 3), 128, dtype=np.uint8)
    symbolic = np.full((n, 7, 7, 3), 5, dtype=np.uint8)  # every cell: a key
    return obs, {SYMBOLIC_VIEW: symbolic}


def test_perturbation_specs_parse_and_bad_ones_are_refused() -> None:
    assert Perturbation.parse("noise=0.1, drop=0.25") == Perturbation(noise=0.1, drop=0.25)
    assert Perturbation.parse(None).is_identity and Perturbation.parse("").spec() == "none"
    assert Perturbation(occlude=0.5).spec() == "occlude=0.5"
    for bad, fragment in [("blur=1", "'blur=1'"), ("drop=1.5", "drop=1.5"), ("noise=x", "'x'"), ("noise", "'noise'")]:
        with pytest.raises(ShelmError, match=fragment):
            Perturbation.parse(bad)


def test_level_zero_changes_nothing() -> None:
    obs, infos = _frames()
    out, out_infos = Perturber(Perturbation(), seed=0)(obs, infos)
    assert np.array_equal(out, obs) and np.array_equal(out_infos[SYMBOLIC_VIEW], infos[SYMBOLIC_VIEW])


def test_noise_has_the_asked_standard_deviation_and_leaves_the_symbolic_view() -> None:
    obs, infos = _frames()
    out, out_infos = Perturber(Perturbation(noise=0.1), seed=0)(obs, infos)
    assert (out.astype(float) - obs).std() == pytest.approx(25.5, rel=0.02)
    assert np.array_equal(out_infos[SYMBOLIC_VIEW], infos[SYMBOLIC_VIEW])


def test_drops_blank_whole_frames_and_their_symbolic_view() -> None:
    obs, infos = _frames(4000)
    out, out_infos = Perturber(Perturbation(drop=0.25), seed=0)(obs, infos)
    dropped = out.reshape(len(out), -1).max(-1) == 0
    assert dropped.mean() == pytest.approx(0.25, abs=0.03)
    assert (out[~dropped] == 128).all()
    assert (out_infos[SYMBOLIC_VIEW][dropped] == 0).all() and (out_infos[SYMBOLIC_VIEW][~dropped] == 5).all()
    assert (infos[SYMBOLIC_VIEW] == 5).all()  # the env's own info is not modified in place


def test_occlusion_hides_a_square_and_the_cells_under_it() -> None:
    obs, infos = _frames(20)
    out, out_infos = Perturber(Perturbation(occlude=0.5), seed=0)(obs, infos)
    for frame, view in zip(out, out_infos[SYMBOLIC_VIEW], strict=True):
        rows, cols = np.nonzero((frame == 0).all(-1))
        assert rows.max() - rows.min() + 1 == 28 and cols.max() - cols.min() + 1 == 28 and len(rows) == 28 * 28
        hidden = (view == 0).all(-1)  # [column, row] as MiniGrid indexes its view; cells are 8 pixels
        for c in range(7):
            for r in range(7):
                centre_y, centre_x = r * 8 + 4, c * 8 + 4
                inside = rows.min() <= centre_y <= rows.max() and cols.min() <= centre_x <= cols.max()
                assert hidden[c, r] == inside


# --- on trained runs -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def helm_run(tmp_path_factory: pytest.TempPathFactory, tiny_llama_with_tokenizer_dir: Path) -> Path:
    run_dir = tmp_path_factory.mktemp("runs") / "helm"
    lm = f"lm={tiny_llama_with_tokenizer_dir}"
    return train_run(run_dir, "MiniGrid-MemoryS7-v0", "helm", 128, "--set", lm, "--set", "mem_len=8")


@pytest.fixture(scope="module")
def shelm_run(tmp_path_factory: pytest.TempPathFactory, tiny_llama_with_tokenizer_dir: Path) -> Path:
    run_dir = tmp_path_factory.mktemp("runs") / "shelm"
    lm = f"lm={tiny_llama_with_tokenizer_dir}"
    return train_run(run_dir, "MiniGrid-MemoryS7-v0", "shelm", 128, "--set", lm, "--set", "topk=2")


def _analyze(capsys: pytest.CaptureFixture, *argv: str) -> dict:
    assert main(["analyze", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_distances_on_a_helm_run(helm_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    result = _analyze(capsys, str(helm_run), "--what", "distances", "--episodes", "3", "--out", str(tmp_path))
    assert json.loads(Path(result["json"]).read_text()) == result
    assert Path(result["figures"][0]).read_bytes()[:4] == b"\x89PNG"
    assert list(result["spaces"]) == [
        "query P o / |P o|",
        "beta=1 (trained)",
        "beta=10",
        "beta=100",
        "beta=1000",
    ]
    pixels = torch.tensor(result["observation_distances"])
    n = result["observations"]
    assert pixels.shape == (n, n) and n >= 3 and torch.equal(pixels, pixels.T) and (pixels.diagonal() == 0).all()
    for space in result["spaces"].values():
        matrix = torch.tensor(space["distances"])
        assert rank_correlation(pixels, matrix) == pytest.approx(space["rank_correlation"], abs=0.02)  # 4 decimals
    # Larger beta spreads the LM inputs further apart (towards single tokens).
    spread = [result["spaces"][f"beta={b}"]["mean_distance"] for b in ("10", "100", "1000")]
    assert spread == sorted(spread)


def test_tokens_on_a_shelm_run(shelm_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    result = _analyze(capsys, str(shelm_run), "--what", "tokens", "--episodes", "2", "--out", str(tmp_path))
    assert result["words_by"] == "symbolic" and len(result["figures"]) == 2
    observations = result["observations"]
    assert len(observations) == result["distinct_observations"] and all(len(o["words"]) == 2 for o in observations)
    assert result["distinct_word_sets"] == len({tuple(w for w, _ in o["words"]) for o in observations})
    for word, members in result["groups"].items():
        expected = [f"episode {o['episode']} t={o['t']}" for o in observations if word in [w for w, _ in o["words"]]]
        assert members == expected
    assert sum(len(e) for e in result["episodes"]) == result["steps"]


def test_attention_on_a_shelm_run(shelm_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    result = _analyze(capsys, str(shelm_run), "--what", "attention", "--episodes", "2", "--out", str(tmp_path))
    # The replay is the rollout's own computation, to the rounding of the LM's dtype: float32, or bfloat16 (8
    # significant bits) where `lm_dtype=auto` chose it; the tiny LM's hidden states are of order 1.
    lm_dtype = json.loads((shelm_run / "config.json").read_text())["config"]["lm_dtype"]
    assert result["replay_max_abs_diff"] < (1e-4 if lm_dtype == "float32" else 5e-2)
    assert result["positions_per_step"] == 2 and list(result["layers"]) == ["0", "1"]
    for layer in result["layers"].values():
        maps = torch.tensor(layer["maps"])
        assert maps.shape == (4, result["steps"], result["steps"])
        rounding = 5e-5 * result["steps"]  # the JSON keeps 4 decimals per entry
        torch.testing.assert_close(maps.sum(-1), torch.ones(4, result["steps"]), atol=rounding, rtol=0)
    # MemoryS7 shows its objects in the first view.
    assert result["events"] and result["events"][0]["t"] == 0
    assert all(e["event"].startswith("first sight of ") for e in result["events"])


def test_robustness_level_zero_is_the_plain_evaluation(
    cnn_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["eval", str(cnn_run), "--episodes", "3", "--json"]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert main(["eval", str(cnn_run), "--episodes", "3", "--json", "--perturb", "noise=0"]) == 0
    assert {k: v for k, v in json.loads(capsys.readouterr().out).items() if k != "perturbation"} == {
        k: v for k, v in plain.items() if k != "perturbation"
    }
    result = _analyze(capsys, str(cnn_run), "--what", "robustness", "--episodes", "3", "--out", str(tmp_path))
    for kind, rows in result["curves"].items():
        assert rows[0]["level"] == 0 and len(rows) == 5, kind
        assert rows[0]["greedy"] == plain["greedy"] and rows[0]["sampled"] == plain["sampled"]
    assert result["curves"]["occlude"][-1]["spec"] == "occlude=0.75"


def test_robustness_compares_several_runs(cnn_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    other = shutil.copytree(cnn_run, tmp_path / "runs" / "cnn-copy")
    out = tmp_path / "out"
    assert (
        main(["analyze", str(cnn_run), str(other), "--what", "robustness", "--episodes", "1", "--out", str(out)]) == 0
    )
    assert f"comparison: {out / 'robustness-comparison.png'}" in capsys.readouterr().out
    first, second = (json.loads((out / name / "robustness.json").read_text()) for name in ("cnn", "cnn-copy"))
    assert first["curves"] == second["curves"]  # the same weights on the same seeds


@pytest.mark.parametrize(
    ("what", "fragment"),
    [("distances", "needs an agent with a language-model memory"), ("attention", "is a lstm run")],
)
def test_an_analysis_that_does_not_apply_says_so(
    lstm_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture, what: str, fragment: str
) -> None:
    assert main(["analyze", str(lstm_run), "--what", what, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_bad_analyze_and_perturb_arguments_exit_2(cnn_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cases = [
        (["analyze", str(cnn_run), str(cnn_run), "--what", "robustness"], "need --out DIR"),
        (["analyze", str(tmp_path), "--what", "robustness"], "not a shelm run directory"),
        (["analyze", str(cnn_run), "--what", "colours"], "invalid choice: 'colours'"),
        (["analyze", str(cnn_run), "--what", "robustness", "--episodes", "0"], "--episodes 0"),
        (["eval", str(cnn_run), "--perturb", "blur=2"], "perturbation 'blur=2'"),
    ]
    for argv, fragment in cases:
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse's own usage errors
            code = exc.code
        assert code == 2
        err = capsys.readouterr().err
        assert fragment in err and err.count("\n") == 1, (argv, err)
