"""Hydra configs and the `vistune` command that wires the stages (Ray lives here, not in the core)."""
