"""The workflow document model, templates and validation; imports no Qt."""
