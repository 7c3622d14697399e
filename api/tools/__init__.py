"""Operator tools: `jwt dev` (api.tools.cli), module types (api.tools.module_type),
the container HEALTHCHECK (api.tools.healthcheck)."""
