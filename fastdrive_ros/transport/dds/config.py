"""Cyclone DDS configuration (the CYCLONEDDS_URI XML) for the wire peer: unicast, listed peers.

Cyclone discovers by multicast by default and binds its receive sockets to 0.0.0.0 whatever the
configuration says, so the safe default here binds to loopback, turns multicast off and discovers
only the listed unicast peers. Tests must also run in a loopback-only network namespace
(scripts/netns-run); the peer refuses a non-loopback configuration under pytest.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from xml.sax.saxutils import quoteattr

_LOOPBACK_NAMES = {"lo", "localhost"}
_HOST_RE = re.compile(r"^[A-Za-z0-9_.:-]+$")
# DDS vendor ids whose XTypes type information Cyclone ignores: 1.15 = eProsima (Fast DDS).
IGNORE_TYPE_INFORMATION = "1.15"
_VERBOSITY = ("none", "severe", "error", "warning", "info", "config", "fine", "finest")


def _is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, kw_only=True)
class CycloneConfig:
    """Where Cyclone DDS binds and whom it discovers.

    Attributes:
        interface: IP address or interface name to use (127.0.0.1 = loopback only).
        peers: unicast discovery peers (addresses or host names); multicast discovery is off
            unless `allow_multicast`.
        allow_multicast: let Cyclone use multicast for discovery and data (never in tests).
        max_participant_index: unicast discovery probes this many participant ports per peer, so
            it bounds how many participants per host can find each other.
        socket_receive_buffer_mb: UDP receive buffer to ask the kernel for (capped, without
            error, at net.core.rmem_max). Six ~350 kB JPEGs arrive at once; with the usual 208 kB
            default, best-effort camera images were lost on loopback (212/216 delivered in
            `dds.bench`, 216/216 with 4 MB). Raise net.core.rmem_max on a car, as for any ROS 2
            Cyclone setup with camera images.
        verbosity: Cyclone's own log level (written to stderr).
    """

    interface: str = "127.0.0.1"
    peers: tuple[str, ...] = ("127.0.0.1",)
    allow_multicast: bool = False
    max_participant_index: int = 32
    socket_receive_buffer_mb: int = 16
    verbosity: str = "warning"

    def __post_init__(self) -> None:
        object.__setattr__(self, "peers", tuple(self.peers))
        for host in (self.interface, *self.peers):
            if not isinstance(host, str) or not _HOST_RE.match(host):
                raise ValueError(f"not an address, host or interface name: {host!r}")
        if not self.peers and not self.allow_multicast:
            raise ValueError("with multicast off, list at least one unicast peer to discover")
        if not 1 <= self.max_participant_index <= 119:
            raise ValueError(
                f"max_participant_index must be in 1..119, got {self.max_participant_index}"
            )
        if not 1 <= self.socket_receive_buffer_mb <= 2048:
            raise ValueError(
                f"socket_receive_buffer_mb must be in 1..2048, got {self.socket_receive_buffer_mb}"
            )
        if self.verbosity not in _VERBOSITY:
            raise ValueError(f"verbosity must be one of {_VERBOSITY}, got {self.verbosity!r}")

    @classmethod
    def loopback(cls) -> CycloneConfig:
        """Loopback only: bind 127.0.0.1, no multicast, discover on 127.0.0.1 (the default)."""
        return cls()

    @classmethod
    def network(cls, *, interface: str, peers: tuple[str, ...]) -> CycloneConfig:
        """A real network, still unicast-only: bind `interface`, discover exactly `peers`."""
        return cls(interface=interface, peers=peers)

    @property
    def is_loopback(self) -> bool:
        """True when nothing leaves this host (loopback interface and peers, no multicast)."""
        return (
            not self.allow_multicast
            and _is_loopback(self.interface)
            and all(_is_loopback(p) for p in self.peers)
        )

    def to_xml(self) -> str:
        """The Cyclone DDS configuration document (what CYCLONEDDS_URI may hold)."""
        iface = self.interface
        try:
            ipaddress.ip_address(iface)
            iface_attr = f"address={quoteattr(iface)}"
        except ValueError:
            iface_attr = f"name={quoteattr(iface)}"
        multicast = "true" if self.allow_multicast else "false"
        peers = "".join(f"<Peer address={quoteattr(p)}/>" for p in self.peers)
        return (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<CycloneDDS xmlns="https://cdds.io/config"><Domain Id="any">'
            "<General>"
            f"<Interfaces><NetworkInterface {iface_attr} multicast={quoteattr(multicast)}/>"
            "</Interfaces>"
            f"<AllowMulticast>{multicast}</AllowMulticast>"
            "</General>"
            "<Discovery>"
            "<ParticipantIndex>auto</ParticipantIndex>"
            f"<MaxAutoParticipantIndex>{self.max_participant_index}</MaxAutoParticipantIndex>"
            f"<Peers>{peers}</Peers>"
            "</Discovery>"
            f'<Internal><SocketReceiveBufferSize max="{self.socket_receive_buffer_mb}MB"/>'
            "</Internal>"
            f"<Tracing><Verbosity>{self.verbosity}</Verbosity><OutputFile>stderr</OutputFile>"
            "</Tracing>"
            # Fast DDS 3 (Kilted) and Cyclone 11 reject each other's XTypes type information:
            # ignore it from eProsima's vendor id (1.15) or no endpoint ever matches.
            f"<Compatibility><IgnoreTypeInformation>{IGNORE_TYPE_INFORMATION}"
            "</IgnoreTypeInformation></Compatibility>"
            "</Domain></CycloneDDS>"
        )
