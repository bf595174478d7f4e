"""Real servers on 127.0.0.1 hosting a release folder: `uota serve` and nginx.

    uota_serve(dist, tls=False) -> base URL     runs `python -m uota serve --port 0`
    nginx(dist, tls=False, cert=None, key=None) -> base URL; nginx.access_logs[url]: its
                                                 access log, in `uota fleet`'s format
    run_uota(*args) -> CompletedProcess          (a plain function for tests)
    server_pins(url) -> {form: pin}              what `uota pin URL` prints

Both are factories; every server they start is stopped at teardown. nginx is
required: when it is missing the fixture fails (run `make deps`).
"""

import os
import re
import select
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from uota.fleet import NGINX_LOG_FORMAT
from uota.serve import make_self_signed_certificate

SRC_DIR = Path(__file__).resolve().parent.parent.parent / "src"
_START_TIMEOUT = 20


def uota_command_env():
    """The environment for a `python -m uota` subprocess that imports this checkout."""
    path = [str(SRC_DIR)] + [entry for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep) if entry]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(path))


def _stop(process):
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def uota_serve(tmp_path_factory):
    processes = []

    def start(dist, tls=False):
        log_path = tmp_path_factory.mktemp("uota-serve") / "stderr.log"
        command = [sys.executable, "-m", "uota", "serve", str(dist), "--port", "0"]
        if tls:
            command.append("--tls-self-signed")
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=log, text=True, env=uota_command_env()
            )
        processes.append(process)
        ready, _, _ = select.select([process.stdout], [], [], _START_TIMEOUT)
        first_line = process.stdout.readline() if ready else ""
        match = re.match(r"serving .* at (\S+)$", first_line.strip())
        if not match:
            _stop(process)
            pytest.fail("uota serve did not start: {!r}\n{}".format(first_line, log_path.read_text()))
        return match.group(1)

    yield start
    for process in processes:
        _stop(process)


NGINX_CONF = """\
daemon off;
master_process off;
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/error.log info;
events {{ worker_connections 64; }}
http {{
    {log_format}
    access_log {work}/access.log uota;
    client_body_temp_path {work}/client_body;
    proxy_temp_path {work}/proxy;
    fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi;
    scgi_temp_path {work}/scgi;
    types {{ application/gzip gz tgz; }}
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port}{ssl};
        {tls_files}
        root {dist};
        location = /latest {{
            types {{ }}
            default_type text/plain;
            add_header Cache-Control no-cache;
        }}
    }}
}}
"""


def _nginx_binary():
    binary = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
    if binary is None:
        pytest.fail("nginx is not installed; the tests need it: run `make deps` (or apt-get install nginx)")
    return binary


def free_port():
    """A port on 127.0.0.1 where nothing listens now (connecting to it is refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for_port(port, process, error_log, name="nginx"):
    """True once 127.0.0.1:port accepts connections, False if the process ended first; fails
    the test, showing error_log, when neither happens within the start timeout."""
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.05)
    pytest.fail("{} did not listen on port {} within {}s\n{}".format(name, port, _START_TIMEOUT, error_log.read_text()))


@pytest.fixture
def nginx(tmp_path_factory):
    binary = _nginx_binary()
    processes = []

    def start(dist, tls=False, cert=None, key=None):
        work = tmp_path_factory.mktemp("nginx")
        if tls and cert is None:
            cert, key = make_self_signed_certificate(work, "127.0.0.1")
        tls_files = "ssl_certificate {}; ssl_certificate_key {};".format(cert, key) if tls else ""
        error_log = work / "error.log"
        for _ in range(3):  # the free port may be taken between probing and nginx binding it
            port = free_port()
            conf = work / "nginx.conf"
            conf.write_text(
                NGINX_CONF.format(
                    work=work, port=port, ssl=" ssl" if tls else "", tls_files=tls_files, log_format=NGINX_LOG_FORMAT,
                    dist=Path(dist).resolve(),
                )
            )
            process = subprocess.Popen(
                [binary, "-c", str(conf), "-p", str(work), "-e", str(error_log)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            processes.append(process)
            if _wait_for_port(port, process, error_log):
                url = "{}://127.0.0.1:{}/".format("https" if tls else "http", port)
                start.access_logs[url] = work / "access.log"  # in `uota fleet`'s format
                return url
        pytest.fail("nginx did not start:\n{}".format(error_log.read_text()))

    start.access_logs = {}  # url -> its access log
    yield start
    for process in processes:
        _stop(process)


def run_uota(*args, cwd=None, env=None):
    """Run `python -m uota ARGS` as a user does; return the CompletedProcess (text)."""
    return subprocess.run(
        [sys.executable, "-m", "uota", *map(str, args)],
        cwd=cwd, env=dict(uota_command_env(), **(env or {})),
        capture_output=True, text=True, timeout=120,
    )


def server_pins(url):
    """The pins `uota pin URL` prints, as a user would copy them: {form: hex}."""
    printed = run_uota("pin", url).stdout
    return dict(line.split() for line in printed.splitlines())
