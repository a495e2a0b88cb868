"""The runs panel: every run in the store, newest first, with filters and live status updates."""
