"""Instruction-tuning of an image generator on the vistune mixture, and held-out evaluation."""
