"""Figures in the docs come from files that commands wrote, never from a hand (issue 36).

A page quotes a figure in one of three ways, all resolved when the docs are built:

* inline, the role ``{measured}`FILE:PATH|FORMAT` `` — the value at PATH of the JSON file FILE (relative to the
  repository root), formatted;
* a published figure, the role ``{baseline}`ID` `` — the value of the registry's entry ID (baselines/*.yaml) and its
  provenance tag;
* a table, the fenced directive ``measured-table`` — one row per record of a list in the JSON file::

      ```{measured-table} suites/measurements/gpu-runs/2026-12-05-h100-9e6be64.json
      :rows: estimate.estimates
      :columns: config=id; s / epoch=epoch_s|{:,.1f}; peak=peak_bytes|*9.5367431640625e-07 {:,.0f} MiB
      ```

  under which the build writes the file's provenance (``provenance``: command, commit, machine, date; the commit's
  age in commits before the built one), so an old measurement reads as old.

PATH is dotted; ``[3]`` indexes a list, ``[key=value,…]`` picks the one record of a list with those values (a bare
``key`` in the list: the record has it; a key may be dotted) and ``[0.001]`` is a dict key with a dot in it.
FORMAT is a ``str.format`` template (``{:.2g}``, ``{:,.1f} s``), after an optional ``*factor``
(``*1000 {:.1f} ms``); a list is formatted item by item, comma-separated. A missing file, key or provenance, or a
record matched twice, is a warning naming the page, the file and the key: ``make docs`` turns it into an error.

:func:`hand_copied` finds the numbers a page quotes by hand: in its prose (outside code, roles, these directives and
the blocks other commands render between ``<!-- name … -->`` and ``<!-- /name -->``, which tests compare with their
JSON) a number with a unit of measurement (×, %, s, ms, MiB, ulps, …), a number in scientific notation with a
mantissa, a number with two decimals or more, or any decimal number in a table row. The build warns at each one;
a setting is written as code.
"""

from __future__ import annotations

import json
import re
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

from sphinx.util import logging

from eqbench.registry import load_registry

ROOT = Path(__file__).resolve().parents[2]
log = logging.getLogger(__name__)

ROLE = re.compile(r"\{measured\}`([^`]+)`")
BASELINE = re.compile(r"\{baseline\}`([^`]+)`")
TABLE = re.compile(r"^```\{measured-table\}[ \t]*(\S+)[ \t]*\n((?:[ \t]*:[\w-]+:.*\n)*)```[ \t]*$", re.M)
_UNIT = r"(?:×(?!\s?\d)|%|points?\b|ms\b|µs\b|s\b|MiB\b|GiB\b|MB\b|kB\b|ulps?\b|hours?\b|min\b|minutes\b|seconds\b)"
QUOTED = re.compile(rf"(?<![\w.\-/=])\d[\d,]*(?:\.\d+)?(?:e[-−+]?\d+)?\s?{_UNIT}|(?<![\w.])\d\.\d+e[-−+]?\d+")
DECIMAL = re.compile(r"(?<![\w.])\d+\.\d+(?![\w.])")
PRECISE = re.compile(r"(?<![\w.])\d+\.\d{2,}(?![\w.])")  # two decimals or more: a measured value, not a setting
STRIP = [re.compile(r"^```.*?^```", re.M | re.S),            # code blocks and directives
         re.compile(r"<!-- ([\w:.-]+).*?-->.*?<!-- /\1 -->", re.S),  # blocks rendered by commands, tested there
         ROLE, BASELINE, re.compile(r"`[^`]*`"), re.compile(r"\]\([^)]*\)")]  # roles, inline code, link targets


class MeasuredError(ValueError):
    """A quoted figure that cannot be resolved: its message names the file and the key."""


@cache
def load(file: str) -> Any:
    path = ROOT / file
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MeasuredError(f"{file}: no such measurement file") from None
    except json.JSONDecodeError as e:
        raise MeasuredError(f"{file}: not JSON ({e})") from None


def _tokens(path: str) -> list[str]:
    return re.findall(r"[^.\[\]]+|\[[^\]]*\]", path)


def _get(record: Any, path: str) -> str | None:
    """``str`` of the value at PATH of RECORD, None where there is none (a selector's test)."""
    try:
        return str(lookup(record, path))
    except MeasuredError:
        return None


def lookup(data: Any, path: str, file: str = "?") -> Any:
    """The value at dotted PATH of DATA (see the module docstring for ``[i]``, ``[k=v]`` and ``[key]``)."""
    node = data
    for tok in _tokens(path):
        inner = tok[1:-1] if tok.startswith("[") else None
        try:
            if inner is None or isinstance(node, dict):
                node = node[inner if inner is not None else tok]
            elif not inner.isdigit():  # a selector: key=value pairs, or a bare key the record must have
                want = [kv.partition("=") for kv in inner.split(",")]
                hits = [r for r in node if all(_get(r, k) is not None and (not eq or _get(r, k) == v)
                                               for k, eq, v in want)]
                if len(hits) != 1:
                    raise MeasuredError(f"{file}: {path}: {tok} matches {len(hits)} records, not one")
                node = hits[0]
            else:
                node = node[int(inner)]
        except (KeyError, IndexError, TypeError, AttributeError):
            raise MeasuredError(f"{file}: no key {path!r} (stops at {tok!r})") from None
    return node


def fmt(value: Any, spec: str | None) -> str:
    """VALUE through the FORMAT of the module docstring (``str(value)`` without one)."""
    if value is None:
        return "—"
    if isinstance(value, list):  # a list: its items, each formatted, comma-separated
        return ", ".join(fmt(v, spec) for v in value)
    if not spec:
        return str(value)
    m = re.match(r"\*([-+.\deE]+)\s*", spec)
    if m:
        value, spec = value * float(m.group(1)), spec[m.end():]
    return spec.format(value) if "{" in spec else f"{value}{spec}"


def value(ref: str) -> str:
    """The role's text: ``FILE:PATH|FORMAT`` resolved."""
    file, _, rest = ref.partition(":")
    path, _, spec = rest.partition("|")
    provenance(file)  # a figure without its provenance is not quoted
    return fmt(lookup(load(file), path.strip(), file), spec.strip() or None)


def _age(commit: str) -> str:
    try:
        n = subprocess.run(["git", "rev-list", "--count", f"{commit}..HEAD"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "a commit this checkout does not hold"
    return f"{n} commits before the one these docs were built from"


def provenance(file: str) -> str:
    """One line: the file, the command that wrote it, the commit (and its age), the machine, the date."""
    p = load(file).get("provenance") if isinstance(load(file), dict) else None
    missing = [k for k in ("command", "commit", "machine", "date") if not (p or {}).get(k)]
    if missing:
        raise MeasuredError(f"{file}: its provenance lacks {', '.join(missing)}")
    note = f" {p['note']}" if p.get("note") else ""
    return (f"*From `{file}`, written by `{p['command']}` "
            f"at commit `{p['commit'][:7]}` ({_age(p['commit'])}) on {p['machine']}, {p['date']}.{note}*")


def table(file: str, options: dict[str, str]) -> str:
    """The directive's Markdown: a table of the records at ``:rows:`` and the file's provenance."""
    for need in ("rows", "columns"):
        if need not in options:
            raise MeasuredError(f"{file}: measured-table needs :{need}:")
    records = lookup(load(file), options["rows"], file)
    cols = []
    for col in options["columns"].split(";"):
        head, _, ref = col.strip().partition("=")
        path, _, spec = ref.partition("|")
        cols.append((head.strip(), path.strip(), spec.strip() or None))
    lines = ["| " + " | ".join(h for h, _, _ in cols) + " |", "|" + "---|" * len(cols)]
    for r in records:
        cells = [fmt(lookup(r, p, file), s) if p else "" for _, p, s in cols]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n\n" + provenance(file)


def render(text: str) -> tuple[str, list[str]]:
    """TEXT with its measured tables and roles resolved, and the problems met (one line each)."""
    problems: list[str] = []

    def tab(m: re.Match) -> str:
        opts = dict(re.match(r"\s*:([\w-]+):\s*(.*)", line).groups() for line in m.group(2).splitlines())
        try:
            return table(m.group(1), opts)
        except MeasuredError as e:
            problems.append(str(e))
            return ""

    def role(m: re.Match) -> str:
        try:
            return value(m.group(1))
        except MeasuredError as e:
            problems.append(str(e))
            return "?"

    def baseline(m: re.Match) -> str:
        entry = load_registry().get(m.group(1))
        if entry is None:
            problems.append(f"baselines/: no entry {m.group(1)!r}")
            return "?"
        return f"{entry.value} [{entry.provenance}]"

    return BASELINE.sub(baseline, ROLE.sub(role, TABLE.sub(tab, text))), problems


def hand_copied(text: str) -> list[tuple[int, str]]:
    """(line, number) of each figure TEXT quotes by hand (module docstring)."""
    for pattern in STRIP:  # keep the line numbers: blank the stripped text, not its newlines
        text = pattern.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)
    out = []
    for i, line in enumerate(text.splitlines(), 1):
        found = [m.group(0) for m in QUOTED.finditer(line)]
        extra = DECIMAL if line.lstrip().startswith("|") else PRECISE
        found += [m.group(0) for m in extra.finditer(line) if not any(m.group(0) in f for f in found)]
        out += [(i, f) for f in found]
    return out


def source_read(app, docname: str, source: list[str]) -> None:
    if docname.startswith("generated/"):
        return
    for line, number in hand_copied(source[0]):
        log.warning(f"hand-copied figure {number!r}: quote it from a measurement file ({{measured}} role or "
                    "measured-table)", location=(docname, line))
    source[0], problems = render(source[0])
    for p in problems:
        log.warning(p, location=docname)


def setup(app):
    app.connect("source-read", source_read)
    return {"version": "1", "parallel_read_safe": True}
