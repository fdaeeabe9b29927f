"""Terminology: offline code systems, value set expansion and code grammars, and the layer that checks bindings."""
