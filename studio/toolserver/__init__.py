"""Workflow Studio's own MCP tool server: offline text, data, file and diagnostic tools."""
