"""The simulated device harness (uota.runtime) on every runtime.

Scripts run on real MicroPython (WebAssembly port) and on CPython, against
real servers on 127.0.0.1: no part of the network is mocked.
"""
import contextlib
import hashlib
import os
import socket
import ssl
import threading
import time

import pytest

from support.fixtures_runtime import Device
from uota.pin import load_certificate_file
from uota.runtime import DeviceTimeout, run_device
from uota.serve import make_self_signed_certificate

MICROPYTHON = pytest.mark.parametrize("runtime", ["micropython-1.20", "micropython-1.29"], ids=["mp120", "mp129"])


# ---- servers ---------------------------------------------------------------------


@contextlib.contextmanager
def tcp_server(handle, tls_context=None):
    """Serves every connection with handle(conn) in its own thread; yields the port."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve_one(conn):
        with conn:
            try:
                if tls_context is not None:
                    conn = tls_context.wrap_socket(conn, server_side=True)
                handle(conn)
            except OSError:
                pass  # the device hung up; what it saw is what the test checks

    def accept_all():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve_one, args=(conn,), daemon=True).start()

    threading.Thread(target=accept_all, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        listener.close()


def sender(payload):
    """A handler that sends payload and closes."""
    return lambda conn: conn.sendall(payload)


def sha256_hex(data):
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(params=["micropython-1.20", "micropython-1.29"], ids=["mp120", "mp129"])
def bridge_device(request, tmp_path):
    """The socket and ssl bridge exists on MicroPython only: CPython uses its own modules."""
    return Device(request.param, tmp_path / "device")


@pytest.fixture(scope="module")
def tls_certificate(tmp_path_factory):
    """A self-signed certificate for localhost: (cert PEM path, key PEM path, DER bytes)."""
    cert_path, key_path = make_self_signed_certificate(tmp_path_factory.mktemp("tls"), "localhost")
    return cert_path, key_path, load_certificate_file(cert_path)


def server_tls_context(tls_certificate):
    cert_path, key_path, _ = tls_certificate
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    return context


CONNECT = """
import socket
sock = socket.socket()
sock.settimeout({timeout})
sock.connect(socket.getaddrinfo("127.0.0.1", {port})[0][-1])
"""


# ---- filesystem --------------------------------------------------------------------


def test_files_created_changed_and_deleted_by_the_script_appear_on_the_host(device):
    (device.root / "keep.txt").write_text("kept")
    (device.root / "change.txt").write_text("before")
    (device.root / "gone.txt").write_text("doomed")
    (device.root / "old").mkdir()
    (device.root / "old" / "x.txt").write_text("x")

    result = device.run(
        """
        import os
        with open("change.txt", "w") as f:
            f.write("after")
        os.remove("gone.txt")
        os.remove("old/x.txt")
        os.rmdir("old")
        os.mkdir("new")
        os.mkdir("new/deeper")
        with open("new/deeper/data.bin", "wb") as f:
            f.write(bytes(range(256)))
        """
    )

    assert result.ok, result.stderr
    files = {p.relative_to(device.root).as_posix() for p in device.root.rglob("*")}
    assert files == {"keep.txt", "change.txt", "new", "new/deeper", "new/deeper/data.bin"}
    assert (device.root / "keep.txt").read_text() == "kept"
    assert (device.root / "change.txt").read_text() == "after"
    assert (device.root / "new/deeper/data.bin").read_bytes() == bytes(range(256))


def test_device_state_persists_across_boots(device):
    boot = """
    try:
        with open("boots") as f:
            count = int(f.read())
    except OSError:
        count = 0
    with open("boots", "w") as f:
        f.write(str(count + 1))
    print(count + 1)
    """
    assert [device.run(boot).stdout for _ in range(3)] == ["1\n", "2\n", "3\n"]


def test_files_are_written_back_even_when_the_script_raises(device):
    result = device.run(
        """
        with open("written-before-the-crash.txt", "w") as f:
            f.write("saved")
        raise RuntimeError("crash")
        """
    )

    assert result.returncode == 1
    assert (device.root / "written-before-the-crash.txt").read_text() == "saved"


# ---- process -------------------------------------------------------------------------


def test_uncaught_exception_exits_1_with_traceback_on_stderr(device):
    result = device.run(
        """
        def fail():
            raise ValueError("boom")
        fail()
        """
    )

    assert result.returncode == 1
    assert "Traceback" in result.stderr
    assert "ValueError: boom" in result.stderr


def test_sys_exit_code_is_the_exit_status(device):
    assert device.run("import sys\nsys.exit(3)").returncode == 3


def test_stdout_is_captured_including_an_unterminated_last_line(device):
    result = device.run("print('line')\nprint('partial', end='')")

    assert result.ok and result.stdout == "line\npartial"


def test_module_dirs_come_first_on_the_import_path(runtime, tmp_path):
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "uota.py").write_text("ORIGIN = 'module dir'\n")
    device = Device(runtime, tmp_path / "device", module_dirs=[modules])
    (device.root / "uota.py").write_text("ORIGIN = 'device files'\n")

    result = device.run("import uota\nprint(uota.ORIGIN)")

    assert result.stdout == "module dir\n", result.stderr


def test_device_files_are_importable(device):
    (device.root / "app.py").write_text("def answer():\n    return 42\n")

    assert device.run("import app\nprint(app.answer())").stdout == "42\n"


def test_script_running_too_long_is_killed_with_an_error_that_shows_what_it_printed(device):
    with pytest.raises(DeviceTimeout, match="killed after 3s; stdout so far: started; stderr so far: warned"):
        device.run("import sys\nprint('started')\nsys.stderr.write('warned\\n')\nwhile True:\n    pass", timeout=3)


# ---- sockets -------------------------------------------------------------------------


def test_200kb_round_trip_through_readinto_is_byte_exact(bridge_device):
    payload = os.urandom(200 * 1024)
    echoed = bytearray()

    def send_and_collect_echo(conn):
        def send():
            conn.sendall(payload)
            conn.shutdown(socket.SHUT_WR)

        threading.Thread(target=send, daemon=True).start()
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                return
            echoed.extend(chunk)

    with tcp_server(send_and_collect_echo) as port:
        result = bridge_device.run(
            CONNECT.format(port=port, timeout=10)
            + """
import hashlib, binascii
view = memoryview(bytearray(4096))
digest = hashlib.sha256()
total = 0
while True:
    n = sock.readinto(view)
    if not n:
        break
    digest.update(view[:n])
    sock.write(view[:n])
    total += n
sock.close()
print(total, binascii.hexlify(digest.digest()).decode())
"""
        )

    assert result.stdout.split() == [str(len(payload)), sha256_hex(payload)], result.stderr
    assert bytes(echoed) == payload


def test_readline_recv_and_read_split_the_stream_like_micropython(bridge_device):
    with tcp_server(sender(b"first line\nsecond\nthe rest")) as port:
        result = bridge_device.run(
            CONNECT.format(port=port, timeout=10)
            + """
print(sock.readline())
print(sock.recv(3))
print(sock.readline())
print(sock.read())
print(sock.read())
sock.close()
sock.close()
"""
        )

    assert result.stdout.splitlines() == ["b'first line\\n'", "b'sec'", "b'ond\\n'", "b'the rest'", "b''"], (
        result.stderr
    )


def test_readinto_with_nbytes_fills_only_that_many(bridge_device):
    with tcp_server(sender(b"abcdef")) as port:
        result = bridge_device.run(
            CONNECT.format(port=port, timeout=10)
            + """
buf = bytearray(6)
print(sock.readinto(buf, 2), sock.readinto(memoryview(buf)[2:]), bytes(buf), sock.readinto(buf))
"""
        )

    assert result.stdout == "2 4 b'abcdef' 0\n", result.stderr


def test_connection_refused_raises_oserror_111(bridge_device):
    with socket.create_server(("127.0.0.1", 0)) as probe:
        closed_port = probe.getsockname()[1]

    result = bridge_device.run(
        """
        import socket
        try:
            socket.socket().connect(("127.0.0.1", %d))
        except OSError as e:
            print(e.errno)
        """
        % closed_port
    )

    assert result.stdout == "111\n", result.stderr


def test_server_that_never_answers_raises_oserror_110_after_the_timeout(bridge_device):
    hang_up = threading.Event()

    with tcp_server(lambda conn: hang_up.wait(30)) as port:
        started = time.monotonic()
        result = bridge_device.run(
            CONNECT.format(port=port, timeout=1)
            + """
try:
    sock.readinto(bytearray(10))
except OSError as e:
    print(e.errno)
"""
        )
        elapsed = time.monotonic() - started
        hang_up.set()

    assert result.stdout == "110\n", result.stderr
    assert 1 <= elapsed < 15


def test_unknown_host_raises_oserror_minus_2(bridge_device):
    result = bridge_device.run(
        """
        import socket
        try:
            socket.getaddrinfo("no-such-host.invalid", 80)
        except OSError as e:
            print(e.args[0])
        """
    )

    assert result.stdout == "-2\n", result.stderr


def test_localhost_resolves_to_loopback(bridge_device):
    result = bridge_device.run("import socket\nprint(socket.getaddrinfo('localhost', 8080))")

    assert result.stdout == "[(2, 1, 6, '', ('127.0.0.1', 8080))]\n", result.stderr


@MICROPYTHON
def test_readinto_allocation_does_not_grow_with_the_payload(tmp_path, runtime):
    def allocated_while_reading(size):
        with tcp_server(sender(bytes(size))) as port:
            result = Device(runtime, tmp_path / str(size)).run(
                CONNECT.format(port=port, timeout=10)
                + """
import gc

def read_all(buf):
    before = gc.mem_alloc()
    while sock.readinto(buf):
        pass
    return gc.mem_alloc() - before

print(read_all(bytearray(512)))
"""
            )
        assert result.ok, result.stderr
        return int(result.stdout)

    # These builds never collect garbage while a script runs, so this counts
    # every byte allocated: the bridge writes straight into the buffer.
    assert allocated_while_reading(100 * 1024) == 0
    assert allocated_while_reading(400 * 1024) == 0


# ---- TLS ------------------------------------------------------------------------------

TLS_CLIENT = """
import ssl, hashlib, binascii
if hasattr(ssl, "SSLContext"):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.verify_mode = ssl.CERT_NONE
    sock = context.wrap_socket(sock, server_hostname="localhost")
else:
    sock = ssl.wrap_socket(sock, server_hostname="localhost")
print(binascii.hexlify(hashlib.sha256(sock.getpeercert(True)).digest()).decode())
sock.write(b"GET\\n")
data = sock.read()
print(len(data), binascii.hexlify(hashlib.sha256(data).digest()).decode())
sock.close()
"""


def test_tls_round_trip_and_peer_certificate(bridge_device, tls_certificate):
    payload = os.urandom(100 * 1024)

    def answer_request(conn):
        assert conn.recv(4) == b"GET\n"
        conn.sendall(payload)

    with tcp_server(answer_request, server_tls_context(tls_certificate)) as port:
        result = bridge_device.run(CONNECT.format(port=port, timeout=10) + TLS_CLIENT)

    certificate_der = tls_certificate[2]
    assert result.stdout.splitlines() == [
        sha256_hex(certificate_der),
        "%d %s" % (len(payload), sha256_hex(payload)),
    ], result.stderr


@pytest.mark.parametrize(
    "runtime, api",
    [
        ("micropython-1.20", "False True"),
        ("micropython-1.29", "True True"),
    ],
    ids=["mp120", "mp129"],
)
def test_ssl_api_matches_the_micropython_version(tmp_path, runtime, api):
    result = run_device(runtime, tmp_path, "import ssl\nprint(hasattr(ssl, 'SSLContext'), hasattr(ssl, 'wrap_socket'))")

    assert result.stdout == api + "\n", result.stderr


def test_micropython_120_has_the_u_prefixed_aliases(tmp_path):
    result = run_device(
        "micropython-1.20", tmp_path, "import usocket, ussl\nprint(usocket.socket, ussl.wrap_socket)"
    )

    assert result.ok, result.stderr


def test_micropython_120_time_has_time_for_logging(tmp_path):
    result = run_device(
        "micropython-1.20", tmp_path, "import time, logging\nprint(time.time() > 1700000000)\nlogging.error('logged')"
    )

    assert result.stdout == "True\n" and "logged" in result.stderr, result.stderr
