"""The Grand Challenge benchmark as a script (the same as ``gaitforce benchmark grand-challenge``).

    python benchmarks/grand_challenge.py --data ../shared/data/grand-challenge --out /tmp/bench-gc
    python benchmarks/grand_challenge.py --data ../shared/data/grand-challenge --out /tmp/bench-gc --reduced

See docs/benchmark-gc.md for the protocol and the measured table.
"""

import sys

import torch

from gaitforce.cli import main

if __name__ == "__main__":
    torch.set_num_threads(1)
    sys.exit(main(["benchmark", "grand-challenge", *sys.argv[1:]]))
