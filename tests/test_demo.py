"""`uota demo` (what `make demo` runs) goes end to end and leaves nothing behind.

Its output is compared with the golden transcript `test_demo.exp` after replacing what varies
between runs and machines (port, hashes, compressed sizes), as mpremote's tests do.
"""

import re
import socket
from pathlib import Path

import pytest

from support.fixtures_servers import run_uota

GOLDEN = Path(__file__).with_suffix(".exp")
_NORMALISE = [
    (re.compile(r"/\S*/uota-demo-[^/\s]+"), "${TMP}"),
    (re.compile(r"127\.0\.0\.1:\d+"), "127.0.0.1:${PORT}"),
    (re.compile(r"\b[0-9a-f]{64}\b"), "${SHA256}"),
    (re.compile(r"\(\d+ bytes\)"), "(${SIZE} bytes)"),
    (re.compile(r"(;firmware-[\d.]+\.tar\.gz;)\d+;"), r"\1${FREE_KB};"),
    (re.compile(r"key [0-9a-f]{16}\b"), "key ${KEYID}"),
    (re.compile(r";size=\d+;"), ";size=${SIZE};"),
]


def normalise(text):
    for pattern, replacement in _NORMALISE:
        text = pattern.sub(replacement, text)
    return text


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """One run of `uota demo`, with its own TMPDIR to see what it leaves there."""
    temp_dir = tmp_path_factory.mktemp("demo-tmp")
    result = run_uota("demo", env={"TMPDIR": str(temp_dir)})
    return result, temp_dir


def test_demo_updates_every_device(demo):
    result, _ = demo

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("  version before: 1.0.0\n") == 3
    assert result.stdout.count("  version after: 1.1.0\n") == 3
    assert result.stdout.count("  files match release 1.1.0 (config.json and ota.pub kept)\n") == 3
    assert result.stdout.count("  signed by key ") == 2
    assert "3 of 3 devices updated from 1.0.0 to 1.1.0" in result.stdout


def test_demo_output_matches_golden_transcript(demo):
    result, _ = demo

    assert normalise(result.stdout) == GOLDEN.read_text()


def test_demo_stops_its_server(demo):
    result, _ = demo
    port = int(re.search(r"serving dist at http://127\.0\.0\.1:(\d+)/", result.stdout).group(1))

    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_demo_removes_its_temporary_folder(demo):
    result, temp_dir = demo

    assert result.returncode == 0
    assert list(temp_dir.iterdir()) == []


def test_demo_keep_leaves_the_folder(tmp_path):
    keep = tmp_path / "demo"

    result = run_uota("demo", "--keep", keep)

    assert result.returncode == 0, result.stdout + result.stderr
    assert (keep / "dist" / "latest").read_text().startswith("1.1.0;")
    assert (keep / "devices" / "micropython-1.20" / "version").read_text() == "1.1.0"
