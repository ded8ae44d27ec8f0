"""The LightningModules (metrics, logging, optimizers) and loading them from checkpoints, weights only."""
