"""The test toolkit, in the manner of python-tuf's RepositorySimulator: test modules import it
by name (pytest's `pythonpath` has tests/), as the benchmarks do (`PYTHONPATH=tests`).

    releases          the release builder: trees of files, archives (`tar -czf`, tarfile,
                      hand-made members), `latest`, uota.files, and the virtual device that
                      runs update scripts on a runtime (`Device`)
    standard          the standard update: a device on 1.0.0, release 1.1.0, the tree it ends with
    hostile           hostile and broken releases with the reason a device refuses each:
                      one table for the device tests and for `uota check`
    fixtures_runtime  `runtime` (cpython, mp120, mp129) and a bare `device` on it
    fixtures_http     `release_server` (with misbehaviours), `dist`, `server`, TLS identities
    fixtures_servers  `uota_serve` and `nginx`: real static hosts for a folder
    fault_proxy       a TCP proxy that cuts, stalls and corrupts a response
    flash, power_cut  littlefs and FAT on a simulated chip; power-cut sweeps and their verdicts
    device_fs         cutfs: a VFS for MicroPython that cuts the power after N writes
    unix_port         MicroPython's unix port (built from ../shared/micropython) for peak heap
"""
