"""Shared kernel: settings, domain models, database."""
