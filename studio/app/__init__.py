"""The studio desktop application: main window, run controls and the GUI entry point."""
