"""The steps of an agent: one typed class per kind (definitions), and one module
per kind that executes it (llm, tool, condition, map, validate, retrieve)."""
