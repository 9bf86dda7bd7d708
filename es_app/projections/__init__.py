"""Projections: the runner (checkpoints, shards, dead letters, rebuild) and the read models."""
