"""A fleet of virtual devices updating at once from nginx on 127.0.0.1.

Each device is a folder and one CPython process per update (uota.runtime's "cpython" device,
which imports nothing but the device module: in a process that has imported much more, each of
the module's gc.collect() calls costs ~20 ms). A pool of threads keeps --workers devices
updating at the same moment. The release is the reference one (bench/memory.py) built with the
default window. Each fleet stops at a time limit; devices not started by then are counted.

    PYTHONPATH=tests python bench/fleet.py [--devices 50 200 1000] [--workers 32] [--time-limit 240]
"""

import argparse
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

from support.fixtures_runtime import DEVICE_MODULE_DIR
from memory import old_device, reference_release
from nginx import nginx, wire_log
from uota.build import build_release
from uota.runtime import run_device

ROOT = Path(__file__).resolve().parent.parent

UPDATE = """
import uota
print(bool(uota.check_for_updates(quiet=True) and uota.install_new_firmware(quiet=True)))
"""


def update_device(root):
    run = run_device("cpython", root, UPDATE, module_dirs=[DEVICE_MODULE_DIR])
    return run.ok and run.stdout.strip() == "True"


def run_fleet(count, workers, time_limit, url, work):
    """(updated, failed, not started, seconds)"""
    roots = [old_device(work / ("device%d" % i), url) for i in range(count)]
    start = time.monotonic()
    with ThreadPoolExecutor(workers) as pool:
        futures = [pool.submit(update_device, root) for root in roots]
        wait(futures, timeout=time_limit)
        for future in futures:
            future.cancel()  # only those not started yet; run_device bounds the running ones
    seconds = time.monotonic() - start
    results = [future.result() for future in futures if not future.cancelled()]
    return sum(results), results.count(False), count - len(results), seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, nargs="+", default=[50, 200, 1000])
    parser.add_argument("--workers", type=int, default=32, help="devices updating at the same moment")
    parser.add_argument("--time-limit", type=float, default=240, help="seconds per fleet")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        reference_release(work / "src", 1)
        release = build_release(work / "src", "2.0.0", work / "dist")
        print("fleet update from nginx, %d KB archive, %d devices at once, %d cores, limit %.0f s" % (
            release.archive_path.stat().st_size // 1024, args.workers, os.cpu_count(), args.time_limit))
        print("%8s %8s %8s %12s %8s %12s %10s" % ("devices", "updated", "failed", "not started", "wall s",
                                                  "devices/s", "requests"))
        for count in args.devices:
            with nginx(work / "dist") as (url, log):
                updated, failed, unfinished, seconds = run_fleet(count, args.workers, args.time_limit, url,
                                                                 work / ("fleet%d" % count))
                requests = len(wire_log(log))
            print("%8d %8d %8d %12d %8.1f %12.1f %10d" % (
                count, updated, failed, unfinished, seconds, updated / seconds, requests))


if __name__ == "__main__":
    main()
