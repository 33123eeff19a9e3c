"""Errors caused by user input.

Every message reads ``<where>: expected <what>, got <what>. <how to fix>`` so the command
line can print it as one line and exit with code 2, and a test can pin it.
"""

from __future__ import annotations


class CoplayError(Exception):
    """A problem with the user's input or environment, never a bug in coplay."""

    def __init__(self, where: str, *, expected: str, got: str, fix: str = "") -> None:
        self.where = where
        self.expected = expected
        self.got = got
        self.fix = fix
        message = f"{where}: expected {expected}, got {got}."
        if fix:
            message += f" {fix}"
        super().__init__(message)


class ScenarioError(CoplayError):
    """A scenario file that cannot be read or does not validate."""


class ConfigError(CoplayError):
    """A bad argument to an environment, agent or runner built from Python."""


class PluginError(CoplayError):
    """A plug-in named by import path that cannot be imported or does not fit."""


class StoreError(CoplayError):
    """A database that cannot be opened, or a record that is not in it."""
