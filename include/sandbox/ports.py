"""Free loopback ports for the servers the tests, the demo and the e2e harness start."""

from __future__ import annotations

import socket


def free_ports(count: int) -> list[int]:
    """Ports the OS just handed out on 127.0.0.1 (bound together so they differ), released for the caller."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()
