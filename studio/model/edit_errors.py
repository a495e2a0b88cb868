"""The error type of editor operations on workflow documents."""

from __future__ import annotations


class EditError(ValueError):
    """An edit that cannot be applied; ``str()`` names the offending value and how to fix it."""
