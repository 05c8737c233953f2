"""The baselines registry: published numbers to reproduce, one YAML file per paper under ``baselines/``.

Every number comes from ``baselines.md`` (the compiled reference) with its provenance tag and where it was
read; a row whose value could not be read is kept as ``NOT-FOUND`` with ``value: null`` so that its settings
and reproduction config stay on record. A file reads (``yaml.safe_load``)::

    paper:
      key: laborieux2021            # = the file stem
      title: "..."
      authors: "..."
      year: 2021
      venue: "..."
      arxiv: "2006.03824"           # optional (quoted: a string)
      repository: "owner/name"      # optional
      commit: "93660ed6"            # optional (quoted: a string)
      notes: "..."                  # optional
    baselines:
      - id: laborieux2021/cifar10/cnn-ep-symmetric-ce   # unique across all files, starts with "<key>/"
        dataset: cifar10
        architecture: "..."
        algorithm: EP               # short free text: EP, BPTT, hEP, BP, PEPITA, FA ...
        variant: "..."
        metric: test_error          # see METRICS
        value: 11.7                 # number; null iff provenance is NOT-FOUND; text for relative_claim
        std: null                   # optional
        n_runs: null                # optional
        unit: percent               # see UNITS
        epochs: 120                 # int or null: the epoch the value was read at
        provenance: PAPER-ABSTRACT  # see PROVENANCES (the tags of baselines.md §0)
        source: "baselines.md §1a: ..."
        notes: "..."                # optional
        scales:                     # optional: reproduction configs by scale name
          paper:
            config: {...}           # a RunConfig dict (eqbench.config)
            tolerance: 1.0          # optional, absolute, in the metric's unit; only where value is a number
          ci:
            config: {...}
            band: {low: 80.0, high: 95.0, metric: test_accuracy, seeds: 3, measured: "...", note: "..."}
            claim: {of: <a relative_claim id>, versus: <id of the reference's ci entry>, max_gap: 1.0}  # optional

A ``claim`` checks a published relative claim at this scale (Laydevant et al.: "within 1 % of the
full-precision reference"): this entry's band metric minus that of ``versus`` (an error: positive = worse),
averaged over seeds, must not exceed ``max_gap`` (in the metric's unit). ``of`` names the relative_claim
entry quoted; both ids must exist (checked by :func:`load_registry`). See :func:`eqbench.stats.gap_claim`.

A ``paper`` scale reproduces the published setting: its ``data.name`` must be the entry's dataset and its
``epochs`` the entry's epochs (when given). Every problem raises :class:`RegistryError` with one line naming
the file, the entry (its id, or ``baselines[i]`` before the id is known) and the field.
"""

from __future__ import annotations

import difflib
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .config import RunConfig
from .errors import ConfigError, RegistryError

METRICS = ("test_error", "test_accuracy", "train_error", "train_accuracy", "test_top5_accuracy", "test_top5_error",
           "relative_claim")
# percent and ratio are error/accuracy rates (0–100, 0–1); cost is a loss value (Gammell's diabetes regression
# error = ½‖y − s‖²); text goes with relative_claim.
UNITS = ("percent", "ratio", "cost", "text")
PROVENANCES = ("PAPER-ABSTRACT", "REPO-CMD", "REPO-LOG", "REPO-NB", "NOT-FOUND")
NOT_FOUND = "NOT-FOUND"

PAPER_REQUIRED = ("key", "title", "authors", "year", "venue")
PAPER_OPTIONAL = ("arxiv", "repository", "commit", "notes")
ENTRY_REQUIRED = ("id", "dataset", "architecture", "algorithm", "variant", "metric", "value", "unit", "epochs",
                  "provenance", "source")
ENTRY_OPTIONAL = ("std", "n_runs", "notes", "scales")
SCALE_KEYS = ("config", "tolerance", "band", "claim")
CLAIM_REQUIRED = ("of", "versus", "max_gap")
CLAIM_OPTIONAL = ("note",)
BAND_REQUIRED = ("low", "high", "metric", "seeds", "measured")
BAND_OPTIONAL = ("note",)

_ID = re.compile(r"[a-z0-9][a-z0-9_.+-]*(/[a-z0-9][a-z0-9_.+-]*)+")
_NAME = re.compile(r"[a-z][a-z0-9_]*")
_ALGORITHM_MAX = 24
_REPO_ROOT = Path(__file__).resolve().parents[1]


def default_folder() -> Path:
    """``$EQBENCH_BASELINES_DIR`` if set, else ``baselines/`` at the repository root."""
    env = os.environ.get("EQBENCH_BASELINES_DIR")
    return Path(env) if env else _REPO_ROOT / "baselines"


@dataclass(frozen=True)
class Paper:
    key: str
    title: str
    authors: str
    year: int
    venue: str
    arxiv: str | None = None
    repository: str | None = None
    commit: str | None = None
    notes: str | None = None
    file: str = ""


@dataclass(frozen=True)
class Band:
    """This project's measured acceptance band for a scale (not a published number)."""

    low: float
    high: float
    metric: str
    seeds: int
    measured: str
    note: str | None = None


@dataclass(frozen=True)
class Claim:
    """A published relative claim checked at a scale: this run's error minus ``versus``'s ≤ ``max_gap``."""

    of: str
    versus: str
    max_gap: float
    note: str | None = None


@dataclass
class Scale:
    config: RunConfig
    tolerance: float | None
    band: Band | None
    raw: dict[str, Any]
    claim: Claim | None = None


@dataclass
class Baseline:
    id: str
    paper: Paper
    dataset: str
    architecture: str
    algorithm: str
    variant: str
    metric: str
    value: float | str | None
    unit: str
    epochs: int | None
    provenance: str
    source: str
    std: float | None = None
    n_runs: int | None = None
    notes: str | None = None
    scales: dict[str, Scale] = field(default_factory=dict)

    @property
    def found(self) -> bool:
        return self.provenance != NOT_FOUND

    def to_summary(self) -> dict[str, Any]:
        """The JSON row of ``eqbench baselines --json``."""
        return {
            "id": self.id, "paper": self.paper.key, "file": self.paper.file, "dataset": self.dataset,
            "architecture": self.architecture, "algorithm": self.algorithm, "variant": self.variant,
            "metric": self.metric, "value": self.value, "std": self.std, "n_runs": self.n_runs, "unit": self.unit,
            "epochs": self.epochs, "provenance": self.provenance, "source": self.source, "notes": self.notes,
            "scales": list(self.scales),
        }


# ------------------------------------------------------------------------------------------------- validation

class _Ctx:
    """Where we are: formats the one-line error ``FILE: entry 'ID' field 'FIELD': problem``."""

    def __init__(self, file: str, entry: str | None = None) -> None:
        self.file, self.entry = file, entry

    def error(self, fld: str | None, problem: str) -> RegistryError:
        where = self.file
        if self.entry is not None:
            where += f": entry {self.entry}"
        if fld is not None:
            where += f"{'' if self.entry is not None else ':'} field {fld!r}"
        return RegistryError(f"{where}: {' '.join(problem.split())}")  # one line, a parser's indented lines too


def _keys(ctx: _Ctx, d: Any, prefix: str, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict:
    if not isinstance(d, dict):
        raise ctx.error(prefix or None, f"expected a mapping, got {_show(d)}")
    for k in d:
        if k not in required + optional:
            raise ctx.error(f"{prefix}.{k}" if prefix else str(k),
                            f"unknown field; known: {', '.join(required + optional)}")
    for k in required:
        if k not in d:
            raise ctx.error(f"{prefix}.{k}" if prefix else k, "missing (required)")
    return d


def _show(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, (dict, list)):
        return f"a {'mapping' if isinstance(v, dict) else 'list'}"
    return repr(v)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _text(ctx: _Ctx, d: dict, key: str, fld: str | None = None, optional: bool = False) -> str | None:
    v = d.get(key)
    if v is None and optional:
        return None
    if not isinstance(v, str) or not v.strip():
        raise ctx.error(fld or key, f"expected a non-empty string{' or null' if optional else ''}, got {_show(v)}"
                        + (" (quote it)" if isinstance(v, (int, float)) and not isinstance(v, bool) else ""))
    return v


def _number(ctx: _Ctx, v: Any, fld: str, optional: bool = False, minimum: float | None = None) -> float | None:
    if v is None and optional:
        return None
    if not _is_number(v):
        raise ctx.error(fld, f"expected a number{' or null' if optional else ''}, got {_show(v)}")
    if minimum is not None and v < minimum:
        raise ctx.error(fld, f"must be ≥ {minimum:g}, got {v!r}")
    return v


def _integer(ctx: _Ctx, v: Any, fld: str, optional: bool = False, minimum: int | None = None) -> int | None:
    if v is None and optional:
        return None
    if not isinstance(v, int) or isinstance(v, bool):
        raise ctx.error(fld, f"expected an integer{' or null' if optional else ''}, got {_show(v)}")
    if minimum is not None and v < minimum:
        raise ctx.error(fld, f"must be ≥ {minimum}, got {v!r}")
    return v


def _choice(ctx: _Ctx, v: Any, fld: str, choices: tuple[str, ...]) -> str:
    if v not in choices:
        raise ctx.error(fld, f"expected one of {', '.join(choices)}, got {_show(v)}")
    return v


def _paper(ctx: _Ctx, d: Any, stem: str) -> Paper:
    d = _keys(ctx, d, "paper", PAPER_REQUIRED, PAPER_OPTIONAL)
    key = _text(ctx, d, "key", "paper.key")
    if key != stem:
        raise ctx.error("paper.key", f"must equal the file stem {stem!r}, got {key!r}")
    texts = {k: _text(ctx, d, k, f"paper.{k}") for k in ("title", "authors", "venue")}
    year = _integer(ctx, d["year"], "paper.year", minimum=1900)
    opt = {k: _text(ctx, d, k, f"paper.{k}", optional=True) for k in PAPER_OPTIONAL}
    return Paper(key=key, year=year, file=ctx.file, **texts, **opt)


def _value(ctx: _Ctx, d: dict, metric: str, unit: str, provenance: str) -> float | str | None:
    v = d["value"]
    if provenance == NOT_FOUND:
        if v is not None:
            raise ctx.error("value", f"must be null when provenance is {NOT_FOUND}, got {_show(v)}")
        return None
    if v is None:
        raise ctx.error("value", f"null needs provenance {NOT_FOUND}; provenance is {provenance}")
    if metric == "relative_claim":
        if not isinstance(v, str) or not v.strip():
            raise ctx.error("value", f"expected the claim's text for metric relative_claim, got {_show(v)}")
        return v
    if not _is_number(v):
        raise ctx.error("value", f"expected a number or null, got {_show(v)}")
    _in_range(ctx, v, "value", unit)
    return v


def _in_range(ctx: _Ctx, v: float, fld: str, unit: str) -> None:
    top = {"percent": 100.0, "ratio": 1.0}.get(unit, math.inf)
    if not 0.0 <= v <= top:
        raise ctx.error(fld, f"a {unit} value must lie in [0, {top:g}], got {v!r}")


def _band(ctx: _Ctx, d: Any, prefix: str, unit: str) -> Band:
    d = _keys(ctx, d, prefix, BAND_REQUIRED, BAND_OPTIONAL)
    low = _number(ctx, d["low"], f"{prefix}.low")
    high = _number(ctx, d["high"], f"{prefix}.high")
    _in_range(ctx, low, f"{prefix}.low", unit)
    _in_range(ctx, high, f"{prefix}.high", unit)
    if low > high:
        raise ctx.error(f"{prefix}.low", f"low ({low!r}) must be ≤ high ({high!r})")
    metric = _choice(ctx, d["metric"], f"{prefix}.metric", tuple(m for m in METRICS if m != "relative_claim"))
    seeds = _integer(ctx, d["seeds"], f"{prefix}.seeds", minimum=1)
    measured = _text(ctx, d, "measured", f"{prefix}.measured")
    note = _text(ctx, d, "note", f"{prefix}.note", optional=True)
    return Band(low=low, high=high, metric=metric, seeds=seeds, measured=measured, note=note)


def _scale(ctx: _Ctx, name: Any, d: Any, entry: Baseline) -> Scale:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ctx.error(f"scales.{name}", "a scale name is lowercase letters, digits and _ (e.g. paper, ci)")
    prefix = f"scales.{name}"
    d = _keys(ctx, d, prefix, ("config",), SCALE_KEYS[1:])
    try:
        config = RunConfig.from_dict(d["config"], where=f"{prefix}.config")
    except ConfigError as e:
        raise ctx.error(f"{prefix}.config", str(e)) from None
    if name == "paper":
        if config.data.name != entry.dataset:
            raise ctx.error(f"{prefix}.config.data.name",
                            f"a paper scale trains on the entry's dataset {entry.dataset!r}, got {config.data.name!r}")
        if entry.epochs is not None and config.epochs != entry.epochs:
            raise ctx.error(f"{prefix}.config.epochs",
                            f"a paper scale runs the entry's {entry.epochs} epochs, got {config.epochs!r}")
    tolerance = _number(ctx, d.get("tolerance"), f"{prefix}.tolerance", optional=True, minimum=0.0)
    if tolerance is not None and not _is_number(entry.value):
        raise ctx.error(f"{prefix}.tolerance", f"a tolerance needs a numeric value to land near; value is "
                                               f"{_show(entry.value)}")
    band = None if d.get("band") is None else _band(ctx, d["band"], f"{prefix}.band", entry.unit)
    claim = None
    if d.get("claim") is not None:
        c = _keys(ctx, d["claim"], f"{prefix}.claim", CLAIM_REQUIRED, CLAIM_OPTIONAL)
        if band is None or not band.metric.endswith("_error"):
            raise ctx.error(f"{prefix}.claim", "a claim compares errors: the scale needs a band with an error metric")
        claim = Claim(of=_text(ctx, c, "of", f"{prefix}.claim.of"),
                      versus=_text(ctx, c, "versus", f"{prefix}.claim.versus"),
                      max_gap=_number(ctx, c["max_gap"], f"{prefix}.claim.max_gap", minimum=0.0),
                      note=_text(ctx, c, "note", f"{prefix}.claim.note", optional=True))
    return Scale(config=config, tolerance=tolerance, band=band, raw=d, claim=claim)


def _entry(ctx: _Ctx, index: int, d: Any, paper: Paper) -> Baseline:
    ctx = _Ctx(ctx.file, f"baselines[{index}]")
    if isinstance(d, dict) and isinstance(d.get("id"), str):
        ctx.entry = repr(d["id"])
    d = _keys(ctx, d, "", ENTRY_REQUIRED, ENTRY_OPTIONAL)
    id_ = _text(ctx, d, "id")
    if not _ID.fullmatch(id_):
        raise ctx.error("id", "expected lowercase path segments joined by '/' (letters, digits, _ . + -)")
    if not id_.startswith(paper.key + "/"):
        raise ctx.error("id", f"must start with the paper key {paper.key + '/'!r}")
    dataset = _text(ctx, d, "dataset")
    if not _NAME.fullmatch(dataset):
        raise ctx.error("dataset", f"expected an eqbench dataset name (e.g. cifar10, fashion_mnist), got {dataset!r}")
    texts = {k: _text(ctx, d, k) for k in ("architecture", "algorithm", "variant", "source")}
    if len(texts["algorithm"]) > _ALGORITHM_MAX:
        raise ctx.error("algorithm", f"keep it short (≤ {_ALGORITHM_MAX} characters; details go in variant)")
    metric = _choice(ctx, d["metric"], "metric", METRICS)
    unit = _choice(ctx, d["unit"], "unit", UNITS)
    if (metric == "relative_claim") != (unit == "text"):
        raise ctx.error("unit", f"unit text goes with metric relative_claim (and only with it); metric is {metric}")
    provenance = _choice(ctx, d["provenance"], "provenance", PROVENANCES)
    value = _value(ctx, d, metric, unit, provenance)
    std = _number(ctx, d.get("std"), "std", optional=True, minimum=0.0)
    if std is not None and not _is_number(value):
        raise ctx.error("std", f"a std needs a numeric value; value is {_show(value)}")
    entry = Baseline(
        id=id_, paper=paper, dataset=dataset, metric=metric, value=value, unit=unit, provenance=provenance,
        epochs=_integer(ctx, d["epochs"], "epochs", optional=True, minimum=1), std=std,
        n_runs=_integer(ctx, d.get("n_runs"), "n_runs", optional=True, minimum=1),
        notes=_text(ctx, d, "notes", optional=True), **texts,
    )
    scales = d.get("scales")
    if scales is not None:
        if not isinstance(scales, dict) or not scales:
            raise ctx.error("scales", f"expected a non-empty mapping of scale name to scale, got {_show(scales)}")
        entry.scales = {name: _scale(ctx, name, s, entry) for name, s in scales.items()}
    return entry


def _display(path: Path) -> str:
    try:
        return path.resolve().relative_to(_REPO_ROOT).as_posix()
    except ValueError:
        return str(path)


def load_file(path: str | Path) -> tuple[Paper, list[Baseline]]:
    """Read and validate one paper's file (ids are checked for uniqueness by :func:`load_registry`)."""
    path = Path(path)
    ctx = _Ctx(_display(path))
    try:
        # libyaml's safe loader when PyYAML has it: the same loader as yaml.safe_load, about 10x faster, and
        # the registry is read on every CLI call and by many tests
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ctx.error(None, f"not valid YAML{at}: {e.problem or e.context}") from None
    except (yaml.YAMLError, ValueError) as e:  # not UTF-8 (UnicodeDecodeError), or a tag that cannot read its scalar
        raise ctx.error(None, f"not valid YAML: {e}") from None
    d = _keys(ctx, data, "", ("paper", "baselines"))
    paper = _paper(ctx, d["paper"], path.stem)
    if not isinstance(d["baselines"], list):
        raise ctx.error("baselines", f"expected a list of entries (or []), got {_show(d['baselines'])}")
    return paper, [_entry(ctx, i, e, paper) for i, e in enumerate(d["baselines"])]


def load_registry(folder: str | Path | None = None) -> dict[str, Baseline]:
    """Every entry of every ``*.yaml`` in ``folder`` (default :func:`default_folder`), by id, file then entry order."""
    folder = default_folder() if folder is None else Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"baselines folder {folder} does not exist")
    for path in sorted(folder.glob("*.yml")):
        raise _Ctx(_display(path)).error(None, "registry files end in .yaml (this one would be skipped)")
    out: dict[str, Baseline] = {}
    for path in sorted(folder.glob("*.yaml")):
        _, entries = load_file(path)
        for i, entry in enumerate(entries):
            if entry.id in out:
                raise _Ctx(entry.paper.file, repr(entry.id)).error(
                    "id", f"duplicate id (baselines[{i}]), already defined in {out[entry.id].paper.file}")
            out[entry.id] = entry
    for entry in out.values():  # claims name other entries: check them once every file is read
        for name, sc in entry.scales.items():
            c = sc.claim
            if c is None:
                continue
            ctx = _Ctx(entry.paper.file, repr(entry.id))
            if c.of not in out or out[c.of].metric != "relative_claim":
                raise ctx.error(f"scales.{name}.claim.of",
                                f"{c.of!r} is not a relative_claim entry of the registry")
            if c.versus not in out or name not in out[c.versus].scales or out[c.versus].scales[name].band is None:
                raise ctx.error(f"scales.{name}.claim.versus",
                                f"{c.versus!r} has no {name} scale with a band to compare with")
    return out


def get_baseline(id: str, folder: str | Path | None = None) -> Baseline:
    """One entry by id; an unknown id raises ConfigError naming the closest ids."""
    registry = load_registry(folder)
    if id in registry:
        return registry[id]
    close = difflib.get_close_matches(id, list(registry), n=5, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else f"; {len(registry)} ids, see `eqbench baselines`"
    raise ConfigError(f"unknown baseline {id!r}{hint}")


__all__ = ["METRICS", "NOT_FOUND", "PROVENANCES", "UNITS", "Band", "Baseline", "Claim", "Paper", "Scale",
           "default_folder", "get_baseline", "load_file", "load_registry"]
