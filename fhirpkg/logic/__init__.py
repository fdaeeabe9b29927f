"""Logic: the CQL library, its ELM, and PlanDefinition $apply (see docs/logic.md)."""
