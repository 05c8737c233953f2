"""Models and learning rules from other packages: entry points and ``package.module:factory`` paths.

A package registers its models under the entry-point group ``eqbench.models`` and its rules under
``eqbench.rules`` (``[project.entry-points."eqbench.models"]`` in its pyproject.toml, name = the registry
name, value = ``package.module:factory``); eqbench's configs, suites and ``eqbench check`` then know them
without any edit to eqbench. A name may also be given as the path itself.
"""

from __future__ import annotations

import functools
import importlib
from importlib.metadata import entry_points
from typing import Any

from .errors import ConfigError


def load_object(path: str, what: str = "factory") -> Any:
    """The object at ``package.module:attribute`` (dots allowed after the colon), or ConfigError in one line."""
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"{what} {path!r} is not of the form package.module:name")
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as e:  # noqa: BLE001  (any import-time error of foreign code is reported in one line)
        raise ConfigError(f"{what} {path!r}: module {module_name!r} does not import "
                          f"({type(e).__name__}: {e})") from None
    for part in attr.split("."):
        if not hasattr(obj, part):  # an object of a foreign module, not a model: looked up by name
            raise ConfigError(f"{what} {path!r}: {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ConfigError(f"{what} {path!r} is not callable")
    return obj


@functools.cache
def _group(group: str) -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group=group)}


def entry_points_of(group: str, builtin: dict[str, Any]) -> dict[str, Any]:
    """Every entry point of ``group`` whose name is not built in, loaded (name → object)."""
    out = {}
    for name, value in _group(group).items():
        if name in builtin:
            raise ConfigError(f"entry point {name!r} = {value!r} of group {group!r} shadows eqbench's own {name!r}")
        out[name] = load_object(value, f"entry point {name!r} of {group!r}")
    return out
