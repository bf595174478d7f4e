"""atheris harness: the device module's HTTP response reader (_read_head, _Response) over an
in-memory socket that hands out the response in pieces. What must hold: invariants.py.

    python fuzz/fuzz_http.py [libFuzzer options, e.g. -atheris_runs=100000] [corpus folder]
"""

import sys

import atheris

with atheris.instrument_imports():
    import invariants


def test_one_input(data):
    if not data:
        return
    piece = data[0] % 64 + 1  # how the network splits the response
    invariants.check_http(data[1:], piece)


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
