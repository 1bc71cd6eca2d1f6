"""What Cyclone really binds (issue 11): the help and the start-up log must not overpromise."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from fastdrive_ros.cli import build_app
from fastdrive_ros.transport.dds.sockets import BoundSocket, _decode, describe, udp_sockets


def test_proc_net_udp_addresses_decode() -> None:
    assert _decode("0100007F:1CF2") == ("127.0.0.1", 7410)
    assert _decode("00000000:1CF3") == ("0.0.0.0", 7411)
    assert _decode("00000000000000000000000001000000:0035") == ("::1", 53)
    text = describe([BoundSocket("0.0.0.0", 7410), BoundSocket("127.0.0.1", 40000)])
    assert "ALL interfaces 0.0.0.0:7410" in text and "configured interface 127.0.0.1:40000" in text


def test_a_udp_socket_of_this_process_is_found() -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        assert BoundSocket("127.0.0.1", port) in udp_sockets()
    assert BoundSocket("127.0.0.1", port) not in udp_sockets()


def test_help_says_what_cyclone_binds() -> None:
    for command in ("drive", "play"):
        result = CliRunner().invoke(build_app(), [command, "--help"], env={"COLUMNS": "200"})
        text = " ".join(result.output.split())
        assert "RECEIVE sockets" in text and "0.0.0.0" in text, command


def test_cyclone_binds_receive_sockets_to_all_interfaces(loopback_netns, caplog) -> None:
    """Measured, not assumed: with --interface 127.0.0.1 the send socket is on loopback, the
    discovery/data receive sockets are on 0.0.0.0. If a Cyclone release changes this, the help
    text and README must change with it."""
    pytest.importorskip("cyclonedds", reason="pip install 'fastdrive_ros[dds]'")
    from fastdrive_ros.transport.dds.peer import RosDdsPeer

    with (
        caplog.at_level("INFO", logger="fastdrive_ros.transport.dds.peer"),
        RosDdsPeer(domain_id=7),
    ):
        sockets = udp_sockets()
    base = 7400 + 250 * 7
    wide = {s.port for s in sockets if s.all_interfaces}
    assert {base + 10, base + 11} <= wide  # participant index 0: discovery and data unicast
    assert any(s.address == "127.0.0.1" for s in sockets)  # sending: the configured interface
    assert f"ALL interfaces 0.0.0.0:{base + 10}" in caplog.text
