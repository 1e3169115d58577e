"""Shared test helpers, one module per topic (scripts, files, faults, references, and one per kind of input)."""
