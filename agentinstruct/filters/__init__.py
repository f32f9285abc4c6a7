"""Filters: the step contract, the reward/format/length bars, dedup, decontamination, and the pass over a written
dataset dir."""
