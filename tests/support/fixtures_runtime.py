"""Fixtures for running code on simulated devices (see uota.runtime).

`runtime` parametrizes a test over every runtime (ids cpython, mp120, mp129);
`device` is a fresh device on that runtime whose import path holds the device
module directory:

    def test_something(device):
        result = device.run("print(1 + 1)")
        assert result.ok and result.stdout == "2\\n"
"""
import textwrap
from pathlib import Path

import pytest

from uota.runtime import RUNTIMES, DeviceRun, DeviceTimeout, run_device

DEVICE_MODULE_DIR = Path(__file__).resolve().parent.parent.parent / "src" / "uota" / "device"
RUNTIME_IDS = {"cpython": "cpython", "micropython-1.20": "mp120", "micropython-1.29": "mp129"}


class Device:
    """A folder as a device's filesystem, and one runtime to run scripts on it."""

    def __init__(self, runtime, root, module_dirs=(DEVICE_MODULE_DIR,)):
        self.runtime = runtime
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.module_dirs = list(module_dirs)

    def run(self, script, **options) -> DeviceRun:
        """Runs `script` (dedented) on the device; options go to run_device.

        MicroPython 1.20's WebAssembly build hangs after its script about once in a few
        thousand runs (seen after an install had printed its result). A run killed for it
        changed nothing: the runner copies the device's files back only when it ends. So a
        1.20 run that times out is run once more; a second timeout fails the test."""
        options.setdefault("module_dirs", self.module_dirs)
        try:
            return run_device(self.runtime, self.root, textwrap.dedent(script), **options)
        except DeviceTimeout:
            if self.runtime != "micropython-1.20":
                raise
            return run_device(self.runtime, self.root, textwrap.dedent(script), **options)


@pytest.fixture(params=RUNTIMES, ids=[RUNTIME_IDS[name] for name in RUNTIMES])
def runtime(request):
    return request.param


@pytest.fixture
def device(runtime, tmp_path):
    return Device(runtime, tmp_path / "device")
