"""User-facing input errors: one line naming the file, the field and the rule; CLI exit code 2."""

from __future__ import annotations


def _one_line(text: str | None) -> str | None:
    """Line breaks inside a value quoted in a message (a CSV cell, a TOML string) shown as ``\\n``."""
    if text is None:
        return None
    return text.replace("\r", "\\r").replace("\n", "\\n")


class InputError(Exception):
    """Bad user input. ``str(err)`` is the one-line message the CLI prints.

    Parameters
    ----------
    message : str
        The rule that was broken (what was expected, what was found).
    file : str, optional
        The file (or, for command-line values, nothing: the option goes in ``field``).
    field : str, optional
        The key (``protocols[0].book.positions``), ``line N, column C`` of a CSV, or the option (``--set``).
    """

    def __init__(self, message: str, *, file: str | None = None, field: str | None = None) -> None:
        self.file = _one_line(file)
        self.field = _one_line(field)
        self.rule = _one_line(message) or ""
        where = ": ".join(p for p in (self.file, self.field) if p)
        super().__init__(f"{where}: {self.rule}" if where else self.rule)
