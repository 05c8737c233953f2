"""The ``eqbench`` command: thin parsing and printing over the library.

    eqbench gdu MODEL [--sizes ...] [--dtype float64] [--sweep] --json OUT [--plot OUT.png]
    eqbench bench [--out DIR]
    eqbench baselines [--json]
    eqbench train CONFIG.yaml [--out DIR] | eqbench train --resume DIR
    eqbench run ID --scale ci|paper [--seeds N] [--device cuda] [--json OUT]
    eqbench report [--results DIR] [--out FILE]
    eqbench regress [--base HEAD~1] [--head HEAD] [--false-alarm 0.01] [--detect 1.25] [--factor F]
                    [--mem-factor 1.10] [--profile quick|full]
    eqbench history [--range REV-RANGE] [--no-publish]
    eqbench sweep-p [--id ID] [--scale paper] [--p P ...] [--seeds N] [--epochs 10] [--dataset NAME] [--out DIR]

Errors that eqbench raises on purpose print as one line, ``eqbench: error: …``, exit status 2.

Each subcommand imports its own modules inside its function (each marked ``# lazy: subcommand``): ``eqbench --help``
and every other command then skip the registry, the trainer, the gate, matplotlib and scipy.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

from .errors import ConfigError, EqbenchError


def _kv(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--set takes KEY=VALUE, got {text!r}")
    k, v = text.split("=", 1)
    return k.strip(), yaml.safe_load(v)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="eqbench", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    g = sub.add_parser("gdu", help="compare EP updates with BPTT gradients on one batch (GDU check)")
    g.add_argument("model", help="registered model: P_MLP, P_CNN, VF_MLP, VF_CNN, HOPFIELD")
    g.add_argument("--sizes", type=int, nargs="+", help="MLP layer sizes (input first), or CNN channels")
    g.add_argument("--act", default="my_sigmoid", help="activation (default my_sigmoid: smooth)")
    g.add_argument("--loss", default="mse", choices=["mse", "ce"])
    g.add_argument("--softmax", action="store_true", help="softmax readout outside the dynamics (ce)")
    g.add_argument("--set", dest="overrides", type=_kv, action="append", default=[], metavar="KEY=VALUE",
                   help="any other model option, value in YAML (e.g. pools=mm, kernels=[5,5], scale=0.5)")
    g.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    g.add_argument("--beta", type=float, default=0.01)
    g.add_argument("--estimator", default="symmetric", choices=["symmetric", "one_sided"])
    g.add_argument("--T1", type=int, default=300, help="free-phase steps (default 300)")
    g.add_argument("--T2", type=int, default=10, help="nudged / BPTT steps compared (default 10)")
    g.add_argument("--batch", type=int, default=20)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--data", default="digits", choices=["digits", "random"])
    g.add_argument("--sweep", action="store_true", help="also run the β ladder (1e-1 … 1e-6, two per decade) and "
                   "judge both orders on their asymptotic ranges")
    g.add_argument("--json", required=True, help="where to write the JSON report")
    g.add_argument("--plot", help="PNG: EP (dashed) vs BPTT (solid) per layer")

    c = sub.add_parser("check", help="run the generic claims (GDU, closed form, energy, equivariance, devices, "
                                     "controls) on a model written outside eqbench")
    c.add_argument("factory", help="package.module:factory, an entry point of eqbench.models, or a registered name")
    c.add_argument("--config", help="YAML file of the factory's keyword arguments")
    c.add_argument("--rule", help="a learning rule to check instead of EP: registered name or package.module:Rule")
    c.add_argument("--T1", type=int, default=300, help="free-phase steps (default 300)")
    c.add_argument("--T2", type=int, default=10, help="nudged / BPTT steps compared (default 10)")
    c.add_argument("--betas", type=float, nargs="+", metavar="B",
                   help="the β ladder of the GDU orders (default: two per decade, 1e-1 … 1e-6; or the config's betas)")
    c.add_argument("--dtype", help="float64 (default) or float32; a model's required_dtype is used when it "
                                   "declares one")
    c.add_argument("--json", help="also write the results, with the whole β ladder, as JSON here")

    z = sub.add_parser("zoo", help="the kit on a zoo of outside models with expected verdicts: the confusion matrix")
    z.add_argument("folder", nargs="?", help="a zoo folder with zoo.yaml (default: eqbench's examples/zoo)")
    z.add_argument("--only", nargs="+", metavar="NAME", help="these models of the zoo only")
    z.add_argument("--json", help="also write the verdicts, the matrix and each model's asymptotic ranges here")
    z.add_argument("--table", action="store_true", help="print the expected verdicts as a Markdown table and stop")
    z.add_argument("--readme", action="store_true", help="rewrite the zoo pages' tables from zoo.yaml and results.json "
                                                         "(after --json FOLDER/results.json)")

    e = sub.add_parser("estimate", help="seconds per epoch, hours and peak memory of registry configs, from a few "
                                        "batches of synthetic data of the dataset's shape (no download)")
    e.add_argument("ids", nargs="*", help="baseline ids (eqbench baselines); none with --all")
    e.add_argument("--all", action="store_true", help="every config of the registry that has the scale")
    e.add_argument("--scale", default="paper", choices=["ci", "paper"])
    e.add_argument("--device", help="override the config's device (cpu, cuda)")
    e.add_argument("--batches", type=int, default=20, help="timed training batches (default 20)")
    e.add_argument("--cuda-graphs", action=argparse.BooleanOptionalAction, default=None,
                   help="relaxations through CUDA graphs (or not), whatever the config says")
    e.add_argument("--json", help="also write the estimates as JSON here")

    b = sub.add_parser("bench", help="the main job: every check on embedded data, table + report folder")
    b.add_argument("--out", default="reports/bench", help="report folder (default reports/bench)")

    r = sub.add_parser("baselines", help="list the published baselines of the registry (baselines/*.yaml)")
    r.add_argument("--json", action="store_true", help="print a JSON list of entry summaries instead of a table")

    t = sub.add_parser("train", help="train a run config (YAML) into a run folder, or resume one")
    t.add_argument("config", nargs="?", help="run config YAML (see eqbench/config.py)")
    t.add_argument("--out", help="run folder (default results/train/<config stem>)")
    t.add_argument("--resume", metavar="DIR", help="continue the interrupted run in DIR")
    t.add_argument("--ddp", type=int, metavar="N", help="data-parallel over N local processes (torch.distributed; "
                                                        "or launch with torchrun --nproc-per-node N -m eqbench train)")
    _data_args(t)

    u = sub.add_parser("run", help="train a registry baseline over seeds and compare with what is expected")
    u.add_argument("id", help="baseline id (eqbench baselines lists them)")
    u.add_argument("--scale", required=True, choices=["ci", "paper"])
    u.add_argument("--seeds", type=int, default=1)
    u.add_argument("--device", help="override the config's device (cpu, cuda)")
    u.add_argument("--results", default="results", help="results folder (default results/)")
    u.add_argument("--json", help="also write the run's JSON here")
    _data_args(u)
    _launch_args(u, default=None)

    j = sub.add_parser("sweep", help="many (baseline, seed) runs as parallel local processes or SLURM jobs "
                                     "(submitit); finished ones skipped, interrupted ones resumed")
    j.add_argument("specs", nargs="*", help="baseline ids or glob patterns ('gammell2021/diabetes/*'), or one YAML "
                                            "file listing ids / {id, seeds}")
    j.add_argument("--scale", required=True, choices=["ci", "paper"])
    j.add_argument("--seeds", type=int, default=1, help="seeds per id (default 1; a sweep file may give a list)")
    j.add_argument("--device", help="override the configs' device (cpu, cuda)")
    j.add_argument("--results", default="results", help="results folder (default results/)")
    j.add_argument("--status", action="store_true", help="show each job's state instead of launching")
    j.add_argument("--report", default="reports/report.md", help="where the report goes once every job is done "
                                                                 "(default reports/report.md)")
    _data_args(j)
    _launch_args(j, default="local")

    o = sub.add_parser("report", help="Markdown 'paper / eqbench' table of every baseline that has been run")
    o.add_argument("--results", default="results")
    o.add_argument("--out", default="reports/report.md")

    g = sub.add_parser("regress", help="regression gate: BASE against HEAD side by side (times, memory, tracked "
                                      "GDU/energy/accuracy values); exit 1 on a regression")
    g.add_argument("--base", default="HEAD~1", help="commit to compare with (default HEAD~1)")
    g.add_argument("--head", default="HEAD", help="commit under test (default HEAD)")
    g.add_argument("--false-alarm", type=float, default=0.01,
                   help="the chance that a gate of an unchanged commit flags a time: each time's limit is measured "
                        "from its own rounds at this rate (default 0.01)")
    g.add_argument("--detect", type=float, default=1.25,
                   help="a time whose noise hides a slowdown of this size gets more rounds, up to the profile's "
                        "max_rounds (default 1.25)")
    g.add_argument("--factor", type=float,
                   help="one fixed limit for every time instead of the measured ones (e.g. 1.3)")
    g.add_argument("--mem-factor", type=float, default=1.10, help="a peak memory may grow up to this factor")
    g.add_argument("--profile", default="quick", help="benchmark set of suites/asv_benchmarks/config.json")
    g.add_argument("--rounds", type=int, help="timed rounds per commit (default: the profile's)")
    g.add_argument("--device", default="all", choices=["cpu", "cuda", "all"],
                   help="devices whose benchmarks run (default all: CPU, and CUDA when torch sees a GPU)")
    g.add_argument("--out", default="reports/regress", help="where the JSON report goes (default reports/regress)")

    h = sub.add_parser("history", help="asv history: benchmark the commits not yet in the results, publish the "
                                       "site and a summary into reports/history")
    h.add_argument("--range", dest="rev_range", help="git revision range (default: the last 10 commits of main)")
    h.add_argument("--bench", help="only the asv benchmarks matching this regex")
    h.add_argument("--no-publish", action="store_true", help="benchmark only")

    # lazy: subcommand
    from .sweep import FIG4_EPOCHS, FIG4_ID

    m = sub.add_parser("compare", help="Scellier et al. 2023's comparative study: the seven algorithms on the DCHN, "
                                       "same budget and seeds, and the paper's findings tested")
    m.add_argument("--dataset", default="mnist", help="the study's dataset (default mnist: the digits at ci scale)")
    m.add_argument("--scale", default="ci", choices=["ci", "paper"])
    m.add_argument("--seeds", type=int, default=5, help="seeds per algorithm (default 5; at least 2)")
    m.add_argument("--device", help="override the configs' device (cpu, cuda)")
    m.add_argument("--results", default="results", help="results folder (default results/)")
    m.add_argument("--out", default="reports/compare", help="where the report goes (default reports/compare)")
    _data_args(m)

    w = sub.add_parser("sweep-p", help="Gammell et al.'s Figure 4: test error against the rewiring probability p")
    w.add_argument("--id", default=FIG4_ID, help=f"a HOPFIELD baseline whose config is swept (default {FIG4_ID})")
    w.add_argument("--scale", default="paper", choices=["ci", "paper"])
    w.add_argument("--p", type=float, nargs="+", help="probabilities (default: the authors' 0 ∪ 1e-4 … 0.0788 grid)")
    w.add_argument("--seeds", type=int, default=1)
    w.add_argument("--epochs", type=int, default=FIG4_EPOCHS, help=f"epochs per point (default {FIG4_EPOCHS})")
    w.add_argument("--dataset", help="train on another dataset (e.g. mnist5k) than the config's")
    w.add_argument("--device", help="override the config's device (cpu, cuda)")
    w.add_argument("--results", default="results", help="results folder (default results/)")
    w.add_argument("--out", default="reports/fig4", help="where curve.json and curve.png go (default reports/fig4)")
    _data_args(w)
    return p


def _launch_args(p: argparse.ArgumentParser, default: str | None) -> None:
    # lazy: subcommand
    from .launch import LAUNCHERS

    p.add_argument("--launcher", choices=LAUNCHERS, default=default,
                   help="local: parallel processes; submitit: SLURM jobs" + ("" if default else
                                                                              " (default: seeds one after another)"))
    p.add_argument("--jobs", type=int, default=1, help="local launcher: jobs at a time (default 1)")
    p.add_argument("--threads", type=int, help="intra-op threads per job (default: cores / jobs)")
    p.add_argument("--slurm-profile", help="YAML of SLURM options (partition, time, gpus, mem_gb, cpus, sbatch: {…})")
    p.add_argument("--partition")
    p.add_argument("--time", type=int, help="minutes per job")
    p.add_argument("--gpus", type=int, help="GPUs per job")
    p.add_argument("--mem-gb", type=float)
    p.add_argument("--cpus", type=int, help="CPUs per job")
    p.add_argument("--sbatch", action="append", default=[], metavar="KEY=VALUE", help="an extra #SBATCH option")


def _launch(a: argparse.Namespace, specs: list[str]) -> int:
    # lazy: subcommand
    from .launch import expand, launch, slurm_options, state, status_table

    jobs = expand(specs, a.scale, a.seeds, a.device)
    if getattr(a, "status", False):
        print(status_table(jobs, a.results))
        return 0
    slurm = slurm_options(a.slurm_profile, partition=a.partition, time=a.time, gpus=a.gpus, mem_gb=a.mem_gb,
                          cpus=a.cpus, sbatch=a.sbatch) if a.launcher == "submitit" else None
    status = launch(jobs, a.launcher, n_jobs=a.jobs, threads=a.threads, results=a.results, slurm=slurm,
                    data_dir=a.data_dir, download=a.download, echo=lambda line: print(line, flush=True))
    if getattr(a, "report", None) and all(state(job, a.results)[0] == "done" for job in jobs):
        # lazy: subcommand
        from .report import write_report

        print(f"report: {write_report(a.results, a.report)}")
    return status


def _data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", help="folder of the full datasets (default $EQBENCH_DATA_DIR or ~/.eqbench/data)")
    p.add_argument("--download", action="store_true", help="let torchvision download a missing dataset")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _train(a: argparse.Namespace) -> int:
    # lazy: subcommand
    from .config import load_config
    from .train import Trainer

    if not (a.resume or a.config):
        raise ConfigError("eqbench train needs a config file or --resume DIR")
    if a.ddp is not None:  # N processes running this same command without --ddp, joined by init_from_env
        # lazy: subcommand
        from .distributed import spawn

        batch = load_config(Path(a.resume) / "config.yaml" if a.resume else a.config).data.batch_size
        if a.ddp > batch:
            raise ConfigError(f"--ddp {a.ddp} is larger than the batch ({batch}): each process needs an example")
        spawn(a.ddp, _train, argparse.Namespace(**{**vars(a), "ddp": None}))
        return 0
    # lazy: subcommand
    from .distributed import finish, init_from_env

    kw = {"data_dir": a.data_dir, "download": a.download, "progress": not a.quiet}
    if a.resume:
        saved = Path(a.resume) / "config.yaml"
        init_from_env(load_config(saved).device if saved.exists() else "cpu")  # a missing one: Trainer.resume says
        trainer = Trainer.resume(a.resume, **kw)
    else:
        cfg = load_config(a.config)
        init_from_env(cfg.device)
        trainer = Trainer(cfg, a.out or str(Path("results") / "train" / Path(a.config).stem), **kw)
    result = trainer.fit()
    finish()
    if not trainer.shard.main:
        return 0
    if "best_test_cost" in result:
        print(f"final test cost {result['final']['test_cost']:.4g} (best {result['best_test_cost']:.4g}); "
              f"run folder {trainer.out}")
    else:
        print(f"final test accuracy {result['final']['test_acc']:.2f}% (best {result['best_test_acc']:.2f}%); "
              f"run folder {trainer.out}")
    return 0


def _sweep(a: argparse.Namespace) -> int:
    # lazy: subcommand
    from .sweep import p_sweep

    curve = p_sweep(a.id, a.scale, a.p, seeds=a.seeds, epochs=a.epochs, dataset=a.dataset, results=a.results,
                    out=a.out, device=a.device, data_dir=a.data_dir, download=a.download, progress=not a.quiet)
    for d in curve["points"]:
        print(f"p = {d['p']:<9g} test error {d['test_error']:.4g} ± {d['std']:.2g}")
    print(f"curve: {a.out}/curve.json, {a.out}/curve.png")
    return 0


def _run(a: argparse.Namespace) -> int:
    # lazy: subcommand
    from rich.console import Console

    from .io import write_json
    from .runner import _folder, run_baseline

    if a.launcher is None:
        r = run_baseline(a.id, a.scale, seeds=a.seeds, device=a.device, results=a.results, data_dir=a.data_dir,
                         download=a.download, progress=not a.quiet)
    else:  # the seeds as jobs (eqbench.launch); the run.json is written by the job that finishes last
        status = _launch(a, [a.id])
        run_json = _folder(a.results, a.id, a.scale) / "run.json"
        if status or a.launcher == "submitit":
            return status
        r = json.loads(run_json.read_text())
    if a.json:
        write_json(a.json, r)
    m, e = r["measured"], r["expected"]
    expected = f"band [{e['band'][0]}, {e['band'][1]}] (eqbench's own measurement)" if "band" in e else (
        f"{e['value']}" + (f" ± {e['std']}" if e["std"] is not None else "") + f" [{e['provenance']}]"
        if e["value"] is not None else f"no published value [{e['provenance']}]")
    verdict = {True: "[green]pass[/]", False: "[bold red]FAIL[/]", None: "no verdict (nothing to compare)"}[r["pass"]]
    seeds = ", ".join(f"{v:.4g}" for v in m["per_seed"])
    Console().print(f"{r['id']} ({r['scale']}): {r['metric']} measured {m['mean']:.4g} ± {m['std']:.2g} over "
                    f"{len(m['per_seed'])} seed(s) [{seeds}]; expected {expected}: {verdict}")
    return 1 if r["pass"] is False else 0


def _gdu(a: argparse.Namespace) -> int:
    # lazy: subcommand
    from rich.console import Console
    from rich.table import Table

    from .cases import build_case
    from .checks.gdu import gdu_ladder, prepare, report
    from .io import write_json
    from .models import MODELS
    from .rules import EP

    overrides = dict(a.overrides)
    layered = {"act": a.act, "loss": a.loss, "softmax": a.softmax}  # options of Laborieux's models only
    accepted = inspect.signature(MODELS[a.model]).parameters if a.model in MODELS else {}
    if not any(p.kind is p.VAR_KEYWORD for p in accepted.values()):
        layered = {k: v for k, v in layered.items() if k in accepted}
    model, x, y = build_case(a.model, sizes=a.sizes, dtype=a.dtype, batch=a.batch, seed=a.seed, data=a.data,
                             **layered, **overrides)
    rule = EP(beta=a.beta, T1=a.T1, T2=a.T2, estimator="one_sided")
    run = prepare(model, x, y, rule)
    rep = report(run, rule, a.beta, a.estimator)
    out = {"model": a.model, "dtype": a.dtype, "estimator": a.estimator, "beta": a.beta, "T1": a.T1,
           "T2": a.T2, "batch": a.batch, "seed": a.seed, "data": a.data,
           "config": {"sizes": a.sizes, "act": a.act, "loss": a.loss, "softmax": a.softmax, **overrides}}
    d = rep.to_dict()
    keys = ("free_residual", "rel_error", "rel_error_step", "sign_error", "sign_error_live", "layers")
    out.update({k: d[k] for k in keys})
    table = Table(title=f"GDU {a.model} ({a.dtype}, {a.estimator}, β={a.beta:g}, T1={a.T1}, T2={a.T2})")
    for col in ("layer", "kind", "rel. error", "RMSE (Laborieux)", "sign error"):
        table.add_column(col, justify="right" if col != "layer" else "left")
    for layer in rep.layers:
        table.add_row(layer.key, layer.kind, f"{layer.rel_error:.2e}", f"{layer.rmse:.2e}", f"{layer.sign_error:.3f}")
    console = Console()
    console.print(table)
    console.print(f"free-phase residual {rep.free_residual:.1e}; worst relative error {rep.rel_error:.2e}")
    if a.sweep:
        # lazy: subcommand
        from .kit import ladder_lines

        lad = gdu_ladder(run, rule)
        out["ladder"] = lad.to_dict()
        for line in ladder_lines(lad):
            console.print(line, markup=False, highlight=False)
    write_json(a.json, out)
    if a.plot:
        # lazy: subcommand
        from .checks.gdu import ep_for, symmetric_mean
        from .plots import plot_gdu

        ep = ep_for(run, rule, a.beta)
        if a.estimator == "symmetric":
            ep = symmetric_mean(ep, ep_for(run, rule, -a.beta))
        plot_gdu(ep, run.bptt, a.plot, title=f"{a.model}: EP (dashed) vs BPTT (solid), {a.estimator} β={a.beta:g}")
    return 0


def _value(b) -> str:
    if b.value is None:
        return "NOT FOUND"
    if isinstance(b.value, str):
        return b.value
    unit = {"percent": " %", "ratio": "", "cost": ""}[b.unit]
    return f"{b.value:g}" + (f" ± {b.std:g}" if b.std is not None else "") + unit


def _baselines(a: argparse.Namespace) -> int:
    # lazy: subcommand
    from .registry import load_registry

    registry = load_registry()
    if a.json:
        print(json.dumps([b.to_summary() for b in registry.values()], indent=2))
        return 0
    # lazy: subcommand
    from rich import box
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Published baselines ({len(registry)} entries; value null = NOT FOUND in baselines.md)",
                  box=box.SIMPLE_HEAD)
    for col in ("id", "dataset", "metric", "value ± std", "provenance", "scales"):
        value = col == "value ± std"  # a relative claim is a sentence: cut here, whole in --json
        table.add_column(col, justify="right" if value else "left", no_wrap=True, max_width=32 if value else None)
    for b in registry.values():
        table.add_row(b.id, b.dataset, b.metric, _value(b), b.provenance, ", ".join(b.scales) or "–")
    console = Console()
    if not console.is_terminal:  # piped or captured: every column whole rather than squeezed into 80 columns
        console = Console(width=200)
    console.print(table)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "gdu":
            return _gdu(args)
        if args.command == "check":
            # lazy: subcommand
            from .kit import run_check

            return run_check(args.factory, args.config, rule=args.rule, json_out=args.json, T1=args.T1, T2=args.T2,
                             betas=args.betas, dtype=args.dtype)
        if args.command == "zoo":
            # lazy: subcommand
            from .zoo import run_zoo_command

            return run_zoo_command(args.folder, args.only, args.json, args.table, args.readme)
        if args.command == "estimate":
            # lazy: subcommand
            from .estimate import run_estimate

            return run_estimate(args.ids, scale=args.scale, device=args.device, batches=args.batches,
                                every=args.all, json_out=args.json, cuda_graphs=args.cuda_graphs)
        if args.command == "bench":
            # lazy: subcommand
            from .bench import run_bench

            return run_bench(args.out)
        if args.command == "baselines":
            return _baselines(args)
        if args.command == "train":
            return _train(args)
        if args.command == "run":
            return _run(args)
        if args.command == "regress":
            # lazy: subcommand
            from .regress import run_gate

            status, _ = run_gate(args.base, args.head, factor=args.factor, false_alarm=args.false_alarm,
                                 detect=args.detect, mem_factor=args.mem_factor,
                                 profile=args.profile, rounds=args.rounds, device=args.device, out=args.out)
            return status
        if args.command == "history":
            # lazy: subcommand
            from .history import run_history

            return run_history(args.rev_range, bench=args.bench, publish=not args.no_publish)
        if args.command == "sweep":
            return _launch(args, args.specs)
        if args.command == "sweep-p":
            return _sweep(args)
        if args.command == "compare":
            # lazy: subcommand
            from .compare import compare, markdown

            rep = compare(args.dataset, args.scale, args.seeds, results=args.results, out=args.out,
                          device=args.device, data_dir=args.data_dir, download=args.download,
                          progress=not args.quiet)
            print(markdown(rep))
            return 0
        if args.command == "report":
            # lazy: subcommand
            from .report import write_report

            print(f"report: {write_report(args.results, args.out)}")
            return 0
        raise ConfigError(f"unknown command {args.command!r}")
    except EqbenchError as e:
        print(f"eqbench: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
