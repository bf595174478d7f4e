"""The device module's readers of `latest`, versions and `uota.cfg`, on every runtime.

All cases of a table run in one device script; each prints `repr(result)` or the error type,
so a table is one start of the runtime however long it is.
"""

import pytest

from support.releases import Device

HASH = "8870f8b3bd8b54437f0a7f721cd3f3fe208e60638dcf36a9f4efe31dab58c548"

LATEST_CASES = [
    # the seed's valid examples
    ("2.0.1;firmware.tar.gz", ("2.0.1", "firmware.tar.gz", 0, None)),
    ("2.0.1;firmware.tar.gz;2", ("2.0.1", "firmware.tar.gz", 2, None)),
    ("2.0.1;firmware.tar.gz;0;" + HASH, ("2.0.1", "firmware.tar.gz", 0, HASH)),
    # tolerated: whitespace, CRLF, one trailing ';', upper-case hash, reserved fields
    ("  2.0.1;firmware.tar.gz;2\r\n", ("2.0.1", "firmware.tar.gz", 2, None)),
    ("2.0.1;firmware.tar.gz;2;", ("2.0.1", "firmware.tar.gz", 2, None)),
    ("2.0.1;firmware.tar.gz;0;" + HASH.upper(), ("2.0.1", "firmware.tar.gz", 0, HASH)),
    ("2.0.1;firmware.tar.gz;0;" + HASH + ";future;fields", ("2.0.1", "firmware.tar.gz", 0, HASH)),
    # the seed's invalid examples and other rubbish
    ("firmware.tar.gz", "VerifyError"),
    ("2.0.1;firmware.tar.gz;" + HASH, "VerifyError"),
    ("", "VerifyError"),
    ("2.0.1;;", "VerifyError"),
    ("2.0.1;.", "VerifyError"),
    ("2.0.1;a\\b.tar.gz", "VerifyError"),
    ("2.0.1;firmware.tar.gz;1.5", "VerifyError"),
    ("2.0.1;firmware.tar.gz;0;" + HASH[:-1], "VerifyError"),
    ("x" * 600, "VerifyError"),
    ("2.0.1;firmware.tar.gz;0;" + HASH + ";x=" + "y" * 1000, "VerifyError"),  # longer than a device reads
]

# The named fields after the fourth, and the text a signature covers: all before ";sig=".
SIGNED = "2.0.1;firmware.tar.gz;4;" + HASH + ";size=2048;expires=1900000000"
LATEST_NAMED_CASES = [
    ("2.0.1;firmware.tar.gz;4;" + HASH, ({}, None)),
    (SIGNED + ";sig=0123456789abcdef:QUJD\n", ({"size": "2048", "expires": "1900000000", "sig": "0123456789abcdef:QUJD"}, SIGNED)),
    (SIGNED + ";later=1;sig=k:s", ({"size": "2048", "expires": "1900000000", "later": "1", "sig": "k:s"}, SIGNED + ";later=1")),
    (SIGNED + ";sig=k:s;", ({"size": "2048", "expires": "1900000000", "sig": "k:s"}, SIGNED)),
    ("2.0.1;firmware.tar.gz;4;" + HASH + ";sig=k:s;size=1", "VerifyError"),  # the signature must come last
    ("2.0.1;firmware.tar.gz;4;" + HASH + ";size=-1", "VerifyError"),
    ("2.0.1;firmware.tar.gz;4;" + HASH + ";size=1k", "VerifyError"),
    ("2.0.1;firmware.tar.gz;4;" + HASH + ";expires=soon", "VerifyError"),
    ("2.0.1;firmware.tar.gz;4;" + HASH + ";rollout=10", ({"rollout": "10"}, None)),
    ("2.0.1;firmware.tar.gz;4;" + HASH + ";rollout=101", "VerifyError"),
    ("2.0.1;firmware.tar.gz;4;" + HASH + ";rollout=half", "VerifyError"),
]

VERSION_CASES = [
    ("10.0", "9.0", 1),
    ("1.10", "1.9", 1),
    ("2.0.0", "2.0.0-rc1", 1),
    ("2.0.0-rc2", "2.0.0-rc10", -1),
    ("1.0", "1.0.0", 0),
    ("1.0.0+build5", "1.0.0", 0),
    ("0.9.9", "1.0", -1),
    ("v2", "v10", -1),
    ("1.0_beta", "1.0", -1),
    ("v1", "9.9.9", -1),  # numbers never lose to letters
    ("9.9.9", "v1", 1),
    ("1.0a", "1.0.1", -1),
    ("1.0a", "1.0", -1),
    ("1.0.0", "1.0.a", 1),
    ("2.0-1", "2.0-rc1", 1),
    ("1.0 ", "1.0", "VerifyError"),
    ("1.0;", "1.0", "VerifyError"),
    ("", "1.0", "VerifyError"),
]

CFG_CASES = [
    ("{'url': 'http://h/', 'tmp_filename': 'f'}", {"url": "http://h/", "tmp_filename": "f"}),
    (
        "# comment\n{\n 'url': \"http://h/\",  # trailing\n 'excluded_files': ['a', 'b/',],\n 'delete': (),\n}\n",
        {"url": "http://h/", "excluded_files": ["a", "b/"], "delete": ()},
    ),
    ("{'n': -3, 'f': 1.5, 't': True, 'z': None, 'e': 'a\\'b\\n'}", {"n": -3, "f": 1.5, "t": True, "z": None, "e": "a'b\n"}),
    ("{'headers': {'Authorization': 'Bearer x'}, 'timeout': 5}", {"headers": {"Authorization": "Bearer x"}, "timeout": 5}),
    ("{'url': __import__('os').system('rm -rf /')}", "VerifyError"),
    ("{'url': 'a'} ; import os", "VerifyError"),
    ("{'url': 'a' + 'b'}", "VerifyError"),
    ("['not', 'a', 'dict']", "VerifyError"),
    ("{'url': 'unterminated}", "VerifyError"),
    ("{[1]: 2}", "VerifyError"),
    ("[" * 50 + "]" * 50, "VerifyError"),
    ("", "VerifyError"),
]


def run_table(runtime, tmp_path, call, cases):
    script = "from uota import _cfg, _latest\n" \
             "def attempt(*args):\n" \
             "    try:\n" \
             "        return %s\n" \
             "    except uota.UotaError as e:\n" \
             "        return type(e).__name__\n" \
             "for case in %r:\n" \
             "    print(repr(attempt(*case)))\n" % (call, [c[:-1] for c in cases])
    result = Device(runtime, tmp_path / "device").run(script)
    return [eval(line) for line in result.stdout.strip().splitlines()]


def test_latest_lines(runtime, tmp_path):
    got = run_table(runtime, tmp_path, "_latest.parse_latest(*args)[:4]", LATEST_CASES)
    assert got == [expected for _, expected in LATEST_CASES]


def test_latest_named_fields_and_signed_text(runtime, tmp_path):
    got = run_table(runtime, tmp_path, "_latest.parse_latest(*args)[4:]", LATEST_NAMED_CASES)
    assert got == [expected for _, expected in LATEST_NAMED_CASES]


def test_version_ordering(runtime, tmp_path):
    got = run_table(runtime, tmp_path, "_latest.compare_versions(*args)", VERSION_CASES)
    assert got == [expected for *_, expected in VERSION_CASES]


def test_cfg_literal_reader(runtime, tmp_path):
    got = run_table(runtime, tmp_path, "_cfg.parse_cfg(*args)", CFG_CASES)
    assert got == [expected for _, expected in CFG_CASES]


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/base", "http://127.0.0.1:9/base/"])
def test_url_without_trailing_slash_is_tolerated(runtime, tmp_path, url):
    device = Device(runtime, tmp_path / "device")
    (device.root / "uota.cfg").write_text(repr({"url": url, "tmp_filename": "f"}))

    result = device.run("from uota import _cfg\nprint(_cfg._read_cfg()['url'])")

    assert result.stdout.strip().splitlines()[-1] == "http://127.0.0.1:9/base/"
