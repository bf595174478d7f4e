"""atheris harness: installing a tar (gzipped here, header checksums repaired so that the
fuzzer reaches the fields behind them) on a device root in a temporary folder. What must
hold: invariants.py (only UotaError, nothing written outside the root, a refused archive
changes nothing).

    python fuzz/fuzz_tar.py [libFuzzer options, e.g. -atheris_runs=10000] [corpus folder]

A corpus of plain .tar files (not gzipped) makes a good start.
"""

import sys

import atheris

with atheris.instrument_imports():
    import invariants


def test_one_input(data):
    invariants.install_tar(data)


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
