"""Which UDP sockets this process has bound, and where: what Cyclone really listens on.

Cyclone DDS (11.x, the PyPI wheel) binds the sockets it *sends* from to the configured interface,
but its *receive* sockets (discovery and data unicast, ports 7400 + 250 * domain + 10 + 2 * i and
+ 11) to 0.0.0.0 whatever the configuration says: it has no option to bind them (its maintainers
keep one socket per port for every interface). `--interface 127.0.0.1` therefore means "send,
advertise and discover on loopback only", not "unreachable from other hosts": a datagram from
another host to those ports is accepted. The node logs the sockets it actually got (read from
/proc, Linux only) so nobody has to take the configuration's word for it.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class BoundSocket:
    """One UDP socket of this process: its local address and port."""

    address: str
    port: int

    @property
    def all_interfaces(self) -> bool:
        """Bound to 0.0.0.0 / :: (reachable on every interface)."""
        return ipaddress.ip_address(self.address).is_unspecified

    def __str__(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"


def _decode(hex_addr: str) -> tuple[str, int]:
    """/proc/net/udp's "0100007F:1CF2" (little-endian words) -> ("127.0.0.1", 7410)."""
    host, port = hex_addr.split(":")
    raw = bytes.fromhex(host)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.ip_address(words)), int(port, 16)


def udp_sockets(proc: Path = Path("/proc")) -> list[BoundSocket]:
    """The UDP sockets this process holds ([] where /proc is not Linux's)."""
    try:
        inodes = set()
        for fd in (proc / "self" / "fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
        found: list[BoundSocket] = []
        for table in ("udp", "udp6"):
            path = proc / "self" / "net" / table
            if not path.is_file():
                continue
            for line in path.read_text().splitlines()[1:]:
                fields = line.split()
                if len(fields) > 9 and fields[9] in inodes:
                    found.append(BoundSocket(*_decode(fields[1])))
        return sorted(found, key=lambda s: (s.port, s.address))
    except OSError:
        return []


def describe(sockets: list[BoundSocket]) -> str:
    """One line: which sockets listen on every interface and which on one address."""
    wide = [str(s) for s in sockets if s.all_interfaces]
    narrow = [str(s) for s in sockets if not s.all_interfaces]
    parts = []
    if wide:
        parts.append(
            f"on ALL interfaces {', '.join(wide)} (Cyclone binds its receive sockets to "
            "0.0.0.0 whatever the configuration says; firewall these ports or use a network "
            "namespace to keep other hosts out)"
        )
    if narrow:
        parts.append(f"on the configured interface {', '.join(narrow)}")
    return "UDP sockets: " + ("; ".join(parts) if parts else "none found (not Linux?)")
