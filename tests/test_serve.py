"""`uota serve`: ranges, validators, HEAD, confinement to DIST, TLS, errors; and the nginx fixture."""

import http.client
import re
import socket
import ssl
import subprocess
import sys
import urllib.request
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.fixtures_servers import run_uota, uota_command_env

from uota.pin import fetch_server_certificate, pins_for_certificate
from uota.serve import start_server

ARCHIVE = bytes(range(256)) * 64  # 16 KiB
LATEST = b"1.0.0;firmware-1.0.0.tar.gz;20;" + b"ab" * 32 + b"\n"


@pytest.fixture
def served_dir(tmp_path):
    folder = tmp_path / "dist"
    folder.mkdir()
    (folder / "firmware-1.0.0.tar.gz").write_bytes(ARCHIVE)
    (folder / "latest").write_bytes(LATEST)
    (tmp_path / "secret").write_bytes(b"outside DIST")
    return folder


@pytest.fixture
def serving(served_dir):
    log_lines = []
    running = start_server(served_dir, log=log_lines.append)
    running.log_lines = log_lines
    yield running
    running.shutdown()


def request(base_url, path, method="GET", headers=None):
    """Send the request target exactly as given (no normalisation); return (status, headers, body)."""
    parts = urlsplit(base_url)
    if parts.scheme == "https":
        context = ssl._create_unverified_context()
        connection = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=10, context=context)
    else:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        connection.request(method, path, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def test_get_sends_the_whole_file_with_its_headers(serving):
    status, headers, body = request(serving.url, "/firmware-1.0.0.tar.gz")
    assert (status, body) == (200, ARCHIVE)
    assert headers["Content-Type"] == "application/gzip"
    assert headers["Content-Length"] == str(len(ARCHIVE))
    assert headers["Accept-Ranges"] == "bytes"
    assert headers["ETag"] and headers["Last-Modified"]
    assert "Cache-Control" not in headers


def test_latest_is_plain_text_and_not_cached(serving):
    status, headers, body = request(serving.url, "/latest")
    assert (status, body) == (200, LATEST)
    assert headers["Content-Type"].startswith("text/plain")
    assert headers["Cache-Control"] == "no-cache"


def test_the_delta_index_is_plain_text_and_not_cached(serving, served_dir):
    (served_dir / "firmware-1.0.0.tar.gz.deltas").write_text("0.9;firmware-1.0.0-from-0.9.tar.gz;4;%s\n" % ("0" * 64))
    status, headers, _ = request(serving.url, "/firmware-1.0.0.tar.gz.deltas")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain")
    assert headers["Cache-Control"] == "no-cache"


@pytest.mark.parametrize(
    "range_header, first, last",
    [
        pytest.param("bytes=100-199", 100, 199, id="closed"),
        pytest.param("bytes=16000-", 16000, len(ARCHIVE) - 1, id="open"),
        pytest.param("bytes=-10", len(ARCHIVE) - 10, len(ARCHIVE) - 1, id="suffix"),
        pytest.param("bytes=16380-99999", 16380, len(ARCHIVE) - 1, id="past-the-end"),
    ],
)
def test_single_range_is_answered_with_206(serving, range_header, first, last):
    status, headers, body = request(serving.url, "/firmware-1.0.0.tar.gz", headers={"Range": range_header})
    assert status == 206
    assert headers["Content-Range"] == "bytes {}-{}/{}".format(first, last, len(ARCHIVE))
    assert body == ARCHIVE[first:last + 1]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first=st.integers(0, 2 * len(ARCHIVE)), length=st.integers(1, 2 * len(ARCHIVE)))
def test_any_closed_range_gets_its_slice_or_416(serving, first, length):
    last = first + length - 1
    status, headers, body = request(
        serving.url, "/firmware-1.0.0.tar.gz", headers={"Range": "bytes={}-{}".format(first, last)}
    )
    if first >= len(ARCHIVE):
        assert (status, body) == (416, b"")
    else:
        assert (status, body) == (206, ARCHIVE[first:last + 1])


@pytest.mark.parametrize("range_header", ["bytes=16384-", "bytes=99999-100000", "bytes=-0"])
def test_unsatisfiable_range_is_416_with_the_size(serving, range_header):
    status, headers, body = request(serving.url, "/firmware-1.0.0.tar.gz", headers={"Range": range_header})
    assert status == 416
    assert headers["Content-Range"] == "bytes */{}".format(len(ARCHIVE))
    assert body == b""


def test_several_ranges_get_the_whole_file(serving):
    status, _, body = request(serving.url, "/firmware-1.0.0.tar.gz", headers={"Range": "bytes=0-1,5-6"})
    assert (status, body) == (200, ARCHIVE)


def test_range_for_a_changed_file_gets_the_whole_file(serving):
    headers = {"Range": "bytes=100-", "If-Range": '"an-old-etag"'}
    status, _, body = request(serving.url, "/firmware-1.0.0.tar.gz", headers=headers)
    assert (status, body) == (200, ARCHIVE)


def test_range_with_the_current_etag_resumes(serving):
    etag = request(serving.url, "/firmware-1.0.0.tar.gz", method="HEAD")[1]["ETag"]
    status, _, body = request(serving.url, "/firmware-1.0.0.tar.gz", headers={"Range": "bytes=100-", "If-Range": etag})
    assert (status, body) == (206, ARCHIVE[100:])


def test_head_sends_the_headers_of_get_and_no_body(serving):
    get_status, get_headers, _ = request(serving.url, "/firmware-1.0.0.tar.gz")
    head_status, head_headers, head_body = request(serving.url, "/firmware-1.0.0.tar.gz", method="HEAD")
    assert (head_status, head_body) == (get_status, b"")
    for name in ("Content-Length", "Content-Type", "ETag", "Last-Modified"):
        assert head_headers[name] == get_headers[name]


def test_matching_etag_gets_304_and_a_new_file_gets_200(serving, served_dir):
    etag = request(serving.url, "/latest")[1]["ETag"]
    status, headers, body = request(serving.url, "/latest", headers={"If-None-Match": etag})
    assert (status, body, headers["ETag"]) == (304, b"", etag)
    (served_dir / "latest").write_bytes(b"1.1.0;firmware-1.1.0.tar.gz\n")
    status, headers, body = request(serving.url, "/latest", headers={"If-None-Match": etag})
    assert (status, body) == (200, b"1.1.0;firmware-1.1.0.tar.gz\n")
    assert headers["ETag"] != etag


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/../secret", id="dot-dot"),
        pytest.param("/%2e%2e/secret", id="encoded-dot-dot"),
        pytest.param("/%2E%2E%2Fsecret", id="encoded-slash"),
        pytest.param("/..%5csecret", id="backslash"),
        pytest.param("/", id="listing"),
        pytest.param("/missing.tar.gz", id="missing"),
        pytest.param("/link-out", id="symlink-outside"),
    ],
)
def test_nothing_outside_dist_is_served(serving, served_dir, path):
    (served_dir / "link-out").symlink_to(served_dir.parent / "secret")
    status, _, body = request(serving.url, path)
    assert status == 404
    assert b"outside DIST" not in body


def test_symlink_inside_dist_is_served(serving, served_dir):
    (served_dir / "current.tar.gz").symlink_to("firmware-1.0.0.tar.gz")
    assert request(serving.url, "/current.tar.gz")[::2] == (200, ARCHIVE)


def test_each_request_gets_an_access_log_line(serving):
    request(serving.url, "/latest")
    request(serving.url, "/nope")
    assert len(serving.log_lines) == 2
    assert '"GET /latest HTTP/1.1" 200' in serving.log_lines[0]
    assert '"GET /nope HTTP/1.1" 404' in serving.log_lines[1]


def test_uota_serve_command_serves_dist_over_http(uota_serve, served_dir):
    base_url = uota_serve(served_dir)
    assert re.match(r"http://127\.0\.0\.1:\d+/$", base_url)
    with urllib.request.urlopen(base_url + "firmware-1.0.0.tar.gz", timeout=10) as response:
        assert response.read() == ARCHIVE


def test_uota_serve_self_signed_prints_the_pins_of_the_served_certificate(served_dir):
    process = subprocess.Popen(
        [sys.executable, "-m", "uota", "serve", str(served_dir), "--port", "0", "--tls-self-signed"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=uota_command_env(),
    )
    try:
        lines = [process.stdout.readline().strip() for _ in range(5)]
        base_url = re.match(r"serving .* at (https://\S+)$", lines[0]).group(1)
        printed = dict(line.split()[1:] for line in lines if line.startswith("pin "))
        assert printed == pins_for_certificate(fetch_server_certificate(base_url))
        assert request(base_url, "/latest")[::2] == (200, LATEST)
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert process.returncode == 0  # SIGTERM is a clean stop


def test_port_in_use_is_a_one_line_error(served_dir):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        result = run_uota("serve", served_dir, "--port", taken.getsockname()[1])
    assert result.returncode == 1
    assert re.fullmatch(r"uota: cannot listen on 127\.0\.0\.1:\d+: .*\n", result.stderr)


def test_unreadable_certificate_is_a_one_line_error(served_dir, tmp_path):
    (tmp_path / "cert.pem").write_text("not a certificate")
    result = run_uota("serve", served_dir, "--port", 0, "--tls-cert", tmp_path / "cert.pem", "--tls-key", tmp_path / "key.pem")
    assert result.returncode == 1
    assert result.stderr.startswith("uota: cannot load TLS certificate") and result.stderr.count("\n") == 1


def test_missing_dist_is_a_one_line_error(tmp_path):
    result = run_uota("serve", tmp_path / "nowhere", "--port", 0)
    assert (result.returncode, result.stderr.count("\n")) == (1, 1)
    assert result.stderr.startswith("uota: ") and "does not exist" in result.stderr


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_nginx_fixture_serves_a_release_byte_exact(nginx, served_dir, tls):
    base_url = nginx(served_dir, tls=tls)
    assert base_url.startswith("https://" if tls else "http://")
    status, headers, body = request(base_url, "/firmware-1.0.0.tar.gz")
    assert (status, body) == (200, ARCHIVE)
    status, headers, body = request(base_url, "/latest")
    assert (status, body, headers["Cache-Control"]) == (200, LATEST, "no-cache")
    assert request(base_url, "/firmware-1.0.0.tar.gz", headers={"Range": "bytes=-10"})[::2] == (206, ARCHIVE[-10:])
