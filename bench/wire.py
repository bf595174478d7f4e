"""Archive size per window against `tar -czf`, and what a check that finds no update costs.

Sizes are of the reference release (bench/memory.py). The check is a CPython device already on
the published version polling nginx; requests and bytes come from nginx's access log.

    PYTHONPATH=tests python bench/wire.py
"""

import tempfile
from pathlib import Path

from support.fixtures_runtime import DEVICE_MODULE_DIR
from memory import VARIANTS, old_device, publish_release, reference_release
from nginx import nginx, wire_log
from uota.runtime import run_device

ROOT = Path(__file__).resolve().parent.parent

CHECK = "import uota\nprint('RESULT', uota.check_for_updates(quiet=True))\n"


def archive_sizes(work):
    """{(scale, variant): archive bytes}"""
    sizes = {}
    for scale in (1, 4):
        src = work / ("src%d" % scale)
        reference_release(src, scale)
        for variant in VARIANTS:
            sizes[scale, variant] = publish_release(src, Path(tempfile.mkdtemp(dir=work)), variant).stat().st_size
    return sizes


def no_update_check(work):
    """(requests, bytes sent by the device, bytes received) of a check when already up to date."""
    dist = Path(tempfile.mkdtemp(dir=work))
    (dist / "latest").write_text("1.0.0;firmware-1.0.0.tar.gz;100\n")
    with nginx(dist) as (url, log):
        device = old_device(work / "up-to-date", url)
        run = run_device("cpython", device, CHECK, module_dirs=[DEVICE_MODULE_DIR])
        assert "RESULT False" in run.stdout, run.stdout + run.stderr
        entries = wire_log(log)
    return len(entries), sum(entry[2] for entry in entries), sum(entry[3] for entry in entries)


def main():
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        sizes = archive_sizes(work)
        print("archive size per window, KB (and against tar -czf)")
        print("%-8s" % "release" + "".join("%16s" % ("wbits %s" % v if v != "tar" else "tar -czf") for v in VARIANTS))
        for scale in (1, 4):
            print("%-8s" % ("x%d" % scale) + "".join(
                "%9.1f (%4.2f)" % (sizes[scale, v] / 1024, sizes[scale, v] / sizes[scale, "tar"]) for v in VARIANTS))
        requests, sent, received = no_update_check(work)
        print("check finding no update: %d request(s), %d bytes sent, %d bytes received" % (requests, sent, received))


if __name__ == "__main__":
    main()
