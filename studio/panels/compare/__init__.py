"""The run comparison view: two runs of one workflow side by side, step by step."""
