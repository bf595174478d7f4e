"""atheris harness: the device module's uota.cfg literal reader. What must hold: invariants.py.

    python fuzz/fuzz_cfg.py [libFuzzer options, e.g. -atheris_runs=100000] [corpus folder]
"""

import sys

import atheris

with atheris.instrument_imports():
    import invariants


def test_one_input(data):
    try:
        text = data.decode()
    except UnicodeDecodeError:
        return  # open() in text mode refuses it before the reader sees it
    invariants.check_cfg(text)


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
