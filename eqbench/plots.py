"""Figures drawn from the checks' reports (matplotlib, non-interactive backend)."""

from __future__ import annotations

import itertools
import math
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from .checks.gdu import Series  # noqa: E402
from .checks.order import GDULadder  # noqa: E402
from .io import save_figure  # noqa: E402


def plot_gdu(ep: Series, bptt: Series, path: str | os.PathLike, title: str = "", n_elements: int = 4,
             seed: int = 0) -> None:
    """EP updates (dashed) against BPTT gradients (solid) over the nudged steps, one panel per layer,
    a few random elements each — the figure of Laborieux's ``gducheck``."""
    keys = [k for k in bptt if bptt[k].abs().sum() > 0]
    cols = min(3, len(keys))
    rows = math.ceil(len(keys) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
    g = torch.Generator().manual_seed(seed)
    for ax, key in zip(axes.flat, keys):
        b, e = bptt[key].flatten(1), ep[key].flatten(1)
        live = torch.nonzero(b.abs().sum(0) > 0).flatten()
        pick = live[torch.randperm(len(live), generator=g)[:n_elements]]
        first = 1 if key.startswith("s") and key[1:].isdigit() else 0
        steps = range(first, first + b.shape[0])
        for j, idx in enumerate(pick.tolist()):
            color = f"C{j}"
            ax.plot(steps, b[:, idx].cpu().numpy(), color=color, lw=1.5)
            ax.plot(steps, e[:, idx].cpu().numpy(), color=color, lw=1.5, ls="--")
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("step k before the end")
        ax.axhline(0, color="0.8", lw=0.5)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    fig.suptitle(title or "EP (dashed) vs BPTT (solid)", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def plot_ladder(lad: GDULadder, path: str | os.PathLike, title: str = "") -> None:
    """Relative EP-vs-BPTT error against β, log–log, of each estimator's deciding key, with its noise floor (dotted)
    and its asymptotic range (the thick part), order and verdict in the legend."""
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    for (variant, marker), color in zip((("one_sided", "o"), ("symmetric", "s")), ("C0", "C1")):
        v = lad.verdict(variant)
        key = v.key or next(iter(lad.errors[variant]))
        rel, n = lad.relative(variant, key), lad.bptt_norm[key] or 1.0
        label = f"{variant.replace('_', '-')} ({key}): {v.verdict}" + (f", order {v.slope:.2f}" if v.range else "")
        ax.loglog(lad.betas, rel, marker + "-", color=color, lw=1, ms=4, label=label)
        ax.loglog(lad.betas, [f / n for f in lad.floors[key]], ":", color=color, lw=1)
        if v.range is not None:
            pts = [(b, e) for b, e in zip(lad.betas, rel) if v.range[1] <= b <= v.range[0]]
            ax.loglog(*zip(*pts), "-", color=color, lw=3.5, alpha=0.5)
    if lad.kink_beta is not None:
        ax.axvline(lad.kink_beta, color="0.6", lw=0.8, ls="--", label=f"no kink crossed at β ≤ {lad.kink_beta:.0e}")
    ax.set_xlabel("β")
    ax.set_ylabel("relative error ‖EP − BPTT‖ / ‖BPTT‖")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", lw=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def _per_epoch(history: list[dict], path: str | os.PathLike, series: dict[str, str], ylabel: str, title: str,
               hline: float | None = None, logy: bool = False) -> None:
    """One line per (label → metric key) against the epoch; ``logy``: log scale, values ≤ 0 left as gaps."""
    fig, ax = plt.subplots(figsize=(4.8, 3.4))
    epochs = [h["epoch"] for h in history]
    for marker, (label, key) in zip(itertools.cycle("os^v<>"), series.items()):
        v = [h.get(key, float("nan")) for h in history]
        if logy:
            v = [x if x > 0 else float("nan") for x in v]
        ax.plot(epochs, v, f"{marker}-", ms=3, label=label)
    if logy:
        ax.set_yscale("log")
    if hline is not None:
        ax.axhline(hline, color="0.7", lw=0.6, ls="--")
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both" if logy else "major", lw=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def plot_accuracy(history: list[dict], path: str | os.PathLike, title: str = "") -> None:
    """Train and test accuracy per epoch (the mean cost for a regression run)."""
    if "test_cost" in history[-1]:
        _per_epoch(history, path, {"train": "train_cost", "test": "test_cost"}, "cost ½‖y − ŷ‖²", title)
    else:
        _per_epoch(history, path, {"train": "train_acc", "test": "test_acc"}, "accuracy (%)", title)


def plot_batch_metrics(batches: list[dict[str, float]], path: str | os.PathLike, title: str = "") -> None:
    """A model's per-batch metrics, one line each, log scale (e.g. Gammell et al.'s per-layer correction rate
    ‖dW_k‖/√n_k, Figs. 3, 5). A value ≤ 0 (an update that is exactly zero) leaves a gap rather than a spike
    to the bottom of the log axis."""
    fig, ax = plt.subplots(figsize=(5.4, 3.4))
    for key in batches[0]:
        r = torch.tensor([b.get(key, float("nan")) for b in batches], dtype=torch.float64)
        r[r <= 0] = float("nan")
        ax.semilogy(r.numpy(), lw=0.6, label=key)
    ax.set_xlabel("batch")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", lw=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def plot_flips(history: list[dict], path: str | os.PathLike, title: str = "") -> None:
    """Per-layer fraction of binary weights flipped per batch, averaged over each epoch, log scale
    (Laydevant et al.'s logged ``nb_changes``); an epoch without flips leaves a gap."""
    keys = sorted((k for k in history[-1] if k.startswith("flip_frac/")), key=lambda k: int(k.split("/")[1]))
    _per_epoch(history, path, {f"layer {k.split('/')[1]}": k for k in keys}, "flipped weights per batch (fraction)",
               title, logy=True)


def plot_activations(state: list[torch.Tensor], path: str | os.PathLike) -> None:
    """Histogram of the neural activations of each layer at the free equilibrium."""
    fig, axes = plt.subplots(1, len(state), figsize=(3.0 * len(state), 2.6), squeeze=False)
    for i, (ax, s) in enumerate(zip(axes.flat, state)):
        ax.hist(s.detach().flatten().float().cpu().numpy(), bins=40, color=f"C{i}")
        ax.set_title(f"layer {i + 1}", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def plot_angles(history: list[dict], path: str | os.PathLike, title: str = "") -> None:
    """Angle (degrees) between each layer's update and the BP gradient, per epoch."""
    keys = sorted(k for k in history[-1] if k.startswith("angle/"))
    _per_epoch(history, path, {k.split("/", 1)[1]: k for k in keys}, "angle to BP gradient (°)", title, hline=90)


def plot_p_sweep(curve: dict, path: str | os.PathLike) -> None:
    """Test error against the rewiring probability p (symlog axis), with the published points when present
    (Gammell et al. Figure 4; ``curve`` as written by eqbench.sweep.p_sweep)."""
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    pts = curve["points"]
    ax.errorbar([d["p"] for d in pts], [d["test_error"] for d in pts], yerr=[d["std"] for d in pts], fmt="o-",
                ms=3, capsize=2, label=f"eqbench ({curve['seeds']} seed(s), {curve['dataset']})")
    if curve["published"]:
        ax.plot([d["p"] for d in curve["published"]], [d["test_error"] for d in curve["published"]], "s",
                color="C3", ms=4, label="Gammell et al. (REPO-LOG)")
    ax.set_xscale("symlog", linthresh=1e-4)
    ax.set_xlabel("rewiring probability p")
    ax.set_ylabel(f"test error after {curve['epochs']} epochs ({curve['unit']})")
    ax.set_title(f"{curve['id']} ({curve['scale']}): Figure 4", fontsize=9)
    ax.grid(True, which="both", lw=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
