"""`shelm report`: a sweep's trials aggregated the way the papers (and rliable) recommend.

Per trial, the score is the metric averaged over the last 10% of its training steps. Per env and agent:
- the interquartile mean (IQM) over seeds, with a 95% stratified-bootstrap confidence interval (rliable);
- over all envs at once (when every env has the same seeds), the IQM of the [seeds, envs] score matrix, the
  bootstrap stratified by env.
Each memory agent (one with a frozen LM memory) against each baseline (cnn, lstm, and any agent named with
`--baseline`, e.g. the same agent without a setting under test), per env and over all envs:
- the probability of improvement P(memory > baseline) with its bootstrap CI (rliable);
- a one-sided Wilcoxon rank-sum test of "memory scores higher" over the seeds (scipy's Mann-Whitney U, exact for
  small samples), at alpha 0.05.
Sample efficiency, per env, of each agent variant with a memory (its spec's `has_memory`: a frozen LM memory, a
trained one such as lstm's or trxl's, or the oracle control's) and of each peer library's variant: the environment
step at which each seed's metric first reaches 0.5, 0.8 and 0.9, read off the curve averaged over a trailing window
of 2% of the trial's step budget (from the step where a whole window is trained), so that neither a lucky row over
the first few episodes nor a one-row spike counts (`shelm.experiments.report.efficiency`); per level, how many seeds
reached it and, where at least 3 did, the IQM of their steps with its 95% stratified-bootstrap CI, else each seed's
step or "never".
Learning curves show the IQM over seeds at each step with a CI band. Only trials that reached their step budget
count; unfinished ones are listed. Besides shelm's runs, a folder may hold a peer library's trials written in the
same layout (experiments/lstm_parity.py: config.json naming the `peer`, its env_id, seed and total_steps, and
metrics.jsonl); they are labelled with the peer's name and reported as baselines.

The markdown goes to a new file, or into an existing one between the lines `<!-- shelm report NAME: begin -->` and
`<!-- shelm report NAME: end -->` (NAME: the sweep folder's name), so a hand-written page (docs/results.md) keeps its
text around the numbers and can hold several sweeps.

With `--claims FILE`, a TOML file of `[[claim]]` tables (docs/claims.toml holds the papers' claims this project
tests), each claim gets a verdict from the finished trials of all the folders reported together: a `threshold`
claim holds when an agent's IQM over at least 3 seeds meets `at_least` or `at_most`, or with `in_seeds = N` when at
least N of those seeds each meet it (on fewer than 3 it cannot be decided); a `beats` claim holds when the one-sided
rank-sum test says the agent scores higher than each of `others` at alpha 0.05 (p <= 0.05), and cannot be decided when
every comparison it loses had too few seeds for any outcome to reach that p; a `no_worse` claim (a parity check
against a peer) holds when, against each of `others`, the agent's IQM CI reaches the other's (its upper end at or
above the other's lower end) and the rank-sum test does not say the other scores higher; a `reaches_sooner` claim
(a memory that learns against a frozen LM one at equal budget, say) holds when the agent reaches `level` (steps as in
the sample-efficiency view, counted within the smallest step budget of the trials compared) in at least 3 seeds and
the one-sided rank-sum test says its steps to it are fewer than each of `others`' at alpha 0.05, a seed that never
reaches it counting as +infinity (seeds that never do tie), and cannot be decided on fewer than 3 seeds on any side;
its verdict shows each side's steps to the level and final IQM; an `untestable` claim states why this project
cannot test it. A claim names its trials by what they are: an env, an agent and the values
of the settings that tell the meant variant apart (`agent = "shelm"`, `settings = {retriever = "symbolic", lm_layers
= 2}`; each of `others` a table of the same two keys), and trials of several variants of the agent are refused in
one line naming the settings they differ in (`shelm.experiments.report.claims`). A claim whose env or agent has no
finished trial is "not measured yet".
The verdicts go into the report's JSON and, as a table, between `<!-- shelm report claims: begin -->` and
`<!-- shelm report claims: end -->` (appended to a new page, refused in an existing one without those lines). A
bad claims file is refused in one line before anything is written.
"""

from shelm.experiments.report.page import markers, write_report

__all__ = ["markers", "write_report"]
