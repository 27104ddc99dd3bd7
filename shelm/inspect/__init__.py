"""Tools to look at trained runs: learning curves (`curves`), the readable memory (`trace`, `page`), and the
papers' analyses (`analyze`, with `distances`, `tokens`, `attention`, `robustness`)."""

ANALYSES = ("distances", "tokens", "attention", "robustness")
"""The `shelm analyze --what` choices (kept here so the command line parses without importing torch)."""
