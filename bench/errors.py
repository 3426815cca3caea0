"""Errors that end a command with one clear line and a defined exit code.

Exit codes are the same for every command: 0 ok, 1 failure, 2 bad usage or config.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

EXIT_FAILURE = 1
EXIT_USAGE = 2


class BenchError(Exception):
    """A failure the user can act on; the message says what happened and what to do."""

    exit_code = EXIT_FAILURE


class UsageError(BenchError):
    """Bad input: a wrong value, name, file or flag. Nothing was run."""

    exit_code = EXIT_USAGE


class ConfigError(UsageError):
    """bench.toml (or a flag overriding it) is invalid."""


def choices(values: Iterable[str]) -> str:
    """Format valid choices for an error message."""
    values = sorted(values)
    return ", ".join(values) if values else "(none registered)"


def did_you_mean(value: str, valid: Iterable[str]) -> str:
    """``"did you mean 'rddm'? "`` for a near miss of one of ``valid``, else ``""``."""
    close = difflib.get_close_matches(value, list(valid), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'? " if close else ""


def require_one_of(value: str, valid: tuple[str, ...], subject: str) -> str:
    """``value`` if it is one of ``valid``, else a UsageError: "<subject> is not one of ..."."""
    if value not in valid:
        hint = did_you_mean(value, valid).strip()
        raise UsageError(
            f"{subject} is not one of {choices(valid)}" + (f"; {hint}" if hint else "")
        )
    return value


def unknown_name(kind: str, name: str, valid: Iterable[str], where: str = "") -> UsageError:
    """The error for a name that is not in a registry (method, dataset, protocol, profile...)."""
    place = f" in {where}" if where else ""
    return UsageError(f"unknown {kind} '{name}'{place}; valid choices: {choices(valid)}")
