"""atheris harness: the device module's `latest` parser. What must hold: invariants.py.

    python fuzz/fuzz_latest.py [libFuzzer options, e.g. -atheris_runs=100000] [corpus folder]
"""

import sys

import atheris

with atheris.instrument_imports():
    import invariants


def test_one_input(data):
    try:
        text = data.decode()
    except UnicodeDecodeError:
        return  # the device refuses a latest that is not text before parsing it
    invariants.check_latest(text)


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
