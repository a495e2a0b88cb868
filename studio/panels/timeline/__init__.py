"""The run timeline panel: one lane per step and per for_each item, with bars per attempt."""
