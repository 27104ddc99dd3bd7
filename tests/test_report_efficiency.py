"""`shelm report`'s sample-efficiency view and its `reaches_sooner` claims, on runs whose success curves are steps
with known rises: the steps to each level (after the trailing-window smoothing), the seeds that reach it, "never",
the IQM and its CI only where 3 seeds or more reach it, and the claim's verdicts and refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from shelm.agents import get_agent_spec, resolve_config
from shelm.cli import main
from shelm.experiments.report import markers
from shelm.experiments.report.efficiency import steps_to_level
from shelm.experiments.report.statistics import fmt_steps
from shelm.experiments.report.trials import TrialScores
from shelm.runs import append_metrics, save_run_config

ENV = "MiniGrid-MemoryS11-v0"
BUDGET = 1_000_000
ROW = 10_000  # one metrics row every ROW steps: the trailing window (2% of 1M, 20k steps) holds the row and the last
PEER = "sb3_contrib.RecurrentPPO"
SHELM = {"retriever": "symbolic", "lm_layers": 2}
SHELM_LABEL = "shelm (symbolic oracle, lm_layers=2)"


def _curve(rises_at: int | None, plateau: float, spikes: tuple[int, ...], budget: int) -> list[tuple[int, float]]:
    """success_rate 0 until `rises_at`, `plateau` from there on (0 throughout when None), and 1.0 at each of
    `spikes` alone: one row per ROW steps up to `budget`."""
    rows = []
    for step in range(ROW, budget + 1, ROW):
        risen = rises_at is not None and step >= rises_at
        rows.append((step, plateau if risen else 1.0 if step in spikes else 0.0))
    return rows


def _run(
    root: Path,
    agent: str,
    seed: int,
    rises_at: int | None,
    plateau: float = 1.0,
    spikes: tuple[int, ...] = (),
    done: int = BUDGET,
    budget: int = BUDGET,
    **settings: object,
) -> None:
    """A run directory of `agent` whose success curve is `_curve`; `done` < `budget` leaves it unfinished."""
    overrides = {"seed": seed, "total_steps": budget, "n_envs": 1, "n_steps": 10, **settings}
    config, applied = resolve_config(ENV, agent, overrides)
    run_dir = root / f"{ENV}__{agent}__s{seed}"
    run_dir.mkdir(parents=True)
    save_run_config(run_dir, config, applied)
    for step, value in _curve(rises_at, plateau, spikes, budget):
        if step <= done:
            append_metrics(run_dir, {"global_step": step, "success_rate": value})


def _peer_run(root: Path, seed: int, rises_at: int | None) -> None:
    """A peer library's trial as experiments/lstm_parity.py writes it."""
    run_dir = root / f"{ENV}__sb3-rppo__s{seed}"
    run_dir.mkdir(parents=True)
    config = {"peer": f"{PEER} 2.9.2", "env_id": ENV, "seed": seed, "total_steps": BUDGET}
    (run_dir / "config.json").write_text(json.dumps(config))
    for step, value in _curve(rises_at, 1.0, (), BUDGET):
        append_metrics(run_dir, {"global_step": step, "success_rate": value})


def _view_row(page: str, agent: str) -> str:
    """The sample-efficiency table's row of `agent` (the final-score table before it has a row of it too)."""
    view = page.split("Sample efficiency of the agents")[1]
    (row,) = [line for line in view.splitlines() if line.startswith(f"| {ENV} | {agent} |")]
    return row


def _trial(steps: list[int], values: list[float], total_steps: int) -> TrialScores:
    """A trial of the report with the given success curve."""
    return TrialScores(
        name="t", env_id=ENV, agent="lstm", settings={}, label="lstm", seed=1, memory=False, remembers=True,
        peer=False, steps=np.array(steps), values=np.array(values, dtype=np.float64), total_steps=total_steps,
    )  # fmt: skip


def test_a_trial_compared_within_a_smaller_budget_is_smoothed_over_that_budgets_window():
    """Rows every 10k steps, success 1.0 from 300k on. Over its own 2M budget the window is 40k, so the mean of the
    rows in (s - 40k, s] first reaches 0.9 at 330k; compared within 500k, its window is 10k (one row): 300k, as a
    500k trial with the same curve would get."""
    steps = list(range(10_000, 2_000_001, 10_000))
    trial = _trial(steps, [float(s >= 300_000) for s in steps], 2_000_000)
    assert steps_to_level(trial, 0.9) == 330_000
    assert steps_to_level(trial, 0.9, budget=500_000) == 300_000
    late = _trial(steps, [float(s >= 600_000) for s in steps], 2_000_000)
    assert steps_to_level(late, 0.9) == 630_000 and steps_to_level(late, 0.9, budget=500_000) is None


def test_a_trials_last_row_past_its_budget_counts_when_compared_at_that_budget():
    """The last row overshoots the budget by part of an iteration (1,000,960 for 1M); a curve that reaches the
    level only there reaches it, whether or not the comparison names the trial's own budget."""
    steps = [*range(10_000, 1_000_000, 10_000), 1_000_960]
    trial = _trial(steps, [0.0] * (len(steps) - 2) + [1.0, 1.0], 1_000_000)
    assert steps_to_level(trial, 0.9) == 1_000_960
    assert steps_to_level(trial, 0.9, budget=1_000_000) == 1_000_960
    assert steps_to_level(trial, 0.9, budget=990_000) is None


def test_steps_print_to_about_three_significant_digits():
    assert [fmt_steps(s) for s in (512, 4096, 46_080, 331_776, 999_500, 1_234_567, 2_000_000)] == [
        "512",
        "4.1k",
        "46k",
        "332k",
        "1M",
        "1.23M",
        "2M",
    ]


def test_agents_with_a_memory_are_those_that_remember_frozen_or_trained():
    """The view asks each agent's spec whether it has a memory: the frozen-LM family, the oracle control and the
    trained memories do; the Markovian cnn does not."""
    remembers = {name: get_agent_spec(name).has_memory for name in ("cnn", "lstm", "trxl", "helm", "shelm", "oracle")}
    assert remembers == {"cnn": False, "lstm": True, "trxl": True, "helm": True, "shelm": True, "oracle": True}
    assert get_agent_spec("lstm").has_trained_memory and not get_agent_spec("shelm").has_trained_memory


@pytest.fixture(scope="module")
def efficiency(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str]:
    """One report of a folder of known curves and a folder of a peer's trials: (its JSON, its page)."""
    root = tmp_path_factory.mktemp("efficiency")
    runs, peers = root / "curves", root / "peers"
    for seed, rise in enumerate([300_000, 400_000, 500_000], start=1):
        _run(runs, "lstm", seed, rise)  # reaches every level: 0.5 at the rise, 0.8 and 0.9 one row later
        _run(runs, "cnn", seed, rise)  # no memory: not in the view
        _peer_run(peers, seed, rise + 100_000)
    _run(runs, "lstm", 4, 100_000, done=500_000)  # unfinished: left out
    _run(runs, "shelm", 1, 200_000, **SHELM)
    _run(runs, "shelm", 2, 250_000, plateau=0.85, **SHELM)  # reaches 0.8 (and 0.5) one row after its rise; never 0.9
    _run(runs, "shelm", 3, 600_000, plateau=0.6, **SHELM)  # its first row at 0.6 averages 0.3: 0.5 one row later
    _run(runs, "oracle", 1, 50_000)
    # A lucky first row (before a whole window is trained, so not read alone) and a one-row spike: each averages
    # 0.5 with the 0 beside it in its window, so the trial reaches 0.5 at 20k and 0.8 only once it really rises.
    _run(runs, "trxl", 1, 700_000, spikes=(10_000, 100_000))
    out = root / "results.md"
    argv = ["report", str(runs), str(peers), "--out", str(out), "--reps", "200"]
    assert main(argv) == 0
    return json.loads((root / "curves-report.json").read_text()), out.read_text()


def test_the_view_counts_each_seeds_steps_to_each_level(efficiency):
    numbers, _ = efficiency
    view = numbers["sample_efficiency"]
    assert view["levels"] == [0.5, 0.8, 0.9] and view["window"] == 0.02
    rows = {row["agent"]: row for row in view["rows"]}
    assert sorted(rows) == ["lstm", "oracle [control]", PEER, SHELM_LABEL, "trxl"]  # no cnn
    assert rows["lstm"]["seeds"] == [1, 2, 3] and not rows["lstm"]["peer"] and rows[PEER]["peer"]
    steps = {agent: [level["steps"] for level in row["levels"]] for agent, row in rows.items()}
    assert steps["lstm"] == [[300_000, 400_000, 500_000], [310_000, 410_000, 510_000], [310_000, 410_000, 510_000]]
    assert steps[SHELM_LABEL] == [[200_000, 260_000, 610_000], [210_000, 260_000, None], [210_000, None, None]]
    assert steps["trxl"] == [[20_000], [710_000], [710_000]]
    assert steps["oracle [control]"] == [[50_000], [60_000], [60_000]]
    assert steps[PEER] == [[400_000, 500_000, 600_000], [410_000, 510_000, 610_000], [410_000, 510_000, 610_000]]
    reached = {agent: [level["reached"] for level in row["levels"]] for agent, row in rows.items()}
    assert reached[SHELM_LABEL] == [3, 2, 1] and reached["lstm"] == reached[PEER] == [3, 3, 3]
    assert reached["trxl"] == reached["oracle [control]"] == [1, 1, 1]


def test_the_iqm_and_its_ci_come_only_where_three_seeds_reach_the_level(efficiency):
    numbers, _ = efficiency
    rows = {row["agent"]: row for row in numbers["sample_efficiency"]["rows"]}
    lstm_08 = rows["lstm"]["levels"][1]
    assert lstm_08["iqm"] == pytest.approx(410_000)  # the IQM of 3 seeds is their mean
    assert 310_000 <= lstm_08["ci"][0] <= 410_000 <= lstm_08["ci"][1] <= 510_000
    shelm_05, shelm_08, shelm_09 = rows[SHELM_LABEL]["levels"]
    assert shelm_05["iqm"] == pytest.approx((200_000 + 260_000 + 610_000) / 3) and shelm_05["ci"] is not None
    assert shelm_08["iqm"] is None and shelm_08["ci"] is None and shelm_09["iqm"] is None
    assert all(level["iqm"] is None and level["ci"] is None for level in rows["trxl"]["levels"])


def test_the_page_shows_the_view_after_the_final_scores_with_never_visible(efficiency):
    numbers, page = efficiency
    region = page.split(markers("curves")[0])[1].split(markers("curves")[1])[0]
    assert region.index("| env | agent | seeds | IQM [95% CI]") < region.index("Sample efficiency of the agents")
    assert "| env | agent | seeds | reaches 0.5 | reaches 0.8 | reaches 0.9 |" in region
    rows = {row["agent"]: row for row in numbers["sample_efficiency"]["rows"]}
    low, high = (fmt_steps(v) for v in rows["lstm"]["levels"][1]["ci"])
    lstm = _view_row(page, "lstm").split(" | ")
    assert lstm[2:5] == [
        "3",
        f"3 of 3 seeds: IQM 400k [{fmt_steps(rows['lstm']['levels'][0]['ci'][0])}, "
        f"{fmt_steps(rows['lstm']['levels'][0]['ci'][1])}]",
        f"3 of 3 seeds: IQM 410k [{low}, {high}]",
    ]
    assert _view_row(page, SHELM_LABEL).endswith(
        "| 2 of 3 seeds: 210k, 260k, never | 1 of 3 seeds: 210k, never, never |"
    )
    trxl = f"| {ENV} | trxl | 1 | 1 of 1 seed: 20k | 1 of 1 seed: 710k | 1 of 1 seed: 710k |"
    assert _view_row(page, "trxl") == trxl
    assert _view_row(page, f"{PEER} [peer]").startswith(f"| {ENV} | {PEER} [peer] | 3 | 3 of 3 seeds: IQM 500k [")
    assert f"| {ENV} | cnn | 3 | 1.000 [" in page  # in the final scores, not in the view
    assert not [line for line in region.split("Sample efficiency")[1].splitlines() if f"| {ENV} | cnn |" in line]


def _sooner(text: str, agent: str, others: str, level: float = 0.9, extra: str = "") -> str:
    return (
        f'[[claim]]\ntext = "{text}"\nsource = "S"\nkind = "reaches_sooner"\nenv = "{ENV}"\n{agent}\n'
        f"others = [{others}]\nlevel = {level}\n{extra}"
    )


LSTM = 'agent = "lstm"'
SHELM_OTHER = '{ agent = "shelm", settings = { retriever = "symbolic", lm_layers = 2 } }'


def test_a_reaches_sooner_claim_holds_fails_or_cannot_be_decided(tmp_path):
    """lstm reaches 0.9 at 110k/130k/150k: before every shelm seed (p = 1/20: holds); interleaved with helm's (does
    not hold); against the cnn, whose seeds never reach it and count as +infinity (holds); against the oracle's 2
    seeds (cannot be decided); and trxl, which reaches it in only 2 of 3 seeds, cannot hold."""
    root = tmp_path / "sooner"
    for seed, (lstm, shelm, helm) in enumerate(
        zip([100_000, 120_000, 140_000], [300_000, 350_000, 400_000], [90_000, 130_000, 160_000], strict=True), start=1
    ):
        _run(root, "lstm", seed, lstm)
        _run(root, "shelm", seed, shelm, **SHELM)
        _run(root, "helm", seed, helm, lm_layers=2)
        _run(root, "cnn", seed, None, plateau=0.0)
    for seed in (1, 2):
        _run(root, "oracle", seed, 500_000)
    for seed, rise in enumerate([20_000, 30_000, None], start=1):
        _run(root, "trxl", seed, rise)
    claims = tmp_path / "claims.toml"
    claims.write_text(
        _sooner("lstm before shelm", LSTM, SHELM_OTHER)
        + _sooner("lstm before helm", LSTM, '{ agent = "helm", settings = { lm_layers = 2 } }')
        + _sooner("lstm before the cnn", LSTM, '{ agent = "cnn" }')
        + _sooner("lstm before shelm and the oracle", LSTM, f'{SHELM_OTHER}, {{ agent = "oracle" }}')
        + _sooner("trxl before shelm", 'agent = "trxl"', SHELM_OTHER)
    )
    out = tmp_path / "results.md"
    assert main(["report", str(root), "--out", str(out), "--reps", "100", "--claims", str(claims)]) == 0
    verdicts = {v["text"]: v for v in json.loads((tmp_path / "sooner-report.json").read_text())["claims"]}
    assert {text: v["verdict"] for text, v in verdicts.items()} == {
        "lstm before shelm": "holds",
        "lstm before helm": "does not hold",
        "lstm before the cnn": "holds",
        "lstm before shelm and the oracle": "too few seeds to decide",
        "trxl before shelm": "does not hold",
    }
    held = verdicts["lstm before shelm"]
    assert held["level"] == 0.9 and held["budget"] == BUDGET and held["final_iqm"] == pytest.approx(1.0)
    assert held["reach"]["steps"] == [110_000, 130_000, 150_000] and held["reach"]["iqm"] == pytest.approx(130_000)
    (shelm,) = held["against"]
    assert shelm["label"] == SHELM_LABEL and shelm["reach"]["steps"] == [310_000, 360_000, 410_000]
    assert shelm["sooner"]["p_value"] == pytest.approx(1 / 20) and shelm["sooner"]["higher"]
    mine, theirs = held["reach"]["ci"], shelm["reach"]["ci"]
    assert held["numbers"] == (
        f"0.9 within 1M steps reached by 3 of 3 seeds: IQM 130k [{fmt_steps(mine[0])}, {fmt_steps(mine[1])}], final "
        f"IQM 1.000; vs {SHELM_LABEL}: 3 of 3 seeds: IQM 360k [{fmt_steps(theirs[0])}, {fmt_steps(theirs[1])}], final "
        "IQM 1.000, sooner: p = 0.050"
    )
    (helm,) = verdicts["lstm before helm"]["against"]
    assert helm["reach"]["steps"] == [100_000, 140_000, 170_000] and helm["sooner"]["p_value"] > 0.05
    (cnn,) = verdicts["lstm before the cnn"]["against"]
    assert cnn["reach"]["steps"] == [None, None, None] and cnn["sooner"]["p_value"] == pytest.approx(1 / 20)
    assert (
        "vs cnn: 0 of 3 seeds: never, never, never, final IQM 0.000, sooner: p = 0.050"
        in (verdicts["lstm before the cnn"]["numbers"])
    )
    undecided = verdicts["lstm before shelm and the oracle"]
    assert [a["reach"]["seeds"] for a in undecided["against"]] == [3, 2]
    assert undecided["numbers"].endswith(
        "vs oracle [control]: 2 of 2 seeds: 510k, 510k, final IQM 1.000, sooner: p = 0.100; decided on at least 3 "
        "seeds on each side"
    )
    trxl = verdicts["trxl before shelm"]  # sooner in the seeds that reach it, but only 2 of 3 do
    assert trxl["reach"]["steps"] == [30_000, 40_000, None] and trxl["reach"]["reached"] == 2
    row = [line for line in out.read_text().splitlines() if line.startswith("| trxl before shelm |")]
    assert row == [
        "| trxl before shelm | S | does not hold | 0.9 within 1M steps reached by 2 of 3 seeds: 30k, 40k, never, "
        f"final IQM 0.667; vs {SHELM_LABEL}: 3 of 3 seeds: IQM 360k [{fmt_steps(theirs[0])}, {fmt_steps(theirs[1])}], "
        f"final IQM 1.000, sooner: p = {trxl['against'][0]['sooner']['p_value']:.3f} |"
    ]


def test_a_reaches_sooner_claim_counts_steps_within_the_smallest_budget_compared(tmp_path):
    """lstm trained 1M steps reaches 0.9 at 610-630k; shelm trained 500k never does. Within the common 500k neither
    reaches it: the two sides tie, and the claim does not hold."""
    root = tmp_path / "budgets"
    for seed in (1, 2, 3):
        _run(root, "lstm", seed, 590_000 + 10_000 * seed)
        _run(root, "shelm", seed, None, budget=500_000, **SHELM)
    claims = tmp_path / "claims.toml"
    claims.write_text(_sooner("lstm before shelm", LSTM, SHELM_OTHER))
    assert main(["report", str(root), "--out", str(tmp_path / "r.md"), "--reps", "100", "--claims", str(claims)]) == 0
    (verdict,) = json.loads((tmp_path / "budgets-report.json").read_text())["claims"]
    assert verdict["budget"] == 500_000 and verdict["reach"]["steps"] == [None, None, None]
    assert verdict["against"][0]["sooner"]["p_value"] == pytest.approx(1.0)
    assert verdict["verdict"] == "does not hold" and verdict["numbers"].startswith("0.9 within 500k steps reached by 0")


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (
            _sooner("T", LSTM, SHELM_OTHER).replace("level = 0.9\n", ""),
            "claim 1 ('T'): a reaches_sooner claim needs level (a number); add e.g. level = 0.9",
        ),
        (
            _sooner("T", LSTM, SHELM_OTHER).replace("level = 0.9", 'level = "0.9"'),
            "claim 1 ('T'): level = '0.9' is not a number; write e.g. level = 0.9",
        ),
        (
            _sooner("T", LSTM, SHELM_OTHER).replace(f"others = [{SHELM_OTHER}]\n", ""),
            "claim 1 ('T'): a reaches_sooner claim needs others (a non-empty list of tables",
        ),
        (
            _sooner("T", LSTM, SHELM_OTHER, extra="at_least = 0.9\n"),
            "claim 1 ('T'): unknown key 'at_least' for a reaches_sooner claim; its keys are text, source, kind, env, "
            "agent, others, level, settings, metric",
        ),
    ],
    ids=["no-level", "string-level", "no-others", "threshold-key"],
)
def test_a_bad_reaches_sooner_claim_is_refused_in_one_line_before_anything_is_written(tmp_path, capsys, bad, message):
    runs = tmp_path / "runs"
    _run(runs, "lstm", 1, 100_000)
    claims = tmp_path / "claims.toml"
    claims.write_text(bad)
    page = tmp_path / "results.md"
    argv = ["report", str(runs), "--out", str(page), "--figures", str(tmp_path / "figs"), "--claims", str(claims)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--claims {claims}: " in err and message in err
    assert not page.exists() and not (tmp_path / "figs").exists()
