"""The physics labeller on every Grand Challenge stance, against the force the implant measured.

Usage: python benchmarks/physics_gc_all.py [--model gait14dof22musc|rajagopal2015] [--workers 2]
                                           [--out /tmp/gf-physics-gc-all] [--figure FILE.png]

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


def stances():
    from gaitforce.io.grand_challenge import read_gc_mat

    out = {}
    for path in sorted((GC / "competitions").glob("*.mat")):
        mat = read_gc_mat(path).to_y_up()
        a, b = mat.meta["stance_frames"]
        out[path.stem] = mat.slice_frames(a, b).replace(meta={**mat.meta, "side": "right"})
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


def summary(rows: dict) -> dict:
    out = {}
    for gc in sorted({r["competition"] for r in rows.values()}) + ["all"]:
        sel = [r for r in rows.values() if gc in ("all", r["competition"])]
        out[gc] = {"stances": len(sel)}
        for k in ("medial", "total"):
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


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="gait14dof22musc")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default="/tmp/gf-physics-gc-all")
    ap.add_argument("--json", metavar="OUT")
    ap.add_argument("--figure", metavar="PNG")
    args = ap.parse_args(argv)
    from gaitforce.physics import LabelSettings, label_dataset

    all_stances = stances()
    tic = time.perf_counter()
    stats: dict = {}
    labels, failures = label_dataset(all_stances, out_dir=Path(args.out) / args.model,
                                     settings=LabelSettings(model=args.model), n_workers=args.workers,
                                     progress=False, stats=stats)
    wall = time.perf_counter() - tic
    rows = {name: compare(all_stances[name], labels[name]) for name in all_stances if name in labels}
    for name, row in rows.items():
        print(json.dumps({"stance": name, **row}), flush=True)
    result = {"model": args.model, "labelled": len(rows), "failed": [f.line() for f in failures],
              "wall_s": round(wall, 1), "computed": len(stats.get("computed", [])), "workers": args.workers,
              "summary": summary(rows), "stances": rows}
    print(json.dumps({k: v for k, v in result.items() if k != "stances"}, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    if args.figure:
        figure(all_stances, labels, Path(args.figure), args.model)
    return result


if __name__ == "__main__":
    main()
