"""What the worker and the commands are configured from: FUNNEL_* settings and their
values, funnel definitions and presets, event mappings, and the JSON Schemas they are
checked against. Imports only the core."""
