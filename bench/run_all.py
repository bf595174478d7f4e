"""Every benchmark, one after the other, in one run: `make bench`.

    PYTHONPATH=tests python bench/run_all.py [--plot docs/performance.png]

Each script prints its own table; see docs/performance.md for what they measure.
"""

import argparse
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
SCRIPTS = ["memory.py", "heap.py", "messages.py", "delta.py", "naive.py", "throughput.py", "wire.py", "fleet.py"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plot", metavar="PNG", help="passed to memory.py: heap against window bits")
    args = parser.parse_args()
    failed = []
    for script in SCRIPTS:
        print("\n== bench/%s" % script, flush=True)
        extra = ["--plot", args.plot] if script == "memory.py" and args.plot else []
        if subprocess.run([sys.executable, str(BENCH / script), *extra]).returncode != 0:
            failed.append(script)
    if failed:
        sys.exit("failed: " + ", ".join(failed))


if __name__ == "__main__":
    main()
