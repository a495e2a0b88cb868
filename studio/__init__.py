"""Workflow Studio: build and run AI-agent workflows on the desktop."""

__version__ = "0.1.0"
