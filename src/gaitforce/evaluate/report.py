"""Evaluation reports: tables (Markdown + CSV), figures (PNG) and the settings used, linked from ``index.md``,
and ``index.html`` beside it: the same report as one self-contained page (figures embedded as base64 PNG, links
relative to the report), for a browser or an e-mail attachment (:func:`write_html`).

:func:`write_report` takes what :mod:`gaitforce.evaluate` produces:

- ``per_trial``: :func:`gaitforce.evaluate.metrics.per_trial_metrics` rows (one per stance and target; extra columns
  such as ``subject`` or ``pathology`` can be used to break the summary down with ``by=``);
- ``predictions``: :func:`gaitforce.evaluate.tables.predictions_frame` frames (``stance_id``, ``stance_pct``,
  ``<target>_ref``, ``<target>_pred``).

Figures, per target: the reference and every model (the network and the baseline, ``others=``) over % stance
for the best, median and worst stance by RMSE (as in Rane et al. 2019, Figs 2-5), mean +- SD over all stances
of every curve, and a scatter of predicted vs reference frames with the identity line. The reference is named
by its source (``reference=``, e.g. "in vivo implant" or "OpenSim"). Forces are drawn in body weights (BW) where
every stance's subject mass is known, else in N; a plausibility note is added when a stance's peak knee force
(reference or prediction) leaves the usual walking range of 1-4 BW. A ``<target>_pred_sd`` column, where the
predictions carry one, is drawn as a +-1 SD band around the prediction.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from gaitforce._plot import subplots  # noqa: E402
from gaitforce.errors import GaitforceError  # noqa: E402
from gaitforce.evaluate.metrics import pearson_r  # noqa: E402
from gaitforce.evaluate.tables import decimals, summarise

REF_COLOR, PRED_COLOR = "#222222", "#d62728"
#: (colour, line style) of the models after the first (the baseline second)
OTHER_STYLES = [("#1f77b4", ":"), ("#2ca02c", "-."), ("#9467bd", (0, (5, 2, 1, 2))), ("#ff7f0e", (0, (1, 1)))]
PCT_GRID = np.linspace(0.0, 100.0, 101)
#: usual range of the peak knee contact force in level walking, body weights (the plausibility note's range)
PLAUSIBLE_PEAK_BW = (1.0, 4.0)


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


def stance_body_weights(per_trial: pd.DataFrame, body_weight: Mapping[str, float] | None = None) -> dict:
    """stance_id -> body weight (N): ``body_weight`` if given, else from a ``mass`` (kg) column of ``per_trial``
    (as :func:`gaitforce.evaluate.metrics.with_stance_info` adds it); stances without a mass are left out."""
    if body_weight is not None:
        return {k: float(v) for k, v in body_weight.items() if v is not None and np.isfinite(v) and v > 0}
    if "mass" not in per_trial:
        return {}
    from gaitforce.constants import G

    m = per_trial.drop_duplicates("stance_id").set_index("stance_id")["mass"].astype(float)
    return (m[m.notna() & (m > 0)] * G).to_dict()


class _Scale:
    """Draws a target in BW when every plotted stance has a body weight and the unit is N, else in its unit."""

    def __init__(self, unit: str, bw: Mapping[str, float], stance_ids):
        ids = list(stance_ids)
        self.bw = dict(bw) if unit == "N" and ids and all(i in bw for i in ids) else None
        self.unit = "BW" if self.bw is not None else unit

    def __call__(self, values, sid) -> np.ndarray:
        v = np.asarray(values, dtype=float)
        return v / self.bw[sid] if self.bw is not None else v

    def label(self, target: str, who: str = "") -> str:
        return f"{who + ' ' if who else ''}{target} ({self.unit})"


def _models(predictions: pd.DataFrame, others: Mapping[str, pd.DataFrame] | None, model: str):
    """[(name, frame, colour, line style)]: the report's model first (red dashed), then ``others``."""
    out = [(model, predictions, PRED_COLOR, "--")]
    for i, (name, frame) in enumerate((others or {}).items()):
        color, ls = OTHER_STYLES[i % len(OTHER_STYLES)]
        out.append((name, frame, color, ls))
    return out


def plot_representative(predictions, per_trial, target: str, path: Path, *, title: str = "", others=None,
                        model: str = "predicted", reference: str = "reference",
                        body_weight: Mapping[str, float] | None = None) -> Path | None:
    picks = representative_stances(per_trial, target)
    if not picks:
        return None
    unit = _unit_of(per_trial, target)
    scale = _Scale(unit, stance_body_weights(per_trial, body_weight), [sid for _, sid in picks])
    metrics = per_trial[per_trial["target"] == target].set_index("stance_id")
    fig, axes = subplots(1, len(picks), figsize=(4.2 * len(picks), 3.8), sharey=True, squeeze=False)
    for ax, (label, sid) in zip(axes[0], picks):
        fr = predictions[predictions["stance_id"] == sid].sort_values("stance_pct")
        ax.plot(fr["stance_pct"], scale(fr[f"{target}_ref"], sid), color=REF_COLOR, lw=2.2, label=reference)
        for name, frame, color, ls in _models(predictions, others, model):
            f = frame[frame["stance_id"] == sid].sort_values("stance_pct")
            if f.empty:
                continue
            y = scale(f[f"{target}_pred"], sid)
            if f"{target}_lo" in f and f"{target}_hi" in f and np.isfinite(f[f"{target}_lo"]).any():
                ax.fill_between(f["stance_pct"], scale(f[f"{target}_lo"], sid), scale(f[f"{target}_hi"], sid),
                                color=color, alpha=0.18, lw=0, label=f"{name}: interval")
            ax.plot(f["stance_pct"], y, color=color, lw=1.8, ls=ls, label=name)
            if f"{target}_pred_sd" in f:
                sd = scale(f[f"{target}_pred_sd"], sid)
                ax.fill_between(f["stance_pct"], y - sd, y + sd, color=color, alpha=0.15, lw=0)
        m = metrics.loc[sid]
        m = m.iloc[0] if isinstance(m, pd.DataFrame) else m
        ax.set_title(f"{label}: {sid}\n{model}: RMSE {m['rmse']:.{decimals(unit)}f} {unit}, r = {_fmt_r(m['r'])}",
                     fontsize=9)
        ax.set_xlabel("stance (%)")
        ax.set_xlim(0, 100)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(scale.label(target))
    axes[0][0].legend(loc="best", fontsize=8)
    fig.suptitle(title or f"{target}: best, median and worst stance of {model} by RMSE; reference: {reference}",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def interval_summary(predictions: pd.DataFrame, targets: Sequence[str]) -> pd.DataFrame:
    """Per target whose predictions carry ``<target>_lo``/``_hi`` (an ensemble's calibrated interval): the
    fraction of frames inside it (pooled, and the mean of the per-stance fractions), the lowest stance's, the
    mean width, and the frame and stance counts. Empty when no target has an interval."""
    from gaitforce.evaluate.conformal import interval_coverage

    rows = []
    for t in targets:
        if f"{t}_lo" not in predictions or f"{t}_hi" not in predictions:
            continue
        c = interval_coverage(predictions[f"{t}_ref"], predictions[f"{t}_lo"], predictions[f"{t}_hi"],
                              predictions["stance_id"].to_numpy())
        if not c["n_frames"]:
            continue
        rows.append({"target": t, "coverage_pct": 100 * c["coverage"], "stance_coverage_pct": 100 * c["stance_coverage"],
                     "min_stance_coverage_pct": 100 * c["stance_coverage_min"], "mean_width": c["width"],
                     "frames": c["n_frames"], "stances": c["n_stances"]})
    return pd.DataFrame(rows)


def _fmt_r(r) -> str:
    return "n/a" if not np.isfinite(r) else f"{r:.2f}"


def resample_stances(predictions: pd.DataFrame, column: str, scale=None) -> np.ndarray:
    """(n_stances, 101) of ``column`` linearly interpolated onto 0, 1, ..., 100 % stance (NaN frames skipped);
    ``scale(values, stance_id)``, if given, is applied first (e.g. N -> BW)."""
    curves = []
    for sid, fr in predictions.groupby("stance_id", sort=False):
        fr = fr.sort_values("stance_pct")
        x, y = fr["stance_pct"].to_numpy(float), fr[column].to_numpy(float)
        if scale is not None:
            y = scale(y, sid)
        ok = np.isfinite(x) & np.isfinite(y)
        if ok.sum() >= 2:
            curves.append(np.interp(PCT_GRID, x[ok], y[ok], left=np.nan, right=np.nan))
    return np.array(curves) if curves else np.empty((0, PCT_GRID.size))


def plot_ensemble(predictions, per_trial, target: str, path: Path, *, title: str = "", others=None,
                  model: str = "predicted", reference: str = "reference",
                  body_weight: Mapping[str, float] | None = None) -> Path | None:
    unit = _unit_of(per_trial, target)
    scale = _Scale(unit, stance_body_weights(per_trial, body_weight), pd.unique(predictions["stance_id"]))
    ref = resample_stances(predictions, f"{target}_ref", scale)
    if len(ref) == 0:
        return None
    fig, ax = subplots(figsize=(6.4, 4.2))
    series = [(reference, ref, REF_COLOR, "-")] + [
        (name, resample_stances(frame, f"{target}_pred", scale), color, ls)
        for name, frame, color, ls in _models(predictions, others, model)]
    for label, curves, color, ls in series:
        if len(curves) == 0:
            continue
        mean, sd = np.nanmean(curves, axis=0), np.nanstd(curves, axis=0)
        ax.fill_between(PCT_GRID, mean - sd, mean + sd, color=color, alpha=0.12, lw=0)
        ax.plot(PCT_GRID, mean, color=color, lw=2, ls=ls, label=f"{label} mean \u00b1 SD")
    ax.set_xlabel("stance (%)")
    ax.set_ylabel(scale.label(target))
    ax.set_xlim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    ax.set_title(title or f"{target}: all {len(ref)} test stances", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def plot_scatter(predictions, per_trial, target: str, path: Path, *, title: str = "", model: str = "predicted",
                 reference: str = "reference", body_weight: Mapping[str, float] | None = None) -> Path | None:
    unit = _unit_of(per_trial, target)
    scale = _Scale(unit, stance_body_weights(per_trial, body_weight), pd.unique(predictions["stance_id"]))
    t, p = [], []
    for sid, fr in predictions.groupby("stance_id", sort=False):
        t.append(scale(fr[f"{target}_ref"], sid))
        p.append(scale(fr[f"{target}_pred"], sid))
    if not t:
        return None
    t, p = np.concatenate(t), np.concatenate(p)
    ok = np.isfinite(t) & np.isfinite(p)
    if not ok.any():
        return None
    t, p = t[ok], p[ok]
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
    ax.set_xlabel(scale.label(target, reference))
    ax.set_ylabel(scale.label(target, model))
    rmse = float(np.sqrt(np.mean((p - t) ** 2)))
    dec = 2 if scale.unit == "BW" else decimals(unit)
    ax.set_title(title or f"{target}: {len(t)} frames\npooled RMSE {rmse:.{dec}f} {scale.unit}, "
                 f"r = {_fmt_r(pearson_r(t, p))}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def plausibility_note(predictions, target: str, unit: str, body_weight: Mapping[str, float], *, others=None,
                      model: str = "predicted", reference: str = "reference",
                      plausible=PLAUSIBLE_PEAK_BW) -> str:
    """A sentence when stance peaks of a knee force target (reference or any model, in BW) leave
    ``plausible`` (1-4 BW, the usual peak knee contact force of level walking); "" otherwise, and for other
    targets, other units or stances without a body weight."""
    if unit != "N" or not target.startswith("knee") or not body_weight:
        return ""
    lo, hi = plausible
    series = [(reference, predictions, f"{target}_ref")] + [
        (name, frame, f"{target}_pred") for name, frame, _, _ in _models(predictions, others, model)]
    parts = []
    for name, frame, col in series:
        peaks = [float(np.nanmax(fr[col].to_numpy(float))) / body_weight[sid]
                 for sid, fr in frame.groupby("stance_id", sort=False)
                 if sid in body_weight and np.isfinite(fr[col].to_numpy(float)).any()]
        if not peaks:
            continue
        peaks = np.array(peaks)
        high, low = int((peaks > hi).sum()), int((peaks < lo).sum())
        if high or low:
            what = []
            if high:
                what.append(f"{high} above {hi:g} BW")
            if low:
                what.append(f"{low} below {lo:g} BW")
            parts.append(f"{name}: {' and '.join(what)} of {len(peaks)} stance peaks "
                         f"(range {peaks.min():.2f}-{peaks.max():.2f} BW)")
    if not parts:
        return ""
    return (f"**Plausibility ({target}):** " + "; ".join(parts) + f". Peak knee contact forces in level walking "
            f"usually lie between {lo:g} and {hi:g} BW (instrumented implants); values outside suggest a "
            "labelling or model problem rather than a property of the gait.")


def reference_of(manifest: Mapping[str, Any], targets: Sequence[str]) -> str:
    """The source of a dataset's reference targets, for legends and axes: "OpenSim" where the physics pipeline
    labelled them (the manifest's ``physics`` record), "in vivo implant" for a knee force measured in the files
    (only an instrumented implant measures one), else "measured"."""
    physics = (manifest or {}).get("physics") or {}
    if targets and all(t in (physics.get("targets") or []) for t in targets):
        return "OpenSim"
    if targets and all(str(t).startswith("knee") for t in targets):
        return "in vivo implant"
    return "measured"


def evidence_sentence(cmp: Mapping[str, float], *, model: str, baseline: str, unit: str, n_subjects: int,
                      n_stances: int, alpha: float = 0.05) -> str:
    """What a paired comparison (:func:`gaitforce.evaluate.tables.paired_comparison` of ``model`` against
    ``baseline``) supports, with the number of subjects and stances and the Wilcoxon test: "better" or "worse"
    only where p < ``alpha``, else that the test shows no difference."""
    n, delta, wins, p = cmp.get("n", 0), cmp.get("delta", np.nan), cmp.get("wins", np.nan), cmp.get("p", np.nan)
    subj = f"{n_subjects} subject{'s' if n_subjects != 1 else ''}"
    head = (f"Test set: {n_stances} stance{'s' if n_stances != 1 else ''} of {subj}. {model} - {baseline} RMSE "
            f"over {n} paired stances: {delta:+.{decimals(unit)}f} {unit} (negative: {model} better), {model} "
            f"lower on {100 * wins:.0f} % of stances, Wilcoxon signed-rank p = "
            + (f"{p:.3g}." if np.isfinite(p) else "n/a (too few pairs)."))
    if not np.isfinite(p):
        verdict = f"No conclusion on which is better can be drawn from {n} pair(s)."
    elif p < alpha:
        verdict = (f"{model if delta < 0 else baseline} is better on these stances (p < {alpha:g})"
                   + (f"; with {subj} this need not hold for new people." if n_subjects < 5 else "."))
    else:
        verdict = (f"The test shows no difference at the {alpha:g} level: the data do not support either model "
                   f"being better" + (f" (only {subj})." if n_subjects < 5 else "."))
    return head + " " + verdict


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
    model: str = "predicted",
    others: Mapping[str, pd.DataFrame] | None = None,
    reference: str = "reference",
    body_weight: Mapping[str, float] | None = None,
) -> Path:
    """Write tables, figures, ``settings.json``, an ``index.md`` linking them and ``index.html`` (the same,
    self-contained); returns the index.md path.

    ``by``: per_trial column(s) (e.g. ``subject``, ``pathology``) for an extra summary table broken down by
    group. ``extra_sections``: (heading, Markdown) pairs placed after the summary (e.g. model comparisons).
    ``model``: the name of the model scored in ``per_trial``; ``others``: name -> predictions frame (same
    columns) of further models, the baseline first, drawn on the same stance curves. ``reference``: the source
    of ``<target>_ref`` (e.g. "in vivo implant", "OpenSim"). ``body_weight``: stance_id -> N (default: from a
    ``mass`` column of ``per_trial``), for BW axes and the plausibility note.
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
    absent += [f"{t} ({name})" for name, frame in (others or {}).items() for t in targets
               if f"{t}_pred" not in frame or "stance_id" not in frame or "stance_pct" not in frame]
    if absent:
        raise GaitforceError(f"predictions lack <target>_ref/_pred columns for {absent}")
    bw = stance_body_weights(per_trial, body_weight)

    per_trial.to_csv(out / "per_trial.csv", index=False)
    predictions.to_csv(out / "predictions.csv.gz", index=False)
    summary = summarise(per_trial)
    write_table(summary, out, "summary")
    (out / "settings.json").write_text(json.dumps(dict(settings), indent=2, default=_json_default))

    n_subjects = per_trial["subject"].nunique() if "subject" in per_trial else None
    who = f" of {n_subjects} subject{'s' if n_subjects != 1 else ''}" if n_subjects is not None else ""
    lines = [f"# {title}", "", f"{model}: {per_trial['stance_id'].nunique()} stance phases{who}, "
             f"{len(predictions)} frames; reference: {reference}. Mean (SD) over stances; r is Pearson's "
             "correlation per stance.", "",
             "## Summary", "", markdown_table(summary)]
    by_list = [] if by is None else ([by] if isinstance(by, str) else list(by))
    for col in by_list:
        if col in per_trial:
            grouped = summarise(per_trial, by=col)
            write_table(grouped, out, f"summary_by_{col}")
            lines += [f"### By {col}", "", markdown_table(grouped)]
    for heading, body in extra_sections:
        lines += [f"## {heading}", "", body, ""]
    intervals = interval_summary(predictions, targets)
    if not intervals.empty:
        write_table(intervals.round(2), out, "intervals")
        level = settings.get("interval_level") if isinstance(settings, Mapping) else None
        nominal = f"{100 * float(level):.0f} % " if level else ""
        lines += ["## Intervals", "", f"The {nominal}interval of the ensemble (members' spread, calibrated "
                  "split-conformally on validation stances): how many test frames fall inside it, and its mean "
                  "width (the shaded band in the stance figures).", "", markdown_table(intervals.round(1)), ""]
    lines += ["## Figures", ""]
    kw = {"others": others, "model": model, "reference": reference, "body_weight": bw}
    for t in targets:
        figs = [
            (plot_representative(predictions, per_trial, t, out / f"{t}_representative.png", **kw),
             f"best, median and worst stance of {model} by RMSE, every model, reference {reference}"),
            (plot_ensemble(predictions, per_trial, t, out / f"{t}_ensemble.png", **kw),
             "mean \u00b1 SD over stances, every model"),
            (plot_scatter(predictions, per_trial, t, out / f"{t}_scatter.png", model=model, reference=reference,
                          body_weight=bw), f"{model} vs {reference}, every frame"),
        ]
        lines += [f"### {t}", ""]
        note = plausibility_note(predictions, t, _unit_of(per_trial, t), bw, others=others, model=model,
                                 reference=reference)
        if note:
            lines += [note, ""]
        for path, caption in figs:
            if path is not None:
                lines += [f"![{t}: {caption}]({path.name})", ""]
    lines += ["## Files", "", "- [summary.csv](summary.csv), [summary.md](summary.md): the table above",
              "- [per_trial.csv](per_trial.csv): every stance's metrics",
              "- [predictions.csv.gz](predictions.csv.gz): every frame's reference and prediction",
              "- [settings.json](settings.json): everything used to make this report", ""]
    index = out / "index.md"
    index.write_text("\n".join(lines))
    write_html(index)
    return index


# ---------------------------------------------------------------------------------------------------------
# the self-contained HTML page
# ---------------------------------------------------------------------------------------------------------
_CSS = """body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}h1{font-size:1.6em;border-bottom:2px solid #d62728;padding-bottom:.2em}
h2{font-size:1.3em;margin-top:1.6em;border-bottom:1px solid #ddd}h3{font-size:1.1em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}th,td{border:1px solid #ccc;padding:.25em .6em;
text-align:left}th{background:#f3f3f3}tr:nth-child(even) td{background:#fafafa}
code{background:#f3f3f3;padding:0 .25em;border-radius:3px;font-size:.92em}pre{background:#f3f3f3;padding:.6em;
overflow-x:auto}figure{margin:1em 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.88em;color:#555}strong{color:#8b0000}"""
_MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml",
         ".gif": "image/gif"}


def _is_local(href: str) -> bool:
    return not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:|^/|^#", href)


def _image_src(src: str, folder: Path) -> str:
    """A data: URI of a local image (relative to ``folder``), so the page needs no other file; else ``src``."""
    path = folder / src
    mime = _MIME.get(path.suffix.lower())
    if _is_local(src) and mime and path.is_file():
        return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")
    return src


def _link_href(href: str, folder: Path) -> str:
    """Relative links stay relative to the report; a link to a report's ``.md`` goes to its ``.html`` twin
    where that exists."""
    if _is_local(href) and href.endswith(".md") and (folder / href).with_suffix(".html").is_file():
        return href[:-3] + ".html"
    return href


def _inline(text: str, folder: Path) -> str:
    """Markdown inline markup (code, images, links, bold, italics) of one escaped line to HTML."""
    codes: list[str] = []

    def keep_code(m):
        codes.append(f"<code>{html.escape(m.group(1))}</code>")
        return f"\x00{len(codes) - 1}\x00"

    text = re.sub(r"`([^`]+)`", keep_code, text)
    text = html.escape(text, quote=False)
    text = re.sub(r"!\[([^\]]*)\]\(([^)\s]+)\)",
                  lambda m: f'<img alt="{html.escape(m.group(1))}" '
                            f'src="{html.escape(_image_src(html.unescape(m.group(2)), folder))}">', text)
    text = re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)",
                  lambda m: f'<a href="{html.escape(_link_href(html.unescape(m.group(2)), folder))}">'
                            f"{m.group(1)}</a>", text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
    text = re.sub(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])", r"<em>\1</em>", text)
    return re.sub("\x00(\\d+)\x00", lambda m: codes[int(m.group(1))], text)


def _row(line: str) -> list[str]:
    cells = re.split(r"(?<!\\)\|", line.strip().strip("|"))
    return [c.strip().replace("\\|", "|") for c in cells]


def markdown_to_html(text: str, folder: str | os.PathLike = ".", *, title: str | None = None) -> str:
    """A self-contained HTML page of the Markdown this package writes (headings, paragraphs, tables, lists,
    fenced code, images, links): local images are embedded as base64, other links stay relative to
    ``folder`` (the report's folder)."""
    folder = Path(folder)
    lines = text.splitlines()
    body, para, i = [], [], 0

    def flush():
        if para:
            body.append("<p>" + _inline(" ".join(para), folder) + "</p>")
            para.clear()

    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if stripped.startswith("```"):
            flush()
            block = []
            i += 1
            while i < len(lines) and not lines[i].strip().startswith("```"):
                block.append(lines[i])
                i += 1
            body.append("<pre><code>" + html.escape("\n".join(block)) + "</code></pre>")
        elif m := re.match(r"^(#{1,6})\s+(.*)$", stripped):
            flush()
            n = len(m.group(1))
            body.append(f"<h{n}>{_inline(m.group(2), folder)}</h{n}>")
        elif stripped.startswith("|"):
            flush()
            rows = []
            while i < len(lines) and lines[i].strip().startswith("|"):
                rows.append(lines[i])
                i += 1
            i -= 1
            head, rest = _row(rows[0]), [r for r in rows[1:] if not re.match(r"^\|[\s:|-]+\|?$", r.strip())]
            body.append("<table><thead><tr>" + "".join(f"<th>{_inline(c, folder)}</th>" for c in head)
                        + "</tr></thead><tbody>"
                        + "".join("<tr>" + "".join(f"<td>{_inline(c, folder)}</td>" for c in _row(r)) + "</tr>"
                                  for r in rest) + "</tbody></table>")
        elif re.match(r"^[-*]\s+", stripped):
            flush()
            items = []
            while i < len(lines) and re.match(r"^[-*]\s+", lines[i].strip()):
                items.append(re.sub(r"^[-*]\s+", "", lines[i].strip()))
                i += 1
            i -= 1
            body.append("<ul>" + "".join(f"<li>{_inline(it, folder)}</li>" for it in items) + "</ul>")
        elif m := re.match(r"^!\[([^\]]*)\]\(([^)\s]+)\)$", stripped):
            flush()
            body.append(f'<figure><img alt="{html.escape(m.group(1))}" '
                        f'src="{html.escape(_image_src(m.group(2), folder))}">'
                        f"<figcaption>{_inline(m.group(1), folder)}</figcaption></figure>")
        elif not stripped:
            flush()
        else:
            para.append(stripped)
        i += 1
    flush()
    if title is None:
        m = re.search(r"^#\s+(.*)$", text, re.M)
        title = m.group(1) if m else "gaitforce report"
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def write_html(markdown_path: str | os.PathLike, html_path: str | os.PathLike | None = None) -> Path:
    """``index.html`` (or ``html_path``) beside a report's Markdown: the same report as one self-contained page,
    figures embedded, links relative to the report. Returns its path."""
    md = Path(markdown_path)
    target = Path(html_path) if html_path is not None else md.with_suffix(".html")
    target.write_text(markdown_to_html(md.read_text(), md.parent), encoding="utf-8")
    return target
