"""Operator tools: `jwt dev` (api.tools.cli) and module types (api.tools.module_type)."""
