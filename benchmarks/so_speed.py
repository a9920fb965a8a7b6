"""Batched static optimisation (gaitforce.physics.so_batch) against OpenSim's StaticOptimization, same run.

Usage: python benchmarks/so_speed.py [--model rajagopal2015|gait14dof22musc] [--trials og1 og3 og4 og5 og6]
                                     [--out /tmp/gf-so-speed] [--json FILE]

For each of DM's GC6 stances (raw TRC+GRF with the static trial, cut as the competitions .mat files are, see
benchmarks/physics_speed.py) it runs the pipeline once (scale, IK, ID, batched SO, JR), then, in two copies of
that work folder, the SO stage and the same JointReaction: OpenSim's SO in one, ours in the other (the first
run's stage CPU seconds are reported too: the labeller per stance with the batched SO). One process,
numpy on one thread. Times are **CPU seconds of this process** (``time.process_time``: what one core spends,
whatever else the machine runs; both solvers are single-threaded here) for each SO stage (ours: model load,
states, moment arms, capacities and the inverse dynamics demand from OpenSim, solve, writing) and, for
context, the wall seconds of each SO + JR call. Reported per model: frames, OpenSim SO and ours per frame
(frames per CPU second, ratio), ours' parts, the largest muscle activation difference and the medial-force
RMSE between the two (N and % of the RMS of OpenSim's medial force), with ``nproc`` and the load average.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))


@contextmanager
def _cpu_clock():
    """The stage timers of the pipeline and so_batch (``_time.perf_counter``) read CPU seconds of this process
    inside the block, so ``seconds['so']``, ``['jr']`` and ours' parts are what one core spent."""
    import types

    from gaitforce.physics import pipeline, so_batch

    saved = pipeline._time, so_batch._time
    clock = types.SimpleNamespace(perf_counter=time.process_time, process_time=time.process_time)
    pipeline._time = so_batch._time = clock
    try:
        yield
    finally:
        pipeline._time, so_batch._time = saved


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="rajagopal2015")
    ap.add_argument("--trials", nargs="+", default=["og1", "og3", "og4", "og5", "og6"])
    ap.add_argument("--out", default="/tmp/gf-so-speed")
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args(argv)

    import opensim as osim
    from physics_speed import dm_stances

    from gaitforce.physics import LabelSettings
    from gaitforce.physics.label import targets_from_tables
    from gaitforce.physics.pipeline import (
        quiet_stdout,
        read_sto,
        run_trial,
        static_optimisation_and_reaction,
    )

    ref_settings = LabelSettings(model=args.model, so="opensim")
    ours_settings = LabelSettings(model=args.model, so="batched")
    stances, statics = dm_stances(args.trials)
    rows = []
    for name, trial in stances.items():
        work = Path(args.out) / args.model / name.replace("#", "_")
        shutil.rmtree(work, ignore_errors=True)
        with _cpu_clock():
            wall = time.perf_counter()
            tables, stages = run_trial(trial, work, ours_settings, static=statics[name])
            stages = {k: v for k, v in stages.items() if k in ("scale", "ik", "id", "so", "jr")}
            stages["wall"] = time.perf_counter() - wall
        t = tables["ik"]["time"].to_numpy()
        runs = {}
        for label, settings in (("opensim", ref_settings), ("ours", ours_settings)):
            folder = work.with_name(f"{work.name}-{label}")
            shutil.rmtree(folder, ignore_errors=True)
            shutil.copytree(work, folder)
            for f in ("so_so_activation.sto", "so_so_force.sto", "jr_jr_ReactionLoads.sto"):
                (folder / f).unlink()
            sec: dict = {}
            wall = time.perf_counter()
            with quiet_stdout(folder / "opensim.log"), _cpu_clock():
                model = osim.Model(str(folder / "model_scaled.osim"))
                model.initSystem()
                static_optimisation_and_reaction(model, folder / "model_scaled.osim", folder / "external_loads.xml",
                                                 float(t[0]), float(t[-1]), folder, settings, sec)
            sec["wall_so_jr"] = time.perf_counter() - wall
            runs[label] = (folder, sec)
        (ref_dir, sec_ref), (our_dir, sec_ours) = runs["opensim"], runs["ours"]
        tab = {k: {**tables, "so": read_sto(d / "so_so_force.sto"), "jr": read_sto(d / "jr_jr_ReactionLoads.sto")}
               for k, d in (("opensim", ref_dir), ("ours", our_dir))}
        side = trial.meta["side"][0]
        ref_t = targets_from_tables(tab["opensim"], side, ref_settings)
        our_t = targets_from_tables(tab["ours"], side, ours_settings)
        a_ref = read_sto(ref_dir / "so_so_activation.sto")
        a_our = read_sto(our_dir / "so_so_activation.sto")
        mus = [c for c in a_ref.columns if c != "time" and not c.startswith(("reserve_", "residual_"))]
        dact = np.abs(a_our[mus].to_numpy() - a_ref[mus].to_numpy())
        med = our_t["knee_medial"].to_numpy() - ref_t["knee_medial"].to_numpy()
        rms_ref = float(np.sqrt(np.mean(ref_t["knee_medial"].to_numpy() ** 2)))
        worst = np.unravel_index(dact.argmax(), dact.shape)
        rows.append({"stance": name, "frames": len(t), "opensim_so_cpu_s": sec_ref["so"],
                     "ours_so_cpu_s": sec_ours["so"], "ours_solve_s": sec_ours["so_solve"],
                     "ours_extract_s": sum(sec_ours[f"so_{k}"] for k in ("load", "states", "arms", "demand")),
                     "opensim_wall_so_jr_s": sec_ref["wall_so_jr"], "ours_wall_so_jr_s": sec_ours["wall_so_jr"],
                     "iterations": sec_ours["so_iterations"],
                     "max_activation_diff": float(dact.max()), "worst": [mus[worst[1]], int(worst[0])],
                     "medial_rmse_n": float(np.sqrt(np.mean(med ** 2))), "medial_rms_ref_n": rms_ref,
                     "total_rmse_n": float(np.sqrt(np.mean((our_t["knee_total"] - ref_t["knee_total"]) ** 2))),
                     "pipeline_cpu_s": stages, "loadavg": list(os.getloadavg())})
        print(json.dumps(rows[-1]), flush=True)
    frames = sum(r["frames"] for r in rows)
    tot = {k: sum(r[k] for r in rows) for k in ("opensim_so_cpu_s", "ours_so_cpu_s", "ours_solve_s",
                                                 "ours_extract_s", "opensim_wall_so_jr_s", "ours_wall_so_jr_s")}
    med_rmse = float(np.sqrt(sum(r["medial_rmse_n"] ** 2 * r["frames"] for r in rows) / frames))
    med_rms = float(np.sqrt(sum(r["medial_rms_ref_n"] ** 2 * r["frames"] for r in rows) / frames))
    result = {
        "model": args.model, "stances": len(rows), "frames": frames, "clock": "CPU seconds (process_time)",
        "opensim_s_per_frame": tot["opensim_so_cpu_s"] / frames,
        "ours_s_per_frame": tot["ours_so_cpu_s"] / frames,
        "ours_solve_s_per_frame": tot["ours_solve_s"] / frames,
        "ours_extract_s_per_frame": tot["ours_extract_s"] / frames,
        "opensim_frames_per_s": frames / tot["opensim_so_cpu_s"],
        "ours_frames_per_s": frames / tot["ours_so_cpu_s"],
        "ours_solve_frames_per_s": frames / tot["ours_solve_s"],
        "speedup_whole_stage": tot["opensim_so_cpu_s"] / tot["ours_so_cpu_s"],
        "speedup_solve": tot["opensim_so_cpu_s"] / tot["ours_solve_s"],
        "wall_so_jr_s": {"opensim": tot["opensim_wall_so_jr_s"], "ours": tot["ours_wall_so_jr_s"]},
        "pipeline_cpu_s_per_stance": {k: float(np.mean([r["pipeline_cpu_s"][k] for r in rows]))
                                      for k in rows[0]["pipeline_cpu_s"]},
        "max_activation_diff": max(r["max_activation_diff"] for r in rows),
        "medial_rmse_n": med_rmse, "medial_rmse_pct": 100 * med_rmse / med_rms,
        "nproc": os.cpu_count(), "loadavg_end": list(os.getloadavg()), "per_stance": rows,
    }
    print(json.dumps({k: v for k, v in result.items() if k != "per_stance"}, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
