"""What the device code's messages cost in peak heap: bench/heap.py's smallest heaps for a copy
of the device code with every error and log message cut to one letter. It bounds what
loading the messages only on failure could save (docs/performance.md, "What the open budgets
would take"); the copy is measured, never shipped.

    PYTHONPATH=tests python bench/messages.py [--json FILE]

The copy is an `ast` rewrite of src/uota/device: each string longer than 10 characters in a
`raise` statement, or given to `_log` or an error class, becomes "E" followed by its `%`
conversions, so that the formatting still runs. Strings of up to 10 characters are interned
names on MicroPython and cost the same either way.
"""

import argparse
import ast
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from heap import DEVICE_DIR

BENCH = Path(__file__).resolve().parent
MESSAGE_CALLS = ("_log", "UotaError", "DownloadError", "VerifyError")
CONVERSION = re.compile(r"%[-+ #0-9.]*[sdrxf%]")


class CutMessages(ast.NodeTransformer):
    def visit_Raise(self, node):
        if node.exc is not None:
            _cut(node.exc)
        return node

    def visit_Call(self, node):
        self.generic_visit(node)
        if isinstance(node.func, ast.Name) and node.func.id in MESSAGE_CALLS:
            for argument in node.args:
                _cut(argument)
        return node


def _cut(expression):
    for node in ast.walk(expression):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and len(node.value) > 10:
            node.value = "E" + "".join(CONVERSION.findall(node.value))


def without_messages(dest):
    """A copy of the device code in dest with its messages cut; returns dest."""
    shutil.copytree(DEVICE_DIR, dest, ignore=shutil.ignore_patterns("__pycache__"))
    for path in dest.rglob("*.py"):
        tree = CutMessages().visit(ast.parse(path.read_text()))
        path.write_text(ast.unparse(tree) + "\n")
    return dest


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, metavar="FILE", help="passed to heap.py")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="uota-messages-") as work:
        copy = without_messages(Path(work) / "device")
        extra = ["--json", str(args.json)] if args.json else []
        print("The device code with every message cut (%s):" % copy, flush=True)
        command = [sys.executable, str(BENCH / "heap.py"), "--device-dir", str(copy), "--skip", "boot", "--skip", "time"]
        sys.exit(subprocess.run(command + extra).returncode)


if __name__ == "__main__":
    main()
