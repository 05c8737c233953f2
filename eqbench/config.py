"""Run configurations: typed dataclasses, read from YAML with ``yaml.safe_load`` and validated.

A run config names a model, a learning rule, an optimizer (with per-layer learning rates and
weight decays, Laborieux §A.8), an optional schedule, a dataset and a number of epochs::

    model:     {name: P_MLP, sizes: [784, 512, 10], act: my_sigmoid}
    rule:      {name: EP, beta: 0.1, T1: 30, T2: 10, estimator: symmetric}   # or {name: BPTT, T1, T2}
    # estimator: one_sided (alias positive), negative, random_sign, symmetric (alias centered), holomorphic (points: N);
    # coupled learning: {name: CpL, eta: 0.5, T1: 30, T2: 10, variant: positive}; contrastive: {name: CL, T1, T2}
    # Scellier et al. 2023's names: PEP, NEP, CEP (EP with that estimator), PCpL, NCpL, CCpL
    optimizer: {name: adam, lrs: [5.0e-4, 5.0e-4]}           # sgd: momentum, wds
    # flip (binary weights, Laydevant et al.): lrs are the biases' rates, plus gammas, thresholds, lrs_alpha
    schedule:  {name: cosine, T_max: 100, eta_min: 1.0e-5}   # optional; or {name: multistep, milestones: [60, 90]}
    data:      {name: mnist5k, batch_size: 50, test_batch_size: 200, augment: false}
    epochs: 10
    seed: 0
    dtype: float32

Every error names the field (``optimizer.lrs``) and what is wrong with it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from .data.info import SHUFFLES
from .errors import ConfigError
from .io import read_yaml

OPTIMIZERS = ("sgd", "adam", "flip")
SCHEDULES = ("cosine", "multistep")


def _require(d: Any, where: str, keys: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict:
    if not isinstance(d, dict):
        raise ConfigError(f"{where} must be a mapping, got {type(d).__name__}")
    missing = [k for k in keys if k not in d]
    if missing:
        raise ConfigError(f"{where} is missing {', '.join(missing)}")
    extra = [k for k in d if k not in keys + optional]
    if extra:
        raise ConfigError(f"{where} has unknown field(s) {', '.join(map(str, extra))}; "
                          f"known: {', '.join(keys + optional)}")
    return d


def _number(v: Any, where: str, positive: bool = False, integer: bool = False) -> float:
    ok = isinstance(v, int) if integer else isinstance(v, (int, float))
    if isinstance(v, bool) or not ok or (positive and v <= 0):
        what = ("a positive " if positive else "an " if integer else "a ") + ("integer" if integer else "number")
        raise ConfigError(f"{where} must be {what}, got {v!r}")
    return v


@dataclass
class OptimizerConfig:
    """Per-layer lists, bottom to top. ``flip`` (eqbench.optim.FlipOptimizer) reads ``lrs`` as the biases'
    rates and needs ``gammas`` and ``thresholds``; ``lrs_alpha`` (optional) learns the scales α."""

    name: str
    lrs: list[float]
    wds: list[float] | None = None
    momentum: float = 0.0
    gammas: list[float] | None = None
    thresholds: list[float] | None = None
    lrs_alpha: list[float] | None = None

    @classmethod
    def from_dict(cls, d: Any, where: str = "optimizer") -> OptimizerConfig:
        flip = isinstance(d, dict) and d.get("name") == "flip"
        if flip:
            d = _require(d, where, ("name", "lrs", "gammas", "thresholds"), ("lrs_alpha",))
        else:
            d = _require(d, where, ("name", "lrs"), ("wds", "momentum"))
        if d["name"] not in OPTIMIZERS:
            raise ConfigError(f"{where}.name must be one of {', '.join(OPTIMIZERS)}, got {d['name']!r}")
        for key in ("lrs", "wds", "gammas", "thresholds", "lrs_alpha"):
            v = d.get(key)
            if v is None and not (key == "lrs" or (flip and key in ("gammas", "thresholds"))):
                continue
            if not isinstance(v, list) or not v:
                raise ConfigError(f"{where}.{key} must be a non-empty list of numbers, got {v!r}")
            for i, x in enumerate(v):
                _number(x, f"{where}.{key}[{i}]")
        for key in ("wds", "gammas", "thresholds", "lrs_alpha"):
            if d.get(key) is not None and len(d[key]) != len(d["lrs"]):
                raise ConfigError(f"{where}.{key} has {len(d[key])} entries but lrs has {len(d['lrs'])}")
        if "momentum" in d:
            _number(d["momentum"], f"{where}.momentum")
        return cls(**d)


@dataclass
class ScheduleConfig:
    """``cosine`` (T_max, eta_min; Laborieux) or ``multistep`` (milestones, gamma; PEPITA's ×0.1 at 60, 90)."""

    name: str
    T_max: int | None = None
    eta_min: float = 0.0
    milestones: list[int] | None = None
    gamma: float = 0.1

    @classmethod
    def from_dict(cls, d: Any, where: str = "schedule") -> ScheduleConfig:
        if isinstance(d, dict) and d.get("name") == "multistep":
            d = _require(d, where, ("name", "milestones"), ("gamma",))
            if not isinstance(d["milestones"], list) or not d["milestones"]:
                raise ConfigError(f"{where}.milestones must be a non-empty list of epochs, got {d['milestones']!r}")
            for i, m in enumerate(d["milestones"]):
                _number(m, f"{where}.milestones[{i}]", positive=True, integer=True)
            if "gamma" in d:
                _number(d["gamma"], f"{where}.gamma", positive=True)
            return cls(**d)
        d = _require(d, where, ("name", "T_max"), ("eta_min",))
        if d["name"] not in SCHEDULES:
            raise ConfigError(f"{where}.name must be one of {', '.join(SCHEDULES)}, got {d['name']!r}")
        _number(d["T_max"], f"{where}.T_max", positive=True, integer=True)
        if "eta_min" in d:
            _number(d["eta_min"], f"{where}.eta_min")
        return cls(**d)


@dataclass
class DataConfig:
    """``shuffle``: ``epoch`` (reshuffle the train examples every epoch), ``once`` (Gammell et al. 2021, MNIST:
    consecutive batches in an order drawn once from the seed and replayed every epoch) or ``none`` (their
    diabetes and wine: the same batches in the split's order every epoch); see
    :func:`eqbench.data.make_loaders`. ``embeddings``: the word2vec file of the text datasets ``imdb`` and
    ``snli``, relative to the data folder unless absolute; None reads
    ``<data_dir>/GoogleNews-vectors-negative300.bin`` (or ``.bin.gz``)."""

    name: str
    batch_size: int
    test_batch_size: int = 200
    augment: bool = False
    normalize: bool = True
    shuffle: str = "epoch"
    embeddings: str | None = None

    @classmethod
    def from_dict(cls, d: Any, where: str = "data") -> DataConfig:
        d = _require(d, where, ("name", "batch_size"),
                     ("test_batch_size", "augment", "normalize", "shuffle", "embeddings"))
        _number(d["batch_size"], f"{where}.batch_size", positive=True, integer=True)
        if "test_batch_size" in d:
            _number(d["test_batch_size"], f"{where}.test_batch_size", positive=True, integer=True)
        for key in ("augment", "normalize"):
            if not isinstance(d.get(key, False), bool):
                raise ConfigError(f"{where}.{key} must be true or false, got {d[key]!r}")
        if d.get("shuffle", "epoch") not in SHUFFLES:
            raise ConfigError(f"{where}.shuffle must be one of {', '.join(SHUFFLES)}, got {d['shuffle']!r}")
        emb = d.get("embeddings")
        if emb is not None and (not isinstance(emb, str) or not emb.strip()):
            raise ConfigError(f"{where}.embeddings must be the path of a word2vec file (a string), got {emb!r}")
        return cls(**d)


#: the parameter dtypes a run may ask for
DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16}
#: ``torch.set_float32_matmul_precision``: "highest" (full float32), "high" (TF32 on Ampere or newer GPUs),
#: "medium" (bfloat16 products where the hardware has them)
MATMUL_PRECISIONS = ("highest", "high", "medium")


def has_tf32(device: str | torch.device) -> bool:
    """Whether ``device`` computes float32 matmuls in TF32 at precision "high": a CUDA GPU of compute capability
    8.0 (Ampere) or newer."""
    dev = torch.device(device)
    return dev.type == "cuda" and torch.cuda.is_available() and torch.cuda.get_device_capability(dev) >= (8, 0)


@dataclass
class RunConfig:
    model: dict[str, Any]
    rule: dict[str, Any]
    optimizer: OptimizerConfig
    data: DataConfig
    epochs: int
    schedule: ScheduleConfig | None = None
    seed: int = 0
    dtype: str = "float32"
    device: str = "cpu"
    matmul_precision: str = "highest"  # float32 matmuls in full precision; "high" allows TF32 on a GPU
    cuda_graphs: bool = False  # relaxations through CUDA graphs, captured once per shape (eqbench.graphs; GPU only)
    # evaluate the test set once before training (an epoch-0 row in metrics.jsonl), as Gammell et al.'s
    # run_trials.py does: with persistent particles it also gives the test particles one more free phase
    initial_eval: bool = False
    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes carried to the run folder

    @classmethod
    def from_dict(cls, d: Any, where: str = "config") -> RunConfig:
        required = ("model", "rule", "optimizer", "data", "epochs")
        d = _require(d, where, required, tuple(f.name for f in fields(cls) if f.name not in required))
        for key in ("model", "rule"):
            _require(d[key], f"{where}.{key}", ("name",), tuple(d[key]) if isinstance(d[key], dict) else ())
        _number(d["epochs"], f"{where}.epochs", positive=True, integer=True)
        if "seed" in d:
            _number(d["seed"], f"{where}.seed", integer=True)
        if d.get("dtype", "float32") not in DTYPES:
            raise ConfigError(f"{where}.dtype must be one of {', '.join(DTYPES)}, got {d['dtype']!r}")
        if d.get("matmul_precision", "highest") not in MATMUL_PRECISIONS:
            raise ConfigError(f"{where}.matmul_precision must be one of {', '.join(MATMUL_PRECISIONS)}, got "
                              f"{d['matmul_precision']!r}")
        for flag in ("initial_eval", "cuda_graphs"):
            if not isinstance(d.get(flag, False), bool):
                raise ConfigError(f"{where}.{flag} must be true or false, got {d[flag]!r}")
        sched = d.get("schedule")
        return cls(
            model=dict(d["model"]),
            rule=dict(d["rule"]),
            optimizer=OptimizerConfig.from_dict(d["optimizer"], f"{where}.optimizer"),
            data=DataConfig.from_dict(d["data"], f"{where}.data"),
            epochs=d["epochs"],
            schedule=None if sched is None else ScheduleConfig.from_dict(sched, f"{where}.schedule"),
            seed=d.get("seed", 0),
            dtype=d.get("dtype", "float32"),
            device=d.get("device", "cpu"),
            matmul_precision=d.get("matmul_precision", "highest"),
            cuda_graphs=d.get("cuda_graphs", False),
            initial_eval=d.get("initial_eval", False),
            extra=dict(d.get("extra") or {}),
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        # unset optional lists (None) are left out; flip has no momentum field
        flip = self.optimizer.name == "flip"
        d["optimizer"] = {k: v for k, v in d["optimizer"].items() if v is not None and not (flip and k == "momentum")}
        if self.schedule is not None:  # only the fields of its kind, so that the dict reads back
            multistep = self.schedule.name == "multistep"
            keep = ("name", "milestones", "gamma") if multistep else ("name", "T_max", "eta_min")
            d["schedule"] = {k: d["schedule"][k] for k in keep}
        return d


def load_config(path: str | Path) -> RunConfig:
    """Read a run config from a YAML file (``yaml.safe_load``)."""
    return RunConfig.from_dict(read_yaml(path, "config file"), where=str(path))
