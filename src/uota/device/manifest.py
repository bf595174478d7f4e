# Freezes uota into a MicroPython firmware (1.20 and newer): its bytecode then stays in
# flash instead of the heap (figures in docs/performance.md). Include it from a board's
# manifest, beside what the board already freezes:
#     include("$(MPY_DIR)/ports/esp32/boards/manifest.py")
#     include("/path/to/uota/src/uota/device/manifest.py")
# package.json beside this file lists the same files for mip; keep the two in step.
# _cpython.py is left out: only CPython loads it.
metadata(version="0.1.0", description="Over-the-air updates: check, download, verify, install, recover.")
package("uota", files=[
    "__init__.py",
    "_cfg.py",
    "_core.py",
    "_delta.py",
    "_der.py",
    "_fetch.py",
    "_fleet.py",
    "_http.py",
    "_index.py",
    "_install.py",
    "_latest.py",
    "_listed.py",
    "_lookahead.py",
    "_paths.py",
    "_pin.py",
    "_response.py",
    "_signature.py",
    "_status.py",
    "_tar.py",
    "_tree.py",
    "_trial.py",
    "_url.py",
    "_verify.py",
], opt=3)
