"""The machinery around the tasks, for clusters and long runs: process settings applied before torch
loads, the scheduler's requeue signal, Hydra's runtime and its job records, and files written whole."""
