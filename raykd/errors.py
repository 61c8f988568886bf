"""Errors a user can act on: each names what is wrong and where."""

from __future__ import annotations


class RaykdError(Exception):
    """Base class for errors shown to users without a traceback by the CLI."""


class ConfigError(RaykdError):
    """A config file or option is invalid."""

    def __init__(self, where: str, reason: str):
        self.where, self.reason = where, reason
        super().__init__(f"{where}: {reason}")

    def __reduce__(self):  # raised inside Ray workers: must unpickle on the driver
        return (ConfigError, (self.where, self.reason))


class DataError(RaykdError):
    """A data file is unreadable or holds invalid rows."""

    def __init__(self, path: str, reason: str, row: int | None = None):
        self.path, self.row, self.reason = str(path), row, reason
        loc = f"{path}, row {row}" if row is not None else str(path)
        super().__init__(f"{loc}: {reason}")

    def __reduce__(self):
        return (DataError, (self.path, self.reason, self.row))
