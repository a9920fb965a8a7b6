"""The whole chain on one command: data -> ingest -> label -> train -> evaluate -> predict -> a report folder.

With no data given, :func:`run_demo` makes a small **synthetic** virtual cohort (:mod:`gaitforce.data.synthetic`),
writes it as C3D files (so the readers are exercised), ingests them, labels every stance with the OpenSim
physics pipeline (:func:`gaitforce.physics.label_dataset`, on Dask), trains the paper-style CNN and the ridge
baseline on a subject-naive split, scores both on the held-out subject, saves the CNN as a bundle and runs it
on a held-out file as ``gaitforce predict`` does. Everything lands in one folder with an ``index.md`` that says
plainly which data were used and how long each stage took, and an ``index.html`` beside it (the same report as one
self-contained page, figures embedded). Nothing is written outside the folder (OpenSim's log goes to
``physics/work/<stance>/opensim.log``); a stage that does not apply prints ``skipped`` and why.

With ``data=DIR`` the same chain runs on real files. Where the files already carry the target (the Grand
Challenge's in vivo knee force), that measurement is the reference and the physics stage is skipped
(``physics="auto"``); ``physics="always"`` labels with OpenSim anyway (the measured target is then replaced).

Stance windows: the physics labeller sees exactly the frames of each dataset stance (the ingest rule:
stances detected on the gap-filled, low-passed trial), cut from the unfiltered trial with every plate kept,
so its labels line up frame by frame with the dataset's rows.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from gaitforce._lazy import lazy_attr, lazy_module
from gaitforce.errors import GaitforceError

# imported on first use: `gaitforce demo --help` reads DemoSettings without numpy or pandas
np = lazy_module("numpy")
pd = lazy_module("pandas")
Dataset = lazy_attr("gaitforce.data.dataset", "Dataset")

#: The target the demo learns; the no-physics stand-in (see :func:`grf_standin`).
TARGET = "knee_medial"
STANDIN_TARGET = "grf_resultant_standin"
#: written first into a demo folder, so a rerun (also after a killed run) may replace the demo's outputs there
MARKER = ".gaitforce-demo"
SYNTHETIC_NOTE = (
    "**These data are synthetic.** The trials come from gaitforce's own virtual-cohort generator "
    "(`gaitforce.data.synthetic`), not from people, and the reference targets are computed from those trials "
    "(how: next paragraph). Nothing here is a finding about human gait or a validation of the surrogate "
    "against measured forces; it shows that the whole chain runs and how fast."
)


@dataclass
class DemoSettings:
    """Options of :func:`run_demo`. Defaults: 8 subjects x 4 trials (64 stances): about 2 min on 2 quiet cores,
    4-30 min on 2 cores shared with other jobs (labelling is most of it)."""

    data: str | None = None
    n_subjects: int = 8
    trials_per_subject: int = 4
    seed: int = 0
    physics: str = "auto"  # auto | always | never
    workers: int = 2
    model: str = "paper-cnn"
    epochs: int = 60
    patience: int = 10
    threads: int = 1
    target: str = TARGET

    def __post_init__(self):
        if self.physics not in ("auto", "always", "never"):
            raise GaitforceError(f"physics must be 'auto', 'always' or 'never', not {self.physics!r}")
        if self.n_subjects < 3:
            raise GaitforceError("the demo needs at least 3 subjects (train, validation and test subjects)")
        if self.trials_per_subject < 1 or self.workers < 1 or self.epochs < 1 or self.threads < 1:
            raise GaitforceError("trials, workers, epochs and threads must be at least 1")


@dataclass
class DemoResult:
    out: Path
    index: Path
    synthetic: bool
    target: str
    timings: dict[str, float] = field(default_factory=dict)
    metrics: pd.DataFrame | None = None
    paths: dict[str, str] = field(default_factory=dict)


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class _Stages:
    """Prints ``[i/n] stage: ...`` lines and records the wall time of each stage."""

    def __init__(self, names: list[str], log: Callable[[str], None]):
        self.names, self.log, self.timings = names, log, {}

    def run(self, name: str, fn, *args, **kw):
        i = self.names.index(name) + 1
        self.log(f"[{i}/{len(self.names)}] {name} ...")
        t0 = time.perf_counter()
        out = fn(*args, **kw)
        self.timings[name] = round(time.perf_counter() - t0, 1)
        self.log(f"[{i}/{len(self.names)}] {name}: done in {self.timings[name]:.1f} s")
        return out

    def skip(self, name: str, why: str, fn=None, *args, **kw):
        """A stage that does not apply: ``[i/n] name: skipped (why)``; ``fn``, if given, still runs (a quick
        stand-in) and its result is returned."""
        i = self.names.index(name) + 1
        t0 = time.perf_counter()
        out = fn(*args, **kw) if fn is not None else None
        self.timings[name] = round(time.perf_counter() - t0, 1)
        self.log(f"[{i}/{len(self.names)}] {name}: skipped ({why})")
        return out


# ---------------------------------------------------------------------------------------------------------
# stages
# ---------------------------------------------------------------------------------------------------------
def make_cohort(folder: Path, s: DemoSettings) -> list[Path]:
    """The synthetic cohort written as C3D files (+ cohort.json); returns the C3D paths."""
    from gaitforce.data.synthetic import generate_cohort, write_cohort

    trials = generate_cohort(n_subjects=s.n_subjects, trials_per_subject=s.trials_per_subject, seed=s.seed)
    written = write_cohort(folder, trials, fmt="c3d")
    return [p for p in written if p.suffix == ".c3d"]


def ingest(paths, out: Path) -> tuple[Dataset, list]:
    from gaitforce.data.ingest import build_dataset

    ds, failures = build_dataset(paths, progress=True)
    ds.save(out)
    return ds, failures


def physics_available() -> str | None:
    """None if OpenSim and the model file are usable, else the reason they are not."""
    try:
        import opensim  # noqa: F401
    except ImportError:
        return "the opensim package is not installed (pip install -e .[physics])"
    from gaitforce.physics.model import model_file

    try:
        model_file(download=False)
    except GaitforceError as err:
        return err.message
    return None


def stance_windows(path: Path, settings, key: str | None = None) -> dict[str, "object"]:
    """``{stance_id: Trial}`` of one file (trial ``key``, default its name), cut to the frames the dataset
    holds for each stance (ingest rule) from the unfiltered Y-up trial, every plate kept, ``meta['side']`` set."""
    from gaitforce.physics.stances import label_stances, read_for_labelling

    stances, _ = label_stances(read_for_labelling(path), settings, key=key or Path(path).name, path=path)
    return stances


def label(ds: Dataset, out: Path, s: DemoSettings) -> tuple[Dataset, list[str]]:
    """The dataset with the physics targets added (stances without labels dropped), and the failures."""
    from gaitforce.data.ingest import IngestSettings
    from gaitforce.physics import LabelSettings, label_dataset
    from gaitforce.physics.merge import merge_labels

    settings = IngestSettings.from_dict(ds.manifest["settings"])
    stances, failures = {}, []
    for src in ds.manifest.get("sources", []):
        try:
            stances.update(stance_windows(Path(src["path"]), settings, src.get("trial")))
        except GaitforceError as err:
            failures.append(err.with_source(src["path"]))
    wanted = set(ds.stance_ids)
    failures += [GaitforceError("no stance window found for physics labelling", source=sid)
                 for sid in sorted(wanted - set(stances))]
    stances = {k: v for k, v in stances.items() if k in wanted}
    # the fast model: the demo labels 64 stances in minutes (Rajagopal 2015, the labeller's default, ~10x slower)
    labels, failed = label_dataset(stances, out_dir=out, settings=LabelSettings(model="gait14dof22musc"),
                                   n_workers=s.workers, progress=True)
    failures += failed
    merged = merge_labels(ds, labels, replace=True, failures=failures)
    done = [sid for sid in merged.stance_ids if sid in labels and not any(f.source == sid for f in failures)]
    return merged.subset(done), [f.line() for f in failures]


def grf_standin(ds: Dataset) -> Dataset:
    """No physics: a stand-in target so the chain still runs, the resultant ground reaction (N) of the
    stance plate, taken from the features. It checks the pipeline only; it is not an internal force."""
    g = ds.frames[["grf_x", "grf_y", "grf_z"]].to_numpy(float)
    frames = ds.frames.assign(**{STANDIN_TARGET: np.sqrt((g ** 2).sum(axis=1))})
    manifest = {**ds.manifest, "targets": {**ds.manifest.get("targets", {}), STANDIN_TARGET: "N"}}
    return Dataset(frames=frames, manifest=manifest)


def train(ds: Dataset, split: dict, s: DemoSettings, target: str, bundle_dir: Path):
    """The network and the ridge baseline on the split's train set (validation for early stopping)."""
    from gaitforce.learn.training import Estimator

    train_ds, val_ds = ds.subset(split["train"]), ds.subset(split["val"])
    models, seconds = {}, {}
    for name in (s.model, "ridge"):
        t0 = time.perf_counter()
        est = Estimator(name, targets=(target,), seed=s.seed, threads=s.threads, verbose=False,
                        **({} if name == "ridge" else {"epochs": s.epochs, "patience": s.patience}))
        models[name] = est.fit(train_ds, val_ds)
        seconds[name] = round(time.perf_counter() - t0, 1)
        _say(f"    {name}: {seconds[name]:.1f} s" + ("" if name == "ridge" else
             f", best epoch {est.best_epoch_[0]} of {len(est.history_[0])}"))
    models[s.model].save(bundle_dir, metrics={"demo_split": split, "train_seconds": seconds[s.model]},
                         dataset_manifest=ds.manifest)
    return models, seconds


def evaluate(ds: Dataset, split: dict, models: dict, target: str, out: Path, *, title: str, note: str,
             reference: str = "reference"):
    """Per-stance metrics of every model on the test subjects, and the evaluation report of the network (every
    model on its figures, the reference named by its source ``reference``)."""
    from gaitforce import evaluate as ev
    from gaitforce.evaluate.report import evidence_sentence, markdown_table, plausibility_note, write_report

    test = ds.subset(split["test"])
    stances = test.stances()
    y = test.frames[[target]].to_numpy(float)
    sid = test.frames["stance_id"].to_numpy()
    per, preds = {}, {}
    for name, est in models.items():
        p = np.asarray(est.predict(test), dtype=float)
        per[name] = ev.with_stance_info(ev.per_trial_metrics(y, p, sid, body_weight=ev.body_weights(stances),
                                                            target_names=[target], units=test.targets), stances)
        preds[name] = ev.predictions_frame(sid, test.frames["stance_pct"].to_numpy(), y, p, [target])
    table = pd.concat([ev.summarise(per[m]).assign(model=m) for m in models], ignore_index=True)
    table = table[["model", *[c for c in table.columns if c != "model"]]]
    net = next(iter(models))
    cmp = ev.paired_comparison(per[net], per["ridge"])
    cmp["n_subjects"] = int(stances["subject"].nunique()) if "subject" in stances else 0
    cmp["n_stances"] = int(len(stances))
    cmp["sentence"] = evidence_sentence(cmp, model=net, baseline="ridge", unit=test.targets.get(target, "N"),
                                        n_subjects=cmp["n_subjects"], n_stances=cmp["n_stances"])
    cmp["plausibility"] = plausibility_note(preds[net], target, test.targets.get(target, "N"),
                                            ev.body_weights(stances), model=net,
                                            others={m: preds[m] for m in models if m != net}, reference=reference)
    comparison = markdown_table(table) + "\n\n" + cmp["sentence"]
    report = write_report(out, per_trial=per[net], predictions=preds[net],
                          settings={"split": split, "models": list(models), "target": target},
                          title=title, by=["subject"], extra_sections=[("Data", note),
                                                                       ("Network against ridge", comparison)],
                          model=net, others={m: preds[m] for m in models if m != net}, reference=reference,
                          body_weight=ev.body_weights(stances))
    return table, cmp, report


def predict_held_out(bundle_dir: Path, path: Path, ds: Dataset, target: str, out: Path) -> pd.DataFrame:
    """Run the bundle on one file as ``gaitforce predict`` does; per stance, RMSE against the dataset's labels."""
    from gaitforce.data.ingest import IngestSettings
    from gaitforce.learn.bundle import load_bundle
    from gaitforce.learn.predict import predict_file

    bundle = load_bundle(bundle_dir, intra_op_num_threads=1)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    key = next((s.get("trial") for s in ds.manifest.get("sources", []) if Path(s["path"]) == Path(path)), None)
    written = predict_file(bundle, path, out, IngestSettings.from_dict(bundle.ingest_settings or {}), key=key)
    seconds = time.perf_counter() - t0
    rows = []
    for csv in sorted(p for p in written if p.suffix == ".csv"):
        pred = pd.read_csv(csv)
        sid = str(pred["stance_id"].iloc[0])
        ref = ds.frames.loc[ds.frames.stance_id == sid, ["frame", target]]
        both = pred[["frame", target]].merge(ref, on="frame", suffixes=("_pred", "_ref"))
        err = both[f"{target}_pred"] - both[f"{target}_ref"]
        rows.append({"file": csv.name, "stance_id": sid, "frames": len(pred),
                     "RMSE vs reference (N)": float(np.sqrt(np.mean(err ** 2))) if len(both) else np.nan,
                     "peak predicted (N)": float(pred[target].max()),
                     "peak reference (N)": float(both[f"{target}_ref"].max()) if len(both) else np.nan})
    table = pd.DataFrame(rows)
    table.attrs["seconds"] = seconds
    return table


# ---------------------------------------------------------------------------------------------------------
# the chain
# ---------------------------------------------------------------------------------------------------------
def run_demo(out, settings: DemoSettings | None = None, *, log: Callable[[str], None] = _say) -> DemoResult:
    """Run the whole chain into folder ``out`` (see the module doc); returns what was made and the timings."""
    from gaitforce.evaluate.splits import subject_naive_split

    s = settings or DemoSettings()
    out = Path(out)
    clean(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("a gaitforce demo folder: `gaitforce demo` may replace what it wrote here\n")
    synthetic = s.data is None
    if not synthetic and not Path(s.data).exists():
        raise GaitforceError("no such data folder or file", source=s.data)
    missing_physics = physics_available()
    if s.physics == "always" and missing_physics:
        raise GaitforceError(f"physics labelling asked for but unavailable: {missing_physics}")
    stages = _Stages(["data", "ingest", "label", "train", "evaluate", "predict", "report"], log)
    t_start = time.perf_counter()

    if synthetic:
        files = stages.run("data", make_cohort, out / "data", s)
        log(f"    synthetic cohort: {s.n_subjects} subjects x {s.trials_per_subject} trials -> {out / 'data'}")
    else:
        files = stages.skip("data", f"real data given: {s.data}", lambda: [Path(s.data)])
    ds, ingest_failures = stages.run("ingest", ingest, files, out / "dataset")
    log(f"    {ds}")

    target, label_note, label_failures = s.target, "", []
    has_target = target in ds.frames and bool(ds.frames[target].notna().any())
    use_physics = s.physics == "always" or (s.physics == "auto" and not has_target)
    if use_physics and missing_physics:
        raise GaitforceError(f"the data have no {target!r} and physics labelling is unavailable "
                             f"({missing_physics}); run scripts/fetch-model.sh, or use --no-physics")
    if s.physics == "never" and not has_target:
        ds = stages.skip("label", f"--no-physics: a stand-in target, {STANDIN_TARGET}, not an internal force",
                         grf_standin, ds)
        reference = "GRF stand-in"
        target = STANDIN_TARGET
        label_note = (f"Physics labelling was switched off (`--no-physics`): the target is a stand-in, the "
                      f"resultant ground reaction `{STANDIN_TARGET}` (N), which only checks that the chain runs. "
                      "It is not an internal force.")
    elif use_physics:
        ds, label_failures = stages.run("label", label, ds, out / "physics", s)
        ds.save(out / "dataset-labelled")
        reference = "OpenSim (gait14dof22musc)"
        label_note = (f"Reference `{target}`: the OpenSim physics pipeline (gait14dof22musc: scale, IK, ID, "
                      f"static optimisation, knee joint reaction, moment-balance medial/lateral split) on every "
                      f"stance, {s.workers} Dask worker(s).")
    else:
        stages.skip("label", f"the files carry a measured {target}, used as the reference (--physics auto)")
        reference = "in vivo implant (measured)" if target.startswith("knee") else "measured"
        label_note = (f"Reference `{target}`: measured in the files"
                      + (", the instrumented knee implant's in vivo force" if target.startswith("knee") else "")
                      + " (physics labelling skipped: `--physics auto`).")
    log(f"    target {target}: {ds.frames['stance_id'].nunique()} stances")

    split = {k: list(v) for k, v in subject_naive_split(ds.stances(), seed=s.seed).items()}
    log(f"    subject-naive split: {len(split['train'])}/{len(split['val'])}/{len(split['test'])} stances")
    models, train_seconds = stages.run("train", train, ds, split, s, target, out / "bundle")

    data_note = SYNTHETIC_NOTE if synthetic else f"Real data from `{s.data}`."
    title = ("gaitforce demo: SYNTHETIC cohort" if synthetic else f"gaitforce demo: {Path(s.data).name}")
    table, cmp, report_index = stages.run("evaluate", evaluate, ds, split, models, target, out / "evaluation",
                                          title=title + f", {s.model} on held-out subjects",
                                          note=data_note + " " + label_note, reference=reference)

    test_trials = ds.frames.loc[ds.frames.stance_id.isin(split["test"]), "trial"].unique()
    sources = {src.get("trial", Path(src["path"]).name): Path(src["path"]) for src in ds.manifest.get("sources", [])}
    held_out = sources[test_trials[0]]
    pred_table = stages.run("predict", predict_held_out, out / "bundle", held_out, ds, target, out / "predictions")

    result = DemoResult(out=out, index=out / "index.md", synthetic=synthetic, target=target, metrics=table)
    result.paths = {"data": str(out / "data") if synthetic else str(s.data), "dataset": str(out / "dataset"),
                    "bundle": str(out / "bundle"), "evaluation": str(report_index),
                    "predictions": str(out / "predictions"), "held_out_file": str(held_out)}
    if use_physics:
        result.paths["labelled_dataset"] = str(out / "dataset-labelled")
        result.paths["physics"] = str(out / "physics")
    info = {"settings": asdict(s), "split": split, "train_seconds": train_seconds, "comparison": cmp,
            "ingest_failures": [f.line() for f in ingest_failures], "label_failures": label_failures,
            "predict_seconds": pred_table.attrs["seconds"], "n_stances": int(ds.frames["stance_id"].nunique()),
            "n_frames": len(ds.frames), "n_subjects": int(ds.frames["subject"].nunique())}
    stages.run("report", write_index, result, stages.timings, info, table, pred_table, data_note, label_note)
    result.timings = {**stages.timings, "total": round(time.perf_counter() - t_start, 1)}
    write_index(result, result.timings, info, table, pred_table, data_note, label_note)
    log(f"demo: report {result.index} ({result.timings['total']:.0f} s in all)")
    return result


def write_index(result: DemoResult, timings: dict, info: dict, table: pd.DataFrame, pred_table: pd.DataFrame,
                data_note: str, label_note: str) -> Path:
    from gaitforce.evaluate.report import markdown_table, write_html

    out = result.out

    def rel(p) -> str:  # every link relative to the report, wherever the command ran
        return Path(os.path.relpath(Path(p).resolve(), out.resolve())).as_posix()
    ev_dir = Path(result.paths["evaluation"]).parent
    t = result.target
    timing_rows = pd.DataFrame([{"stage": k, "seconds": v} for k, v in timings.items()])
    s = info["settings"]
    lines = [
        f"# gaitforce demo{' (SYNTHETIC DATA)' if result.synthetic else ''}", "",
        data_note, "",
        f"{info['n_subjects']} subjects, {info['n_stances']} stance phases, {info['n_frames']} frames. "
        + label_note, "",
        "## Held-out subjects (subject-naive split)", "",
        f"Train / validation / test: {len(info['split']['train'])} / {len(info['split']['val'])} / "
        f"{len(info['split']['test'])} stances; no subject in two sets. Mean (SD) over test stances.", "",
        markdown_table(table), "",
        info["comparison"].get("sentence", ""), "",
        f"Full report with per-subject tables: [{rel(result.paths['evaluation'])}]({rel(result.paths['evaluation'])})",
        "",
        *([info["comparison"]["plausibility"], ""] if info["comparison"].get("plausibility") else []),
        f"![{t}: best, median, worst test stance, every model]({rel(ev_dir / f'{t}_representative.png')})", "",
        f"![{t}: mean and SD over test stances, every model]({rel(ev_dir / f'{t}_ensemble.png')})", "",
        f"![{t}: predicted vs reference frames]({rel(ev_dir / f'{t}_scatter.png')})", "",
        "## Prediction on a held-out file", "",
        f"`gaitforce predict {rel(result.paths['bundle'])} {rel(result.paths['held_out_file'])} --out "
        f"{rel(result.paths['predictions'])}` (run in this folder; a test subject's file, read, cut and "
        f"featurised from disk): "
        f"{pred_table.attrs['seconds'] * 1000:.0f} ms in all.", "",
        markdown_table(pred_table) if len(pred_table) else "(no stance)", "",
        "## Timings (this machine, wall clock)", "",
        markdown_table(timing_rows), "",
        f"Training: {', '.join(f'{m} {v:.1f} s' for m, v in info['train_seconds'].items())} "
        f"({s['threads']} torch thread(s), at most {s['epochs']} epochs, patience {s['patience']}).", "",
    ]
    failures = info["ingest_failures"] + info["label_failures"]
    if failures:
        lines += ["## Failures (the rest went on)", "", *[f"- {f}" for f in failures], ""]
    lines += ["## Files", ""] + [f"- {k}: [{rel(v)}]({rel(v)})" for k, v in result.paths.items()] + [
        "- [demo.json](demo.json): settings, split and figures of this run",
        "- [index.html](index.html): this report as one self-contained page", ""]
    (out / "demo.json").write_text(json.dumps({**info, "timings": timings, "paths": result.paths}, indent=1,
                                              default=str))
    result.index.write_text("\n".join(lines))
    write_html(result.index)
    return result.index


def clean(out: Path) -> None:
    """Remove a previous demo's outputs (only the names the demo writes; the physics cache is kept, so a
    rerun labels only what is new). A non-empty folder that is not a demo report is refused, never emptied."""
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).exists():
        raise GaitforceError("folder exists and is not a gaitforce demo report; give a new --out", source=out)
    for name in ("data", "dataset", "dataset-labelled", "bundle", "evaluation", "predictions"):
        shutil.rmtree(out / name, ignore_errors=True)
