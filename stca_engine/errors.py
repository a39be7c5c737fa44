"""Errors a user can act on.

Every error raised for bad input is a ``StcaError``: its message names the file (or setting) and
the problem in one line, so the CLI can print it and exit 2 and the app can show it without a
traceback. Anything else escaping the engine is a bug.
"""

from __future__ import annotations

import os


class StcaError(Exception):
    """A problem with the user's input, phrased for the user."""

    def __init__(self, problem: str, path: str | os.PathLike | None = None):
        self.problem = problem
        self.path = None if path is None else str(path)
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


class ConfigError(StcaError, ValueError):
    """A setting out of range; raised before any work starts."""


class AudioError(StcaError):
    """An audio file or upload that cannot be used."""


class DatasetError(StcaError):
    """A dataset folder that does not have the expected layout or content."""


class CheckpointError(StcaError):
    """A model checkpoint that is corrupt, truncated or does not match."""


class TrainingError(StcaError):
    """Training had to stop (e.g. a NaN loss); the last good weights are kept."""


class PathNotAllowedError(StcaError, PermissionError):
    """A path outside the roots the operator allows (STCA_DATA_ROOTS)."""
