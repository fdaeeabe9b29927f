"""The content project: its manifest, evidence register, adoption under another canonical, package rules."""
