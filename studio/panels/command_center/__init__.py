"""The Command Center: one inbox of the pending human tasks of every run, and a view to resolve them.

Import the panel from :mod:`studio.panels.command_center.panel`. This package module imports no Qt, so
the Qt-free :mod:`studio.panels.command_center.model` stays importable without it.
"""
