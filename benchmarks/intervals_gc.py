"""Coverage of the ensemble's 90 % interval on the Grand Challenge, leave-one-year-out (issue 17 item 4).

    python benchmarks/intervals_gc.py --data ../shared/data/grand-challenge --out /tmp/intervals-gc
    python benchmarks/intervals_gc.py --data ... --out ... --members 5 --epochs 20 --network tcn15+bw
    python benchmarks/intervals_gc.py --data ... --out ... --ridge-only     # the ridge-bw baseline's rows (seconds)
    python benchmarks/intervals_gc.py --data ... --out ... --members-by year --protocols paper,strict
        # one member per left-out training year; score chosen on the inner years; CV+ and constant width beside

See gaitforce.evaluate.intervals_gc for the protocol and docs/surrogate.md#uncertainty for the measured table.
"""

import argparse
import os
import time

import torch

from gaitforce.evaluate.intervals_gc import (EPOCHS, MEMBERS, NETWORK, ridge_intervals, ridge_table,
                                             run_group_intervals, run_intervals, write_group_intervals,
                                             write_intervals)

if __name__ == "__main__":
    torch.set_num_threads(1)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--network", default=NETWORK)
    p.add_argument("--epochs", type=int, default=EPOCHS)
    p.add_argument("--members", type=int, default=MEMBERS)
    p.add_argument("--protocols", default="paper")
    p.add_argument("--ridge-only", action="store_true", help="only the ridge-bw constant-width baseline")
    p.add_argument("--members-by", choices=("seed", "year"), default="seed",
                   help="seed: K seeds on the same data; year: one member per left-out training year")
    p.add_argument("--n-points", type=int, default=101)
    p.add_argument("--member-group", choices=("year", "subject"), default="year",
                   help="with --members-by year: leave one year (or one subject) out per member")
    p.add_argument("--member-seeds", type=int, default=1, help="with --members-by year: seeds per left-out group")
    a = p.parse_args()
    t0 = time.time()
    load0 = os.getloadavg()
    os.makedirs(a.out, exist_ok=True)
    ridge = ridge_intervals(a.data, protocols=a.protocols.split(","))
    rt = ridge_table(ridge)
    rt.to_csv(os.path.join(a.out, "ridge_coverage.csv"), index=False)
    print("ridge-bw, constant-width conformal interval:")
    print(rt.round(1).to_string(index=False))
    if a.ridge_only:
        raise SystemExit(0)
    if a.members_by == "year":
        res = run_group_intervals(a.data, network=a.network, epochs=a.epochs, protocols=a.protocols.split(","),
                                  n_points=a.n_points, member_group=a.member_group, member_seeds=a.member_seeds)
        res.settings.update(nproc=os.cpu_count(), load_before=load0, load_after=os.getloadavg())
        write_group_intervals(res, a.out)
        print(res.calibration.to_string(index=False))
        print(res.table.round(2).to_string(index=False))
        print(f"{time.time() - t0:.0f} s, nproc {os.cpu_count()}, load {load0} -> {os.getloadavg()}")
        raise SystemExit(0)
    res = run_intervals(a.data, network=a.network, epochs=a.epochs, members=a.members,
                        protocols=a.protocols.split(","))
    res.settings.update(nproc=os.cpu_count(), load_before=load0, load_after=os.getloadavg())
    write_intervals(res, a.out)
    print(res.table.round(1).to_string(index=False))
    print(f"{time.time() - t0:.0f} s, nproc {os.cpu_count()}, load {load0} -> {os.getloadavg()}")
