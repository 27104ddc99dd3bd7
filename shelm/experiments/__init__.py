"""Experiments at scale: many trials (agent x env x seed) run as one sweep, and the papers' statistics over them."""
