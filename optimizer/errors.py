"""User-facing input errors: one line naming the file, the field and the rule; CLI exit code 2."""

from __future__ import annotations


class InputError(Exception):
    """Bad user input. ``str(err)`` is the one-line message the CLI prints."""

    def __init__(self, message: str, *, file: str | None = None, field: str | None = None) -> None:
        self.file = file
        self.field = field
        self.rule = message
        where = ": ".join(p for p in (file, field) if p)
        super().__init__(f"{where}: {message}" if where else message)
