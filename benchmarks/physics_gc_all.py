"""The physics labeller on every Grand Challenge stance, against the force the implant measured.

Usage: python benchmarks/physics_gc_all.py [--model gait14dof22musc|rajagopal2015[,...]] [--workers 1]
                                           [--grid NAME,...|all] [--json FILE] [--out /tmp/gf-physics-gc-all]
                                           [--figure FILE.png] [--grid-figure FILE.png]

``--grid`` labels every stance with each named settings variant (:data:`VARIANTS`, a dict name -> LabelSettings
keyword arguments; add one line to add a variant) for each ``--model``, then chooses settings without looking at
the test subject: each subject (JW, DM, SC, PS) in turn picks the variant with the lowest mean per-stance medial
RMSE (BW) on its own stances, and that variant's figures on the other three subjects are the held-out result
(:func:`gaitforce.evaluate.choose.leave_one_subject_out`); the overall held-out figure is the mean over the four
rotations. ``--json`` writes model, settings, per stance and per subject figures and the rotations.

Each ``competitions/*.mat`` stance (29: GC1-GC6, subjects JW, DM, SC, PS) is labelled from the .mat alone, as a
one-leg recording (pelvis + the instrumented leg's landmarks and clusters + that foot's plate; no static trial:
the walking trial scales the model), on Dask through ``label_dataset``, so a rerun takes the cached stances. The
labelled medial, lateral and total force are compared with ``Force.KneeMedial``/``KneeLateral`` over the stance
frames: RMSE in N and body weights, Pearson r and the peaks, per stance and as mean (std) per competition. The
figure shows predicted against measured medial force per competition.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

GC = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "grand-challenge"

#: Settings variants of the grid: name -> LabelSettings keyword arguments (the model comes from --model), each
#: spelled out in full so a variant keeps its meaning when a default changes. Extend with one line per option
#: (e.g. an EMG-informed criterion or another medial/lateral split).
VARIANTS = {
    "main": {"grf_lowpass": False},  # the settings before issue 15 (raw GRF, stance window, generic strength)
    "grf-lowpass": {"grf_lowpass": True},
    "pad": {"grf_lowpass": False, "pad_s": 0.2},
    "strength": {"grf_lowpass": False, "strength": "handsfield2014"},
    "grf-lowpass+pad": {"grf_lowpass": True, "pad_s": 0.2},
    "grf-lowpass+pad+strength": {"grf_lowpass": True, "pad_s": 0.2, "strength": "handsfield2014"},
    # knee-crossing muscles' max isometric force x F (the GC5 reference used 0.6), on the current defaults;
    # 0.3 and 1.0 bracket the grid so a choice can be interior
    **{f"knee{f}": {"grf_lowpass": True, "pad_s": 0.2, "knee_muscle_strength": f} for f in (1.0, 0.8, 0.6, 0.4, 0.3)},
}
#: What a choosing subject minimises: the mean over its stances of the per-stance medial RMSE in body weights.
CRITERION = "medial_rmse_BW"


def stances(pad_s: float = 0.0):
    """``{name: (stance Trial, Trial to label)}``: the stance frames of each competitions .mat (heel strike at
    frame 0: the files hold no frame before it) and, with ``pad_s``, the stance with up to ``pad_s`` s of the
    file's following swing frames to label on (:func:`gaitforce.physics.stances.padded`)."""
    from gaitforce.io.grand_challenge import read_gc_mat
    from gaitforce.physics.stances import padded

    out = {}
    for path in sorted((GC / "competitions").glob("*.mat")):
        mat = read_gc_mat(path).to_y_up()
        a, b = mat.meta["stance_frames"]
        meta = {**mat.meta, "side": "right"}
        stance = mat.slice_frames(a, b).replace(meta=meta)
        out[path.stem] = (stance, padded(mat, a, b, pad_s, meta) if pad_s > 0 else stance)
    return out


def compare(stance, labels) -> dict:
    bw = stance.subject.mass * 9.81
    row = {"competition": stance.meta.get("competition"), "subject": stance.subject.id, "frames": stance.n_frames}
    for k in ("medial", "lateral", "total"):
        pred, meas = labels[f"knee_{k}"].to_numpy(), np.asarray(stance.signal(f"knee_{k}"))
        rmse = float(np.sqrt(np.mean((pred - meas) ** 2)))
        row[k] = {"rmse_N": round(rmse, 1), "rmse_BW": round(rmse / bw, 3),
                  "r": round(float(np.corrcoef(pred, meas)[0, 1]), 3),
                  "peak_pred": round(float(pred.max())), "peak_meas": round(float(meas.max()))}
    return row


def per_subject(rows: dict) -> dict[str, dict[str, float]]:
    """Subject -> mean over its stances of the per-stance medial/lateral RMSE (N, BW) and r."""
    out = {}
    for subject in sorted({r["subject"] for r in rows.values()}):
        sel = [r for r in rows.values() if r["subject"] == subject]
        out[subject] = {"stances": len(sel)}
        for k in ("medial", "lateral", "total"):
            for m in ("rmse_N", "rmse_BW", "r"):
                out[subject][f"{k}_{m}"] = round(float(np.mean([r[k][m] for r in sel])), 4)
    return out


def summary(rows: dict) -> dict:
    out = {}
    for gc in sorted({r["competition"] for r in rows.values()}) + ["all"]:
        sel = [r for r in rows.values() if gc in ("all", r["competition"])]
        out[gc] = {"stances": len(sel)}
        for k in ("medial", "lateral", "total"):
            for m in ("rmse_N", "rmse_BW", "r"):
                v = np.array([r[k][m] for r in sel])
                out[gc][f"{k}_{m}"] = f"{v.mean():.3g} ({v.std(ddof=1) if len(v) > 1 else 0:.2g})"
    return out


def figure(all_stances, labels, path: Path, model: str) -> None:
    from gaitforce._plot import subplots

    comps = sorted({s.meta["competition"] for s in all_stances.values()})
    fig, axes = subplots(2, 3, figsize=(12, 6.5), sharey=True, constrained_layout=True)
    axes = axes.ravel()
    for ax, gc in zip(axes, comps):
        subject = next(st.subject.id for st in all_stances.values() if st.meta["competition"] == gc)
        for name, st in all_stances.items():
            if st.meta["competition"] != gc or name not in labels:
                continue
            pct = np.linspace(0, 100, st.n_frames)
            line, = ax.plot(pct, np.asarray(st.signal("knee_medial")), lw=1.2)
            ax.plot(pct, labels[name]["knee_medial"].to_numpy(), lw=1.2, ls="--", color=line.get_color())
        ax.set_title(f"{gc} ({subject})")
        ax.set_xlabel("stance (%)")
    axes[0].set_ylabel("medial contact force (N)")
    axes[3].set_ylabel("medial contact force (N)")
    fig.suptitle(f"Medial knee contact force: implant (solid) vs gaitforce label, {model} (dashed)")
    fig.savefig(path, dpi=85)


def label_variant(model: str, name: str, kwargs: dict, out: Path, workers: int) -> dict:
    """Label all stances with one variant (cached per settings under ``out/model/name``) and compare."""
    from gaitforce.physics import LabelSettings, label_dataset

    settings = LabelSettings(model=model, **kwargs)
    pairs = stances(settings.pad_s)
    tic = time.perf_counter()
    stats: dict = {}
    labels, failures = label_dataset({n: p[1] for n, p in pairs.items()}, out_dir=out / model / name,
                                     settings=settings, n_workers=workers, progress=False, stats=stats)
    wall = time.perf_counter() - tic
    rows = {n: compare(pairs[n][0], labels[n]) for n in pairs if n in labels}
    return {"model": model, "variant": name, "settings": settings.to_dict(), "labelled": len(rows),
            "failed": [f.line() for f in failures], "wall_s": round(wall, 1),
            "computed": len(stats.get("computed", [])), "summary": summary(rows), "subjects": per_subject(rows),
            "stances": rows, "_labels": labels, "_stances": {n: p[0] for n, p in pairs.items()}}


def grf_baseline() -> dict:
    """The simple baseline beside the labels: medial (lateral) force = k x the stance's vertical GRF, both in
    body weights, k fitted on the choosing subject's stances and scored on the other three
    (:func:`gaitforce.evaluate.choose.scale_baseline`): RMSE in BW, r."""
    from gaitforce.evaluate.choose import scale_baseline

    out = {}
    pairs = stances()
    for k in ("medial", "lateral"):
        data = {}
        for name, (st, _) in pairs.items():
            bw = st.subject.mass * 9.81
            data[name] = (st.subject.id, np.nansum(st.forces[:, :, 1], axis=1) / bw,
                          np.asarray(st.signal(f"knee_{k}")) / bw)
        out[k] = scale_baseline(data)
    return out


def grid_figure(results: dict, choice: dict, path: Path, baseline: dict | None = None) -> None:
    """Mean per-stance medial RMSE (BW) per subject and variant; a star on each subject's held-out choice; the
    k x vertical GRF baseline held out (mean over the rotations that score the subject) as a black line."""
    from gaitforce._plot import subplots

    names = list(results)
    subjects = sorted({s for r in results.values() for s in r["subjects"]})
    fig, ax = subplots(figsize=(max(7, 1.1 * len(names) * len(subjects) / 2), 4.2), constrained_layout=True)
    width = 0.8 / len(names)
    for j, name in enumerate(names):
        vals = [results[name]["subjects"].get(s, {}).get(CRITERION, np.nan) for s in subjects]
        ax.bar(np.arange(len(subjects)) + j * width, vals, width, label=name)
    for rot in choice["rotations"]:  # the variant each subject chose, shown on the subjects it is scored on
        j = names.index(rot["variant"])
        for s in rot["held_out"]:
            k = subjects.index(s)
            ax.plot(k + j * width, results[rot["variant"]]["subjects"][s][CRITERION] + 0.02, "k*", ms=6)
    if baseline is not None:
        for k, s in enumerate(subjects):
            v = [r["held_out"][s]["rmse"] for r in baseline["medial"]["rotations"] if s in r["held_out"]]
            ax.plot([k - width / 2, k + 0.8 - width / 2], [np.mean(v)] * 2, "k-", lw=2,
                    label="k x vertical GRF, held out" if k == 0 else None)
    ax.axhline(0.35, color="grey", ls=":", lw=1, label="target 0.35 BW")
    ax.set_xticks(np.arange(len(subjects)) + 0.4 - width / 2, subjects)
    ax.set_ylabel("medial RMSE (BW), mean per stance")
    ax.set_title(f"Grand Challenge, settings grid (*: a choice by another subject, scored here; "
                 f"held-out mean {choice['overall'][CRITERION]:.2f} BW)")
    ax.legend(fontsize=7, ncol=2)
    fig.savefig(path, dpi=85)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="gait14dof22musc", help="one model, or several separated by commas")
    ap.add_argument("--grid", default="main", help=f"variants, comma-separated, or 'all' ({', '.join(VARIANTS)}); "
                    "MODEL/VARIANT names one variant of one model only")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--out", default="/tmp/gf-physics-gc-all")
    ap.add_argument("--json", metavar="OUT")
    ap.add_argument("--figure", metavar="PNG", help="medial force curves of the first variant")
    ap.add_argument("--grid-figure", metavar="PNG", help="medial RMSE per subject and variant")
    args = ap.parse_args(argv)
    from gaitforce.evaluate.choose import leave_one_subject_out

    names = [v for n in args.grid.split(",") for v in (VARIANTS if n == "all" else [n])]
    models = args.model.split(",")
    runs = [tuple(n.split("/", 1)) if "/" in n else (m, n) for m in models for n in names
            if "/" not in n or m == models[0]]
    from gaitforce.physics.model import MODELS

    bad = [m for m, _ in runs if m not in MODELS]
    if bad:
        ap.error(f"unknown model(s) {', '.join(sorted(set(bad)))}; known: {', '.join(MODELS)}")
    unknown = [n for _, n in runs if n not in VARIANTS]
    if unknown:
        ap.error(f"unknown variant(s) {', '.join(unknown)}; known: {', '.join(VARIANTS)}")
    models = sorted({m for m, _ in runs}, key=lambda m: [*models, m].index(m))
    results = {}
    for model, name in runs:
        key = name if len(models) == 1 else f"{model}/{name}"
        if key not in results:
            results[key] = label_variant(model, name, VARIANTS[name], Path(args.out), args.workers)
            r = results[key]
            print(json.dumps({"variant": key, "labelled": r["labelled"], "failed": len(r["failed"]),
                              "computed": r["computed"], "wall_s": r["wall_s"], "all": r["summary"]["all"],
                              "subjects": {s: {m: v[m] for m in (CRITERION, "medial_r", "lateral_rmse_BW")}
                                           for s, v in r["subjects"].items()}}), flush=True)
    table = {k: r["subjects"] for k, r in results.items()}
    choice = leave_one_subject_out(table, criterion=CRITERION)
    for rot in choice["rotations"]:
        print(f"{rot['choosing_subject']} chooses {rot['variant']} ({rot['choosing_figure']:.3f} BW on its own); "
              f"held out: " + ", ".join(f"{s} {v[CRITERION]:.3f} BW r {v['medial_r']:.2f}"
                                        for s, v in rot["held_out"].items()), flush=True)
    print("overall held out:", json.dumps({m: round(v, 3) for m, v in choice["overall"].items()}), flush=True)
    baseline = grf_baseline()
    print("baseline k x vertical GRF, held out: " + ", ".join(
        f"{k} RMSE {b['overall']['rmse']:.3f} BW r {b['overall']['r']:.2f} (k "
        + "/".join(f"{r['k']:.2f}" for r in b["rotations"]) + ")" for k, b in baseline.items()), flush=True)
    result = {"models": models, "criterion": CRITERION, "variants": {k: {"model": r["model"], "settings": r["settings"]}
                                                                     for k, r in results.items()},
              "results": {k: {m: v for m, v in r.items() if not m.startswith("_")} for k, r in results.items()},
              "leave_one_subject_out": choice, "baseline_k_times_vertical_grf": baseline, "workers": args.workers}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    if args.figure:
        first = results[next(iter(results))]
        figure(first["_stances"], first["_labels"], Path(args.figure), first["model"])
    if args.grid_figure:
        grid_figure(results, choice, Path(args.grid_figure), baseline)
    return result


if __name__ == "__main__":
    main()
