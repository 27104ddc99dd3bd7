"""`shelm report --claims`: the papers' claims tested on runs with known scores (verdicts and numbers recomputed by
hand), the trials a claim names by agent and settings, the claims table's place in a page, bad claims files, and the
repository's own claims file."""

from __future__ import annotations

import itertools
import json
import math
import shutil
import tomllib
from pathlib import Path

import numpy as np
import pytest

from shelm.agents import AGENTS, resolve_config
from shelm.cli import main
from shelm.experiments.report import markers
from shelm.experiments.report.claims import load_claims
from shelm.runs import append_metrics, save_run_config

ENV = "MiniGrid-MemoryS11-v0"
SHELM = [0.93, 0.91, 0.95, 0.92, 0.94]  # seeds 1-5
CNN = [0.50, 0.48, 0.52, 0.49, 0.51]  # all below every shelm seed
LSTM = [0.96, 0.90, 0.97, 0.89, 0.935]  # interleaved with shelm's
SHELM_L2 = [0.80, 0.85, 0.82]  # in a second sweep folder
REPOSITORY_CLAIMS = Path(__file__).resolve().parents[1] / "docs" / "claims.toml"
SHELM_FULL = 'agent = "shelm"\nsettings = { retriever = "symbolic", lm_layers = 0 }'  # the whole LM, symbolic words

GOOD = f"""[[claim]]
text = "SHELM reaches 0.9"
source = "SHELM paper"
kind = "threshold"
env = "{ENV}"
{SHELM_FULL}
at_least = 0.9

"""  # a valid claims file of one claim, the first of CLAIMS

CLAIMS = f"""
{GOOD}[[claim]]
text = "SHELM with 2 layers reaches 0.9"
source = "SHELM paper"
kind = "threshold"
env = "{ENV}"
agent = "shelm"
settings = {{ retriever = "symbolic", lm_layers = 2 }}
at_least = 0.9

[[claim]]
text = "The CNN stays near a guess"
source = "the papers' premise"
kind = "threshold"
env = "{ENV}"
agent = "cnn"
at_most = 0.6

[[claim]]
text = "SHELM's return reaches 9.5"
source = "SHELM paper"
kind = "threshold"
env = "{ENV}"
{SHELM_FULL}
at_least = 9.5
metric = "return_mean"

[[claim]]
text = "SHELM beats the CNN"
source = "SHELM paper"
kind = "beats"
env = "{ENV}"
{SHELM_FULL}
others = [{{ agent = "cnn" }}]

[[claim]]
text = "SHELM beats the CNN and the LSTM"
source = "SHELM paper"
kind = "beats"
env = "{ENV}"
{SHELM_FULL}
others = [{{ agent = "cnn" }}, {{ agent = "lstm" }}]

[[claim]]
text = "SHELM beats HELM"
source = "SHELM paper"
kind = "beats"
env = "{ENV}"
{SHELM_FULL}
others = [{{ agent = "helm", settings = {{ lm_layers = 2 }} }}]

[[claim]]
text = "HELMv2 reaches 0.9"
source = "HELMv2 paper"
kind = "threshold"
env = "{ENV}"
agent = "helmv2"
settings = {{ image_encoder = "imagenet", lm_layers = 2 }}
at_least = 0.9

[[claim]]
text = "SHELM's return beats the CNN's"
source = "HELM paper"
kind = "beats"
env = "{ENV}"
{SHELM_FULL}
others = [{{ agent = "cnn" }}]
metric = "return_mean"

[[claim]]
text = "HELMv2 solves it with CLIP"
source = "HELMv2 paper"
kind = "untestable"
reason = "no CLIP weights here | offline"
"""


def _run(root: Path, agent: str, seed: int, final: float, done: int = 1000, **settings: int) -> None:
    """A run directory of 1000 steps whose success_rate is 0 until its last row and `final` there (its return
    10 x that); `done` < 1000 leaves it unfinished."""
    overrides = {"seed": seed, "total_steps": 1000, "n_envs": 1, "n_steps": 10, **settings}
    config, applied = resolve_config(ENV, agent, overrides)
    run_dir = root / f"{ENV}__{agent}__s{seed}"
    run_dir.mkdir(parents=True)
    save_run_config(run_dir, config, applied)
    for step in range(100, done + 1, 100):
        value = final if step == 1000 else 0.0
        append_metrics(run_dir, {"global_step": step, "success_rate": value, "return_mean": 10 * value})


def _iqm(values: list[float]) -> float:
    ordered = sorted(values)
    cut = int(0.25 * len(ordered))
    return float(np.mean(ordered[cut : len(ordered) - cut]))


def _rank_sum_p(x: list[float], y: list[float]) -> float:
    """Exact one-sided p of the rank-sum statistic (no ties): the share of rank sets at least as high as x's."""
    pooled = sorted(x + y)
    observed = sum(pooled.index(v) + 1 for v in x)
    sums = [sum(c) for c in itertools.combinations(range(1, len(pooled) + 1), len(x))]
    return sum(s >= observed for s in sums) / len(sums)


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("claims")
    memory, cut = root / "memory", root / "memory-L2"
    for seed, (shelm, cnn, lstm) in enumerate(zip(SHELM, CNN, LSTM, strict=True), start=1):
        _run(memory, "shelm", seed, shelm)
        _run(memory, "cnn", seed, cnn)
        _run(memory, "lstm", seed, lstm)
    for seed in (1, 2):
        _run(memory, "helm", seed, 0.99, done=500, lm_layers=2)  # unfinished: HELM is not measured yet
    for seed, value in enumerate(SHELM_L2, start=1):
        _run(cut, "shelm", seed, value, lm_layers=2)
    return memory, cut


@pytest.fixture(scope="module")
def reported(sweeps: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str]:
    """One report of both folders with the claims above: (the claims' verdicts by text, the page)."""
    root = tmp_path_factory.mktemp("report")
    (root / "claims.toml").write_text(CLAIMS)
    out = root / "results.md"
    argv = ["report", *map(str, sweeps), "--out", str(out), "--reps", "300", "--claims", str(root / "claims.toml")]
    assert main(argv) == 0
    numbers = json.loads((root / "memory-report.json").read_text())
    assert numbers["claims_file"] == str(root / "claims.toml")
    assert [v["claim"] for v in numbers["claims"]] == list(range(1, 11))
    return {v["text"]: v for v in numbers["claims"]}, out.read_text()


def _row(page: str, text: str) -> str:
    (row,) = [line for line in page.splitlines() if line.startswith(f"| {text} |")]
    return row


def test_a_threshold_holds_when_the_iqm_of_the_finished_trials_meets_it(reported):
    verdicts, page = reported
    shelm = verdicts["SHELM reaches 0.9"]
    assert shelm["verdict"] == "holds" and shelm["seeds"] == 5 and shelm["at_least"] == 0.9
    assert shelm["iqm"] == pytest.approx(_iqm(SHELM)) and _iqm(SHELM) == pytest.approx(0.93)
    assert min(SHELM) <= shelm["ci"][0] <= 0.93 <= shelm["ci"][1] <= max(SHELM)
    ci = f"[{shelm['ci'][0]:.3f}, {shelm['ci'][1]:.3f}]"
    assert _row(page, "SHELM reaches 0.9") == (
        f"| SHELM reaches 0.9 | SHELM paper | holds | IQM 0.930 {ci}, 5 seeds; needs at least 0.9 |"
    )
    # The 2-layer variant lives in the second folder: the claims see every folder of the command.
    cut = verdicts["SHELM with 2 layers reaches 0.9"]
    assert cut["verdict"] == "does not hold" and cut["iqm"] == pytest.approx(_iqm(SHELM_L2))
    assert _iqm(SHELM_L2) == pytest.approx(0.8233, abs=1e-4)
    assert "| does not hold | IQM 0.823 [" in _row(page, "SHELM with 2 layers reaches 0.9")
    cnn = verdicts["The CNN stays near a guess"]
    assert cnn["verdict"] == "holds" and cnn["iqm"] == pytest.approx(0.5) and cnn["at_most"] == 0.6
    assert "| holds | IQM 0.500 [" in _row(page, "The CNN stays near a guess")
    assert _row(page, "The CNN stays near a guess").endswith("5 seeds; needs at most 0.6 |")
    returns = verdicts["SHELM's return reaches 9.5"]  # a claim on another metric than the report's
    assert returns["metric"] == "return_mean" and returns["iqm"] == pytest.approx(9.3)
    assert returns["verdict"] == "does not hold"
    assert "| does not hold | `return_mean` IQM 9.300 [" in _row(page, "SHELM's return reaches 9.5")


def test_the_report_labels_a_symbolic_shelm_trial_as_an_oracle(reported):
    """SHELM's symbolic words are read from the environment's state: every table row of it says 'symbolic oracle'."""
    _, page = reported
    rows = [line for line in page.splitlines() if line.startswith(f"| {ENV} | shelm")]
    assert {row.split(" | ")[1] for row in rows} == {"shelm (symbolic oracle)", "shelm (symbolic oracle, lm_layers=2)"}
    assert f"| {ENV} | shelm (symbolic oracle) | 5 | 0.930 [" in page


def test_beats_holds_when_the_rank_sum_test_says_higher_against_each_other_agent(reported):
    verdicts, page = reported
    (cnn,) = verdicts["SHELM beats the CNN"]["against"]
    assert verdicts["SHELM beats the CNN"]["verdict"] == "holds"
    assert cnn["p_value"] == pytest.approx(_rank_sum_p(SHELM, CNN)) and _rank_sum_p(SHELM, CNN) == 1 / math.comb(10, 5)
    assert cnn["probability_of_improvement"] == 1.0 and cnn["higher"]
    assert _row(page, "SHELM beats the CNN").endswith(
        "| holds | vs cnn: P(improvement) 1.000 [1.000, 1.000], p = 0.004 (5 vs 5 seeds) |"
    )
    returns = verdicts["SHELM's return beats the CNN's"]  # a comparison on another metric than the report's
    (cnn_return,) = returns["against"]
    assert returns["metric"] == "return_mean" and returns["verdict"] == "holds"
    assert cnn_return["probability_of_improvement"] == 1.0 and cnn_return["p_value"] == pytest.approx(cnn["p_value"])
    assert _row(page, "SHELM's return beats the CNN's").endswith(
        "| holds | vs cnn: `return_mean` P(improvement) 1.000 [1.000, 1.000], p = 0.004 (5 vs 5 seeds) |"
    )
    both = verdicts["SHELM beats the CNN and the LSTM"]
    assert both["verdict"] == "does not hold"  # beats the CNN, not the LSTM it interleaves with
    assert [a["agent"] for a in both["against"]] == ["cnn", "lstm"]
    lstm = both["against"][1]
    wins = sum(s > x for s in SHELM for x in LSTM) / 25
    assert wins == 0.48 and lstm["probability_of_improvement"] == pytest.approx(wins)
    assert lstm["p_value"] == pytest.approx(_rank_sum_p(SHELM, LSTM)) and lstm["p_value"] > 0.05
    assert not lstm["higher"]
    row = _row(page, "SHELM beats the CNN and the LSTM")
    assert "| does not hold | vs cnn: P(improvement) 1.000" in row
    assert "; vs lstm: P(improvement) 0.480 [" in row and f"p = {lstm['p_value']:.3f} (5 vs 5 seeds) |" in row


def _beats(others: list[str]) -> str:
    """A claim that SHELM (the whole LM, symbolic words) beats each of the agents `others` names."""
    tables = ", ".join(f'{{ agent = "{agent}" }}' for agent in others)
    return f"""[[claim]]
text = "SHELM beats {" and ".join(others)}"
source = "SHELM paper"
kind = "beats"
env = "{ENV}"
{SHELM_FULL}
others = [{tables}]
"""


def test_three_seeds_against_three_can_decide_a_beats_claim_and_two_cannot(tmp_path):
    """The exact one-sided rank-sum p of 3 seeds all above 3 others is 1/20, at alpha 0.05 exactly: it holds. 3
    against 2 cannot go below 1/10, so a comparison lost there leaves the claim undecided, not refuted, unless a
    comparison with enough seeds is lost too."""
    root = tmp_path / "small"
    scores = zip([0.9, 0.95, 0.92], [0.5, 0.52, 0.48], [0.96, 0.91, 0.93], strict=True)  # shelm, cnn, lstm
    for seed, (shelm, cnn, lstm) in enumerate(scores, start=1):
        _run(root, "shelm", seed, shelm)
        _run(root, "cnn", seed, cnn)
        _run(root, "lstm", seed, lstm)
    for seed, value in ((1, 0.5), (2, 0.4)):
        _run(root, "oracle", seed, value)  # only 2 seeds, both below every shelm seed
    claims = tmp_path / "claims.toml"
    oracle = "oracle [control]"  # the oracle control's label on the page
    claims.write_text("\n".join(_beats(o) for o in (["cnn"], ["oracle"], ["cnn", "lstm"], ["lstm", "oracle"])))
    out = tmp_path / "results.md"
    argv = ["report", str(root), "--out", str(out), "--reps", "100", "--claims", str(claims), "--baseline", oracle]
    assert main(argv) == 0
    numbers = json.loads((tmp_path / "small-report.json").read_text())
    verdicts = {v["text"]: v for v in numbers["claims"]}
    # The comparison table makes the same decision as the claims, in its own words.
    table = {c["baseline"]: c for c in numbers["comparisons"] if c["memory"] == "shelm (symbolic oracle)"}
    assert {b: (c["higher"], c["decidable"]) for b, c in table.items()} == {
        "cnn": (True, True),
        "lstm": (False, True),
        oracle: (False, False),
    }
    rows = {line.split(" | ")[2]: line for line in out.read_text().splitlines() if line.startswith(f"| {ENV} | shelm")}
    assert rows["cnn"].endswith("| 0.050 | yes |") and rows["lstm"].endswith(" | no |")
    assert rows[oracle].endswith("| 0.100 | too few seeds (3 vs 2 scores, smallest p 0.100) |")

    (cnn,) = verdicts["SHELM beats cnn"]["against"]
    assert cnn["p_value"] == pytest.approx(1 / 20) and cnn["smallest_p"] == pytest.approx(1 / 20)
    assert cnn["higher"] and verdicts["SHELM beats cnn"]["verdict"] == "holds"
    (two_seeds,) = verdicts["SHELM beats oracle"]["against"]
    assert two_seeds["p_value"] == pytest.approx(1 / 10) == two_seeds["smallest_p"] and not two_seeds["higher"]
    assert two_seeds["agent"] == "oracle" and two_seeds["label"] == oracle
    assert verdicts["SHELM beats oracle"]["verdict"] == "too few seeds to decide"
    row = _row(out.read_text(), "SHELM beats oracle")
    assert f"| vs {oracle}: P(improvement) 1.000 [" in row  # the numbers name the page's row
    assert row.endswith("p = 0.100 (3 vs 2 seeds, whose smallest possible p is 0.100) |")
    assert "| too few seeds to decide |" in row
    # The lstm interleaves with shelm over 3 seeds each, which could have decided: lost, so it does not hold.
    assert verdicts["SHELM beats cnn and lstm"]["verdict"] == "does not hold"
    assert verdicts["SHELM beats lstm and oracle"]["verdict"] == "does not hold"


def test_a_threshold_on_fewer_than_three_seeds_cannot_be_decided(tmp_path):
    """Two seeds above the threshold and one below it: on the first two seeds alone the claim is undecided, not
    held, with its numbers and the seeds it needs shown; the third seed decides it."""
    root = tmp_path / "few"
    claims = tmp_path / "claims.toml"
    claims.write_text(
        f'[[claim]]\ntext = "SHELM reaches 0.9"\nsource = "S"\nkind = "threshold"\nenv = "{ENV}"\n{SHELM_FULL}\n'
        "at_least = 0.9\n"
    )
    verdicts = []
    for seed, final in enumerate([0.95, 0.93, 0.6], start=1):
        _run(root, "shelm", seed, final)
        out = tmp_path / f"results-{seed}.md"
        argv = ["report", str(root), "--out", str(out), "--reps", "100", "--claims", str(claims)]
        assert main(argv) == 0
        (verdict,) = json.loads((tmp_path / "few-report.json").read_text())["claims"]
        verdicts.append(verdict)
        assert verdict["seeds"] == seed and verdict["iqm"] == pytest.approx(_iqm([0.95, 0.93, 0.6][:seed]))
    assert [v["verdict"] for v in verdicts] == ["too few seeds to decide", "too few seeds to decide", "does not hold"]
    row = _row((tmp_path / "results-2.md").read_text(), "SHELM reaches 0.9")
    assert row.startswith("| SHELM reaches 0.9 | S | too few seeds to decide | IQM 0.940 [")
    assert row.endswith(", 2 seeds; needs at least 0.9 on at least 3 seeds |")
    assert _row((tmp_path / "results-3.md").read_text(), "SHELM reaches 0.9").endswith("3 seeds; needs at least 0.9 |")


def test_a_threshold_in_seeds_counts_the_seeds_that_each_meet_it(tmp_path):
    """`in_seeds = 2`: at least 2 seeds' scores each meet the bound, whatever their IQM; decided on 3 seeds or more
    like any threshold, and 'not measured yet' before the agent has a finished trial."""
    root = tmp_path / "pixels"
    claims = tmp_path / "claims.toml"
    claims.write_text(
        f'[[claim]]\ntext = "2 of 3 reach 0.9"\nsource = "S"\nkind = "threshold"\nenv = "{ENV}"\n'
        'agent = "shelm"\nsettings = { retriever = "regions", lm_layers = 2 }\nat_least = 0.9\nin_seeds = 2\n'
    )
    _run(root, "cnn", 1, 0.5)  # the folder has trials, but none of the claim's agent yet
    finals = [0.95, 0.5, 0.92]  # IQM 0.79, below the bound; 2 of 3 seeds meet it
    verdicts = []
    for seed in range(4):
        if seed:
            _run(root, "shelm", seed, finals[seed - 1], retriever="regions", lm_layers=2)
        out = tmp_path / f"results-{seed}.md"
        assert main(["report", str(root), "--out", str(out), "--reps", "100", "--claims", str(claims)]) == 0
        (verdict,) = json.loads((tmp_path / "pixels-report.json").read_text())["claims"]
        verdicts.append(verdict)
    expected = ["not measured yet", "too few seeds to decide", "too few seeds to decide", "holds"]
    assert [v["verdict"] for v in verdicts] == expected
    regions = {"agent": "shelm", "settings": {"retriever": "regions", "lm_layers": 2}}
    assert verdicts[0]["missing"] == [{**regions, "unfinished": 0}]
    assert verdicts[3]["label"] == "shelm (regions, lm_layers=2)" and verdicts[3]["settings"] == regions["settings"]
    assert verdicts[3]["seeds_meeting"] == 2 and verdicts[3]["in_seeds"] == 2
    assert verdicts[3]["iqm"] == pytest.approx(_iqm(finals)) and _iqm(finals) < 0.9
    row = _row((tmp_path / "results-2.md").read_text(), "2 of 3 reach 0.9")
    assert row.startswith("| 2 of 3 reach 0.9 | S | too few seeds to decide | per seed 0.950, 0.500: 1 of 2 at least ")
    assert row.endswith("; needs at least 0.9 in 2 seeds of at least 3 seeds |")
    row = _row((tmp_path / "results-3.md").read_text(), "2 of 3 reach 0.9")
    assert row.startswith("| 2 of 3 reach 0.9 | S | holds | per seed 0.950, 0.500, 0.920: 2 of 3 at least 0.9 (IQM ")
    assert row.endswith("; needs at least 0.9 in 2 seeds |")
    claims.write_text(claims.read_text().replace("in_seeds = 2", "in_seeds = 3"))  # all three: one falls short
    assert main(["report", str(root), "--out", str(out), "--reps", "100", "--claims", str(claims)]) == 0
    (verdict,) = json.loads((tmp_path / "pixels-report.json").read_text())["claims"]
    assert verdict["verdict"] == "does not hold" and verdict["seeds_meeting"] == 2


PEER = "sb3_contrib.RecurrentPPO"  # the label experiments/lstm_parity.py's trials get in the report
PEERS = {PEER, "cleanrl.ppo_trxl"}  # and experiments/trxl_parity.py's


def _peer_run(root: Path, seed: int, final: float) -> None:
    """A peer library's trial as experiments/lstm_parity.py writes it: success_rate 0 until its last row."""
    run_dir = root / f"{ENV}__sb3-rppo__s{seed}"
    run_dir.mkdir(parents=True)
    config = {"peer": f"{PEER} 2.9.2", "policy": "CnnLstmPolicy", "env_id": ENV, "seed": seed, "total_steps": 1000}
    (run_dir / "config.json").write_text(json.dumps(config))
    for step in range(100, 1001, 100):
        append_metrics(run_dir, {"global_step": step, "success_rate": final if step == 1000 else 0.0})


def _no_worse(name: str) -> str:
    return f'[[claim]]\ntext = "{name}"\nsource = "parity"\nkind = "no_worse"\nenv = "{ENV}"\nagent = "lstm"\n' + (
        f'others = [{{ agent = "{PEER}" }}]\n'
    )


@pytest.mark.parametrize(
    ("ours", "peer", "verdict"),
    [
        ([0.90, 0.92, 0.94], [0.91, 0.93, 0.95], "holds"),  # interleaved: within the CIs, the peer not higher
        ([0.50, 0.52, 0.54], [0.91, 0.93, 0.95], "does not hold"),  # every peer seed above every one of ours
    ],
    ids=["interleaved", "peer-ahead"],
)
def test_a_no_worse_claim_checks_parity_with_a_peer_librarys_trials(tmp_path, ours, peer, verdict):
    """A peer's trials (config.json naming the peer) are reported beside shelm's under the peer's name, and a
    no_worse claim holds when the agent's IQM CI reaches the peer's and the peer does not score higher."""
    root, peers = tmp_path / "parity", tmp_path / "parity-peer"
    for seed, (mine, theirs) in enumerate(zip(ours, peer, strict=True), start=1):
        _run(root, "lstm", seed, mine)
        _peer_run(peers, seed, theirs)
    claims = tmp_path / "claims.toml"
    claims.write_text(_no_worse("lstm no worse than the peer"))
    out = tmp_path / "results.md"
    assert main(["report", str(root), str(peers), "--out", str(out), "--reps", "200", "--claims", str(claims)]) == 0
    numbers = json.loads((tmp_path / "parity-report.json").read_text())
    table = {row["agent"]: row for row in numbers["table"]}
    assert sorted(table) == ["lstm", PEER] and table[PEER]["scores"] == peer
    (claim,) = numbers["claims"]
    (against,) = claim["against"]
    assert claim["verdict"] == verdict and against["agent"] == PEER and against["iqm"] == pytest.approx(_iqm(peer))
    assert against["reaches"] == (claim["ci"][1] >= against["ci"][0])
    # Exact one-sided p of "the peer scores higher": the share of the 20 ways to pick 3 of the 6 pooled ranks whose
    # sum is at least the peer's: all above ours is 1 of 20; ranks 2, 4, 6 (sum 12) are met or beaten by 7 of 20.
    assert against["other_higher"]["p_value"] == pytest.approx(1 / 20 if verdict == "does not hold" else 7 / 20)
    assert f"| {verdict} | IQM {_iqm(ours):.3f} [" in _row(out.read_text(), "lstm no worse than the peer")


def test_shelm_plot_draws_a_peer_librarys_runs_beside_shelms(tmp_path, capsys):
    _run(tmp_path / "parity", "lstm", 1, 0.9)
    _peer_run(tmp_path / "peers", 1, 0.5)
    runs = [str(tmp_path / "parity" / f"{ENV}__lstm__s1"), str(tmp_path / "peers" / f"{ENV}__sb3-rppo__s1")]
    assert main(["plot", *runs, "--out", str(tmp_path / "curves.png")]) == 0
    table = capsys.readouterr().out
    assert f"| {ENV} | lstm | 1 | 1,000 | 0.900 ± 0.000 |" in table
    assert f"| {ENV} | {PEER} | 1 | 1,000 | 0.500 ± 0.000 |" in table
    assert (tmp_path / "curves.png").stat().st_size > 0


def test_a_peer_config_without_its_step_budget_is_refused_in_one_line(tmp_path, capsys):
    _peer_run(tmp_path / "peers", 1, 0.5)
    config = tmp_path / "peers" / f"{ENV}__sb3-rppo__s1" / "config.json"
    config.write_text(json.dumps({"peer": PEER, "env_id": ENV, "seed": 1}))
    assert main(["report", str(tmp_path / "peers"), "--out", str(tmp_path / "r.md")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"'{config}' names a peer but not its peer, env_id, seed, total_steps" in err
    assert not (tmp_path / "r.md").exists()


def test_an_agent_without_finished_trials_is_not_measured_yet_and_an_untestable_claim_says_why(reported):
    verdicts, page = reported
    helm = verdicts["SHELM beats HELM"]
    assert helm["verdict"] == "not measured yet"
    assert helm["missing"] == [{"agent": "helm", "settings": {"lm_layers": 2}, "unfinished": 2}]
    assert _row(page, "SHELM beats HELM") == (
        f"| SHELM beats HELM | SHELM paper | not measured yet | no finished trial of 'helm (lm_layers=2)' on {ENV} "
        "(2 unfinished) |"
    )
    helmv2 = verdicts["HELMv2 reaches 0.9"]
    assert helmv2["verdict"] == "not measured yet" and "iqm" not in helmv2
    # No trial at all of the agent: the agents that were reported are named, so a mistyped name shows.
    assert helmv2["numbers"] == (
        f"no finished trial of 'helmv2 (image_encoder=imagenet, lm_layers=2)' on {ENV} (0 unfinished); the agents "
        f"reported on {ENV}: cnn, helm (lm_layers=2), lstm, shelm (symbolic oracle), shelm (symbolic oracle, "
        "lm_layers=2)"
    )
    clip = verdicts["HELMv2 solves it with CLIP"]
    assert clip["verdict"] == "not testable here" and clip["numbers"] == "no CLIP weights here | offline"
    assert _row(page, "HELMv2 solves it with CLIP") == (
        "| HELMv2 solves it with CLIP | HELMv2 paper | not testable here | no CLIP weights here \\| offline |"
    )


def test_the_claims_table_fills_its_marked_region_and_keeps_the_page(reported, sweeps, tmp_path, capsys):
    _, new_page = reported  # a new page: the sweep's region, then the claims' appended
    sweep_begin, sweep_end = markers("memory")
    claims_begin, claims_end = markers("claims")
    assert new_page.startswith(sweep_begin) and new_page.endswith(f"{claims_end}\n")
    assert new_page.index(sweep_end) < new_page.index(claims_begin)
    assert "| claim | source | verdict | numbers |" in new_page.split(claims_begin)[1]

    (tmp_path / "claims.toml").write_text(CLAIMS)
    page = tmp_path / "results.md"
    before = f"# Results\n\nintro\n\n{claims_begin}\nold verdicts\n{claims_end}\n\nmiddle\n"
    after = "\nhand-written discussion\n"
    page.write_text(f"{before}{sweep_begin}\nold numbers\n{sweep_end}\n{after}")
    argv = ["report", *map(str, sweeps), "--out", str(page), "--reps", "300", "--claims", str(tmp_path / "claims.toml")]
    assert main(argv) == 0
    text = page.read_text()
    assert text.startswith(f"# Results\n\nintro\n\n{claims_begin}\nThe papers' claims (`{tmp_path / 'claims.toml'}`)")
    assert f"{claims_end}\n\nmiddle\n{sweep_begin}\n" in text and text.endswith(f"{sweep_end}\n{after}")
    assert "old verdicts" not in text and "old numbers" not in text
    table = text.split(claims_begin)[1].split(claims_end)[0]
    assert table.count("\n| ") == 11 and "| SHELM beats the CNN | SHELM paper | holds |" in table

    unmarked = tmp_path / "unmarked.md"  # the sweep's region but none for the claims
    unmarked.write_text(f"notes\n{sweep_begin}\n{sweep_end}\n")
    capsys.readouterr()
    argv = ["report", str(sweeps[0]), "--out", str(unmarked), "--figures", str(tmp_path / "figs")]
    assert main([*argv, "--claims", str(tmp_path / "claims.toml")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"has no '{claims_begin}' ... '{claims_end}' region" in err
    assert unmarked.read_text() == f"notes\n{sweep_begin}\n{sweep_end}\n" and not (tmp_path / "figs").exists()


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (
            'text = "A guess"\nsource = "S"\nkind = "prediction"',
            "claim 2 ('A guess'): kind = 'prediction' is unknown; give kind = \"threshold\", \"beats\", "
            '"no_worse", "reaches_sooner" or "untestable"',
        ),
        (
            f'text = "SHELM beats"\nsource = "S"\nkind = "beats"\nenv = "{ENV}"\n{SHELM_FULL}',
            "claim 2 ('SHELM beats'): a beats claim needs others (a non-empty list of tables, each an agent and its "
            'settings); add e.g. others = [{agent = "lstm"}, {agent = "helm", settings = {lm_layers = 2}}]',
        ),
        (
            f'text = "T"\nsource = "S"\nkind = "beats"\nenv = "{ENV}"\n{SHELM_FULL}\nothers = ["cnn"]',
            "claim 2 ('T'): others = ['cnn'] is not a non-empty list of tables, each an agent and its settings; "
            'write e.g. others = [{agent = "lstm"}',
        ),
        (
            f'text = "T"\nsource = "S"\nkind = "beats"\nenv = "{ENV}"\n{SHELM_FULL}\n'
            'others = [{ agent = "cnn", seting = { lr = 0.1 } }]',
            "claim 2 ('T'): others[1] has unknown key 'seting'; its keys are agent, settings",
        ),
        (
            f'text = "T"\nsource = "S"\nkind = "beats"\nenv = "{ENV}"\n{SHELM_FULL}\n'
            'others = [{ agent = "cnn" }, { agent = "shelm", settings = { lm_layers = 0, retriever = "symbolic" } }]',
            "claim 2 ('T'): others names its own agent 'shelm (retriever=symbolic, lm_layers=0)'; list only the ones",
        ),
        (
            f'text = "T"\nsource = "S"\nkind = "threshold"\nenv = "{ENV}"\nagent = "shelm"\n'
            "settings = { lm_layer = 2 }\nat_least = 0.9",
            "claim 2 ('T'): its settings: 'lm_layer' is no training setting (did you mean lm_layers?); `shelm "
            "settings` lists them and what they take",
        ),
        (
            f'text = "T"\nsource = "S"\nkind = "threshold"\nenv = "{ENV}"\nagent = "shelm"\n'
            'settings = { lm_layers = "2" }\nat_least = 0.9',
            "claim 2 ('T'): its settings: lm_layers = '2' is no value of lm_layers;",
        ),
        (
            f'text = "T"\nsource = "S"\nkind = "beats"\nenv = "{ENV}"\n{SHELM_FULL}\n'
            'others = [{ agent = "shelm", settings = { fusion = "mixed" } }]',
            "claim 2 ('T'): others[1] settings: fusion = 'mixed' is no value of fusion;",
        ),
        (
            f'text = "T"\nsource = "S"\nkind = "threshold"\nenv = "{ENV}"\nagent = "{PEER}"\n'
            "settings = { n_envs = 16 }\nat_least = 0.9",
            f"claim 2 ('T'): its settings are a shelm agent's, and '{PEER}' is no registered agent; name a peer "
            "library's trials by the peer alone",
        ),
        (
            f'text = "T"\nsource = "S"\nkind = "threshold"\nenv = "{ENV}"\nagent = "cnn"\nat_least = "0.9"',
            "claim 2 ('T'): at_least = '0.9' is not a number; write e.g. at_least = 0.9",
        ),
        (
            f'text = "T"\nsource = "S"\nkind = "threshold"\nenv = "{ENV}"\nagent = "cnn"\nat_leats = 0.9',
            "claim 2 ('T'): unknown key 'at_leats' for a threshold claim; its keys are text, source, kind, env, "
            "agent, settings, at_least, at_most, metric, in_seeds",
        ),
        (
            f'text = "T"\nsource = "S"\nkind = "threshold"\nenv = "{ENV}"\nagent = "cnn"\nat_least = 0.9\nin_seeds = 0',
            "claim 2 ('T'): in_seeds = 0 is not a whole number of seeds, 1 or more; write e.g. in_seeds = 2",
        ),
        (
            f'text = "T"\nsource = "S"\nkind = "threshold"\nenv = "{ENV}"\nagent = "cnn"',
            "claim 2 ('T'): a threshold claim takes one of at_least and at_most; keep one, e.g. at_least = 0.9",
        ),
        ('text = "T"\nsource = "S" kind = "untestable"', "is not valid TOML: "),
    ],
    ids=[
        "unknown-kind",
        "no-others",
        "others-as-labels",
        "others-unknown-key",
        "others-names-the-agent",
        "unknown-setting",
        "setting-of-another-type",
        "setting-value-not-taken",
        "settings-of-a-peer",
        "string-threshold",
        "unknown-key",
        "zero-seeds",
        "no-threshold",
        "not-toml",
    ],
)
def test_a_bad_claims_file_is_refused_in_one_line_before_anything_is_written(sweeps, tmp_path, capsys, bad, message):
    claims = tmp_path / "claims.toml"
    claims.write_text(f"{GOOD}[[claim]]\n{bad}\n")
    page = tmp_path / "results.md"
    content = "\n".join([*markers("memory"), *markers("claims")]) + "\n"
    page.write_text(content)
    argv = ["report", str(sweeps[0]), "--out", str(page), "--figures", str(tmp_path / "figs"), "--reps", "300"]
    assert main([*argv, "--claims", str(claims)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--claims {claims}" in err and message in err
    assert page.read_text() == content and not (tmp_path / "figs").exists()


def test_a_claim_names_trials_by_their_settings_and_refuses_trials_of_two_variants(sweeps, tmp_path, capsys):
    """Settings select trials whatever the page's labels show (n_steps is in no label), and a claim whose agent and
    settings name trials of two variants (the whole LM and its first 2 blocks) is refused in one line naming the
    setting they differ in, before anything is written."""
    claims = tmp_path / "claims.toml"
    page = tmp_path / "results.md"
    argv = ["report", *map(str, sweeps), "--out", str(page), "--figures", str(tmp_path / "figs"), "--reps", "100"]
    threshold = f'[[claim]]\ntext = "T{{}}"\nsource = "S"\nkind = "threshold"\nenv = "{ENV}"\nagent = "shelm"\n'
    claims.write_text(
        threshold.format(1)
        + 'settings = { retriever = "symbolic", lm_layers = 0, n_steps = 10 }\nat_least = 0.9\n'
        + threshold.format(2)
        + 'settings = { retriever = "symbolic", lm_layers = 0, n_steps = 20 }\nat_least = 0.9\n'
        + threshold.format(3)
        + "settings = { lm_layers = 2 }\nat_least = 0.9\n"
    )
    assert main([*argv, "--claims", str(claims)]) == 0
    first, second, third = json.loads((tmp_path / "figs" / "memory-report.json").read_text())["claims"]
    assert first["verdict"] == "holds" and first["iqm"] == pytest.approx(_iqm(SHELM)) and first["seeds"] == 5
    assert first["label"] == "shelm (symbolic oracle)"  # the numbers are those of this row of the page
    assert second["verdict"] == "not measured yet"  # every trial ran with n_steps = 10
    assert second["numbers"].startswith(
        f"no finished trial of 'shelm (retriever=symbolic, lm_layers=0, n_steps=20)' on {ENV} (0 unfinished)"
    )
    assert third["label"] == "shelm (symbolic oracle, lm_layers=2)" and third["iqm"] == pytest.approx(_iqm(SHELM_L2))

    claims.write_text(threshold.format(1) + 'settings = { retriever = "symbolic" }\nat_least = 0.9\n')
    shutil.rmtree(tmp_path / "figs")
    written = page.read_text()
    assert main([*argv, "--claims", str(claims)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.endswith(
        f"--claims {claims}: claim 1 ('T1'): 'shelm (retriever=symbolic)' names 2 variants on {ENV} (shelm (symbolic "
        "oracle); shelm (symbolic oracle, lm_layers=2)), which differ in lm_layers; add the value meant to its "
        "settings\n"
    )
    assert page.read_text() == written and not (tmp_path / "figs").exists()


def test_the_repository_claims_file_names_settings_the_agents_have():
    """docs/claims.toml parses, and each agent it names is registered (or the peer) with settings that its configs
    on that env have, so that a renamed agent, setting or value breaks this test rather than turning a claim into
    'not measured yet' for good."""
    claims = load_claims(REPOSITORY_CLAIMS)
    assert len(tomllib.loads(REPOSITORY_CLAIMS.read_text())["claim"]) == len(claims) == 17
    kinds = ["beats", "beats", "threshold", "no_worse", *["threshold"] * 3, "beats", "beats", "untestable"]
    kinds += ["no_worse"]  # HELM on RandomMaze (in return); HELMv2 with CLIP; the lstm parity
    kinds += ["untestable", "threshold", "beats"]  # SHELM with CLIP; SHELM with words from pixels (regions)
    kinds += ["reaches_sooner", "reaches_sooner", "no_worse"]  # SHELM (oracle; pixels) against trxl; trxl parity
    assert [c.kind for c in claims] == kinds
    selectors = [(claim, s) for claim in claims if claim.agent is not None for s in (claim.agent, *claim.others)]
    # Every SHELM claim names its retriever (the page then marks the oracle) and how much of the LM it keeps.
    assert {str(s) for _, s in selectors if s.agent == "shelm"} == {
        "shelm (retriever=symbolic, lm_layers=0)",
        "shelm (retriever=symbolic, lm_layers=2, fusion=standardized)",
        "shelm (retriever=regions, lm_layers=2)",
    }
    for claim, selector in selectors:
        if selector.agent in PEERS:
            continue
        assert selector.agent in AGENTS, f"claim {claim.index}: no agent {selector.agent!r}"
        config, _ = resolve_config(claim.env, selector.agent, dict(selector.settings))
        recorded = config.to_dict()  # as config.json records them, which the claim is matched against
        assert all(recorded[key] == value for key, value in selector.settings), f"claim {claim.index}: {selector}"


def test_a_first_folder_named_claims_is_refused_with_claims(tmp_path, capsys):
    """Its sweep region and the claims table would share the page's `claims` markers."""
    argv = ["report", str(tmp_path / "claims"), "--out", str(tmp_path / "r.md"), "--claims", str(REPOSITORY_CLAIMS)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is named 'claims', the name of the claims table's page region" in err
    assert not (tmp_path / "r.md").exists()
