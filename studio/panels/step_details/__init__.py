"""The step details panel: inputs, output, logs, attempts, errors and token counts of one step execution."""
