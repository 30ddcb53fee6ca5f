"""Shared model plumbing: the registry and fitted-state checks."""
