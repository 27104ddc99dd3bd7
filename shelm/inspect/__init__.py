"""Tools to look at trained runs: learning curves now; readable memory pages and analyses build on it."""
