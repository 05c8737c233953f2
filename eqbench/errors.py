"""Errors that eqbench raises on bad input or broken dynamics.

Every error carries a one-line message naming the problem; the CLI prints it as
``eqbench: error: <message>`` and exits with status 2, never with a torch traceback.
"""

from __future__ import annotations

import difflib


class EqbenchError(Exception):
    """Base class of every error eqbench raises on purpose."""


class ConfigError(EqbenchError, ValueError):
    """An unknown name (model, activation, estimator) or an invalid setting."""


class RegistryError(ConfigError):
    """A malformed baselines registry file; the message names the file, the entry and the field."""


class ShapeError(EqbenchError, ValueError):
    """An input or target whose shape does not match the model."""


class DivergenceError(EqbenchError, FloatingPointError):
    """A relaxation produced a non-finite state."""


class DatasetMissingError(EqbenchError, FileNotFoundError):
    """A dataset's files are not where they are expected, or cannot be read (or downloaded)."""


def one_line(exc: BaseException, limit: int = 400) -> str:
    """``Type: message`` on one line (whitespace runs, newlines included, become one space), at most ``limit``
    characters: how an error that is not eqbench's own is reported (a failed job, an unreadable checkpoint)."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}"[:limit]


def unknown(kind: str, name: str, known) -> ConfigError:
    """The error for an unknown registry name, listing the names that exist, the close ones first."""
    known = sorted(known)
    close = difflib.get_close_matches(str(name), known, n=3, cutoff=0.6) or \
        [k for k in known if k.lower() == str(name).lower()]
    hint = f" (did you mean {' or '.join(close)}?)" if close else ""
    return ConfigError(f"unknown {kind} {name!r}{hint}; known: {', '.join(known)}")
