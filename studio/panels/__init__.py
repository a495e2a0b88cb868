"""Dockable panels of the studio window, such as the run event log."""
