"""Targets to invertible RGB images plus prompts, task shards, manifests and the mixture."""
