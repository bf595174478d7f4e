"""The Makefile: `make demo` installs only what the demo needs, `make test` the test tools too."""

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def make(*args):
    return subprocess.run(["make", "-C", str(REPO), *map(str, args)], capture_output=True, text=True, timeout=600)


def test_demo_installs_the_package_without_the_test_tools(tmp_path):
    venv = tmp_path / "venv"
    result = make("VENV=" + str(venv), "demo")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 of 3 devices updated from 1.0.0 to 1.1.0" in result.stdout
    for tool in ("pytest", "hypothesis"):
        assert subprocess.run([venv / "bin" / "python", "-c", "import " + tool], capture_output=True).returncode == 1

    # `make test` in the same folder still installs the test tools
    planned = make("-n", "VENV=" + str(venv), "test").stdout
    assert "pip install --quiet -e '.[test]'" in planned
    assert "-m pytest" in planned
