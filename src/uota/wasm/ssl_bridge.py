# MicroPython `ssl` module for the simulated device (installed by runner.mjs
# as /lib/ssl.py). TLS is done by Node on the network worker, upgrading the
# connection of an already connected bridge socket. Certificates are not
# verified, like MicroPython's default CERT_NONE. MicroPython 1.20 only had
# ssl.wrap_socket(); SSLContext arrived in 1.22.
import sys
import uctypes
import _uota_net
import socket as _socket

CERT_NONE = 0
CERT_OPTIONAL = 1
CERT_REQUIRED = 2

_start_tls = _uota_net.start_tls
_peer_certificate = _uota_net.peer_certificate


class SSLSocket(_socket.socket):
    def __init__(self, sock, server_hostname):
        super().__init__()
        self._handle = sock._connection()
        self._timeout_ms = sock._timeout_ms
        _socket._check(_start_tls(self._handle, server_hostname, self._timeout_ms))

    def getpeercert(self, binary_form=False):
        if not binary_form:
            raise NotImplementedError("only getpeercert(True) is supported")
        length = _socket._check(_peer_certificate(self._connection(), 0, 0))
        der = bytearray(length)
        _peer_certificate(self._handle, uctypes.addressof(der), length)
        return bytes(der)


def wrap_socket(sock, server_side=False, key=None, cert=None, cert_reqs=CERT_NONE,
                cadata=None, server_hostname=None, do_handshake=True):
    return SSLSocket(sock, server_hostname)


if sys.implementation.version >= (1, 22):
    PROTOCOL_TLS_CLIENT = 0
    PROTOCOL_TLS_SERVER = 1

    class SSLContext:
        def __init__(self, protocol):
            self.protocol = protocol
            self.verify_mode = CERT_NONE

        def wrap_socket(self, sock, server_side=False, do_handshake_on_connect=True,
                        server_hostname=None):
            return SSLSocket(sock, server_hostname)
