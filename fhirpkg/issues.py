"""The one record every validation layer yields."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import IntEnum


class Severity(IntEnum):
    """OperationOutcome.issue.severity, ordered so that ``max()`` is the worst."""

    INFORMATION = 0
    WARNING = 1
    ERROR = 2
    FATAL = 3

    @property
    def code(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> "Severity":
        return cls[text.upper()]


@dataclass(frozen=True, slots=True)
class Issue:
    """One finding, located as precisely as the input allows.

    ``code`` is the OperationOutcome issue type (structure, required, value,
    invariant, code-invalid, not-found, processing, informational, ...);
    ``rule`` is a stable id for what was checked (an invariant key such as
    ``ele-1``, or one of ours such as ``json-duplicate-key``);
    ``expression`` is a FHIRPath location such as ``Bundle.entry[0].resource.status``.
    """

    severity: Severity
    code: str
    message: str
    rule: str
    expression: str = ""
    file: str = ""
    line: int | None = None
    column: int | None = None
    #: JSON location as a tuple of keys and indexes; used to compute line/column lazily.
    location: tuple = field(default=(), compare=False, repr=False)

    @property
    def is_error(self) -> bool:
        return self.severity >= Severity.ERROR

    def at(self, **changes) -> "Issue":
        return replace(self, **changes)

    def sort_key(self):
        return (self.file, self.line or 0, self.column or 0, -self.severity, self.rule, self.message)

