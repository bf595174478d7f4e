"""MicroPython-flavoured `ssl` module for the CPython virtual device.

Offers both MicroPython APIs (`wrap_socket()` and `SSLContext`) over CPython's
ssl, without certificate verification like MicroPython's default CERT_NONE.
Works on the wrapper sockets of socket_cpython.
"""
import ssl as _real

import socket_cpython as _socket

CERT_NONE = 0
CERT_OPTIONAL = 1
CERT_REQUIRED = 2
PROTOCOL_TLS_CLIENT = 0
PROTOCOL_TLS_SERVER = 1


def _unverified_client_context():
    context = _real.SSLContext(_real.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = _real.CERT_NONE
    return context


class SSLSocket(_socket.socket):
    def __init__(self, sock, server_hostname):
        # The TLS socket keeps the plain socket's timeout.
        self._sock = _socket._call(
            _unverified_client_context().wrap_socket, sock._sock, server_hostname=server_hostname
        )

    def getpeercert(self, binary_form=False):
        if not binary_form:
            raise NotImplementedError("only getpeercert(True) is supported")
        return self._sock.getpeercert(binary_form=True)


def wrap_socket(sock, server_side=False, key=None, cert=None, cert_reqs=CERT_NONE,
                cadata=None, server_hostname=None, do_handshake=True):
    return SSLSocket(sock, server_hostname)


class SSLContext:
    def __init__(self, protocol):
        self.protocol = protocol
        self.verify_mode = CERT_NONE

    def wrap_socket(self, sock, server_side=False, do_handshake_on_connect=True,
                    server_hostname=None):
        return SSLSocket(sock, server_hostname)
