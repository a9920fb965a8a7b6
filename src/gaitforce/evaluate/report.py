"""Evaluation reports: tables (Markdown + CSV), figures (PNG) and the settings used, linked from ``index.md``.

:func:`write_report` takes what :mod:`gaitforce.evaluate` produces:

- ``per_trial``: :func:`gaitforce.evaluate.metrics.per_trial_metrics` rows (one per stance and target; extra columns
  such as ``subject`` or ``pathology`` can be used to break the summary down with ``by=``);
- ``predictions``: :func:`gaitforce.evaluate.tables.predictions_frame` frames (``stance_id``, ``stance_pct``,
  ``<target>_ref``, ``<target>_pred``).

Figures, per target: predicted vs reference over % stance for the best, median and worst stance by RMSE (as
in the seed paper's Figs 2-5), mean +- SD over all stances of both curves, and a scatter of predicted vs
measured frames with the identity line.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from gaitforce._plot import subplots  # noqa: E402
from gaitforce.errors import GaitforceError  # noqa: E402
from gaitforce.evaluate.metrics import pearson_r  # noqa: E402
from gaitforce.evaluate.tables import decimals, summarise

REF_COLOR, PRED_COLOR = "#222222", "#d62728"
PCT_GRID = np.linspace(0.0, 100.0, 101)


# ---------------------------------------------------------------------------------------------------------
# tables
# ---------------------------------------------------------------------------------------------------------
def markdown_table(df: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table of ``df`` (no index), cells as text."""
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def _cell(v) -> str:
    if isinstance(v, float):
        if not np.isfinite(v):
            return "-"
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v).replace("|", "\\|")


def write_table(df: pd.DataFrame, out_dir: Path, name: str) -> tuple[Path, Path]:
    """``name.csv`` and ``name.md`` of ``df`` in ``out_dir``."""
    csv, md = out_dir / f"{name}.csv", out_dir / f"{name}.md"
    df.to_csv(csv, index=False)
    md.write_text(markdown_table(df))
    return csv, md


# ---------------------------------------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------------------------------------
def representative_stances(per_trial: pd.DataFrame, target: str) -> list[tuple[str, Any]]:
    """[("best", id), ("median", id), ("worst", id)] by RMSE for ``target`` (fewer when fewer stances).

    The median is the stance at position (n - 1) // 2 of the RMSE order; stances with NaN RMSE are skipped.
    """
    rows = per_trial[(per_trial["target"] == target) & np.isfinite(per_trial["rmse"])]
    rows = rows.sort_values("rmse", kind="stable")
    if rows.empty:
        return []
    ids = rows["stance_id"].tolist()
    picks = [("best", ids[0]), ("median", ids[(len(ids) - 1) // 2]), ("worst", ids[-1])]
    seen, out = set(), []
    for label, sid in picks:
        if sid not in seen:
            seen.add(sid)
            out.append((label, sid))
    return out


def _unit_of(per_trial: pd.DataFrame, target: str) -> str:
    rows = per_trial.loc[per_trial["target"] == target, "unit"] if "unit" in per_trial else []
    return str(rows.iloc[0]) if len(rows) else "N"


def plot_representative(predictions, per_trial, target: str, path: Path, *, title: str = "") -> Path | None:
    picks = representative_stances(per_trial, target)
    if not picks:
        return None
    unit = _unit_of(per_trial, target)
    metrics = per_trial[per_trial["target"] == target].set_index("stance_id")
    fig, axes = subplots(1, len(picks), figsize=(4.2 * len(picks), 3.6), sharey=True, squeeze=False)
    for ax, (label, sid) in zip(axes[0], picks):
        fr = predictions[predictions["stance_id"] == sid].sort_values("stance_pct")
        ax.plot(fr["stance_pct"], fr[f"{target}_ref"], color=REF_COLOR, lw=2, label="reference")
        ax.plot(fr["stance_pct"], fr[f"{target}_pred"], color=PRED_COLOR, lw=2, ls="--", label="predicted")
        m = metrics.loc[sid]
        m = m.iloc[0] if isinstance(m, pd.DataFrame) else m
        ax.set_title(f"{label}: {sid}\nRMSE {m['rmse']:.{decimals(unit)}f} {unit}, r = {_fmt_r(m['r'])}", fontsize=10)
        ax.set_xlabel("stance (%)")
        ax.set_xlim(0, 100)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"{target} ({unit})")
    axes[0][0].legend(loc="best", fontsize=9)
    fig.suptitle(title or f"{target}: best, median and worst stance by RMSE", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def _fmt_r(r) -> str:
    return "n/a" if not np.isfinite(r) else f"{r:.2f}"


def resample_stances(predictions: pd.DataFrame, column: str) -> np.ndarray:
    """(n_stances, 101) of ``column`` linearly interpolated onto 0, 1, ..., 100 % stance (NaN frames skipped)."""
    curves = []
    for _, fr in predictions.groupby("stance_id", sort=False):
        fr = fr.sort_values("stance_pct")
        x, y = fr["stance_pct"].to_numpy(float), fr[column].to_numpy(float)
        ok = np.isfinite(x) & np.isfinite(y)
        if ok.sum() >= 2:
            curves.append(np.interp(PCT_GRID, x[ok], y[ok], left=np.nan, right=np.nan))
    return np.array(curves) if curves else np.empty((0, PCT_GRID.size))


def plot_ensemble(predictions, per_trial, target: str, path: Path, *, title: str = "") -> Path | None:
    ref, pred = resample_stances(predictions, f"{target}_ref"), resample_stances(predictions, f"{target}_pred")
    if len(ref) == 0:
        return None
    unit = _unit_of(per_trial, target)
    fig, ax = subplots(figsize=(6.0, 4.0))
    for curves, color, label, ls in ((ref, REF_COLOR, "reference", "-"), (pred, PRED_COLOR, "predicted", "--")):
        mean, sd = np.nanmean(curves, axis=0), np.nanstd(curves, axis=0)
        ax.fill_between(PCT_GRID, mean - sd, mean + sd, color=color, alpha=0.15, lw=0)
        ax.plot(PCT_GRID, mean, color=color, lw=2, ls=ls, label=f"{label} mean \u00b1 SD")
    ax.set_xlabel("stance (%)")
    ax.set_ylabel(f"{target} ({unit})")
    ax.set_xlim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=9)
    ax.set_title(title or f"{target}: all {len(ref)} stances", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def plot_scatter(predictions, per_trial, target: str, path: Path, *, title: str = "") -> Path | None:
    t = predictions[f"{target}_ref"].to_numpy(float)
    p = predictions[f"{target}_pred"].to_numpy(float)
    ok = np.isfinite(t) & np.isfinite(p)
    if not ok.any():
        return None
    t, p = t[ok], p[ok]
    unit = _unit_of(per_trial, target)
    lo, hi = float(min(t.min(), p.min())), float(max(t.max(), p.max()))
    pad = 0.03 * (hi - lo or 1.0)
    fig, ax = subplots(figsize=(4.8, 4.6))
    if len(t) > 5000:
        hb = ax.hexbin(t, p, gridsize=60, bins="log", mincnt=1, cmap="viridis")
        fig.colorbar(hb, ax=ax, label="frames")
    else:
        ax.scatter(t, p, s=6, alpha=0.4, color=PRED_COLOR, lw=0, label="frames")
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color=REF_COLOR, lw=1, label="identity")
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_aspect("equal")
    ax.set_xlabel(f"measured {target} ({unit})")
    ax.set_ylabel(f"predicted {target} ({unit})")
    rmse = float(np.sqrt(np.mean((p - t) ** 2)))
    ax.set_title(title or f"{target}: {len(t)} frames\npooled RMSE {rmse:.{decimals(unit)}f} {unit}, r = {_fmt_r(pearson_r(t, p))}",
                 fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


# ---------------------------------------------------------------------------------------------------------
# the report
# ---------------------------------------------------------------------------------------------------------
def _json_default(obj):
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, (np.ndarray, tuple, set)):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    return repr(obj)


def write_report(
    out_dir: str | os.PathLike,
    *,
    per_trial: pd.DataFrame,
    predictions: pd.DataFrame,
    settings: Mapping[str, Any],
    title: str,
    by: str | Sequence[str] | None = None,
    extra_sections: Sequence[tuple[str, str]] = (),
) -> Path:
    """Write tables, figures, ``settings.json`` and an ``index.md`` linking them; returns the index path.

    ``by``: per_trial column(s) (e.g. ``subject``, ``pathology``) for an extra summary table broken down by
    group. ``extra_sections``: (heading, Markdown) pairs placed after the summary (e.g. model comparisons).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    need = [c for c in ("stance_id", "target", "rmse", "r") if c not in per_trial]
    if need:
        raise GaitforceError(f"per-trial table lacks columns {need}")
    if not {"stance_id", "stance_pct"} <= set(predictions.columns):
        raise GaitforceError("predictions need stance_id and stance_pct columns")
    targets = list(pd.unique(per_trial["target"]))
    absent = [t for t in targets if f"{t}_ref" not in predictions or f"{t}_pred" not in predictions]
    if absent:
        raise GaitforceError(f"predictions lack <target>_ref/_pred columns for {absent}")

    per_trial.to_csv(out / "per_trial.csv", index=False)
    predictions.to_csv(out / "predictions.csv.gz", index=False)
    summary = summarise(per_trial)
    write_table(summary, out, "summary")
    (out / "settings.json").write_text(json.dumps(dict(settings), indent=2, default=_json_default))

    lines = [f"# {title}", "", f"{per_trial['stance_id'].nunique()} stance phases, "
             f"{len(predictions)} frames. Mean (SD) over stances; r is Pearson's correlation per stance.", "",
             "## Summary", "", markdown_table(summary)]
    by_list = [] if by is None else ([by] if isinstance(by, str) else list(by))
    for col in by_list:
        if col in per_trial:
            grouped = summarise(per_trial, by=col)
            write_table(grouped, out, f"summary_by_{col}")
            lines += [f"### By {col}", "", markdown_table(grouped)]
    for heading, body in extra_sections:
        lines += [f"## {heading}", "", body, ""]
    lines += ["## Figures", ""]
    for t in targets:
        figs = [
            (plot_representative(predictions, per_trial, t, out / f"{t}_representative.png"),
             "best, median and worst stance by RMSE"),
            (plot_ensemble(predictions, per_trial, t, out / f"{t}_ensemble.png"), "mean \u00b1 SD over stances"),
            (plot_scatter(predictions, per_trial, t, out / f"{t}_scatter.png"), "predicted vs measured frames"),
        ]
        lines += [f"### {t}", ""]
        for path, caption in figs:
            if path is not None:
                lines += [f"![{t}: {caption}]({path.name})", ""]
    lines += ["## Files", "", "- [summary.csv](summary.csv), [summary.md](summary.md): the table above",
              "- [per_trial.csv](per_trial.csv): every stance's metrics",
              "- [predictions.csv.gz](predictions.csv.gz): every frame's reference and prediction",
              "- [settings.json](settings.json): everything used to make this report", ""]
    index = out / "index.md"
    index.write_text("\n".join(lines))
    return index
