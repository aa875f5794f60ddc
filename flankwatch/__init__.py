"""Flankwatch application shell: CLI, pipeline runner, demo."""
