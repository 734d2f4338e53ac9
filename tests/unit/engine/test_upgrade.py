"""The upgrade handshake, on strings."""

from __future__ import annotations

import pytest

from sio_wsgi.engine.upgrade import ProbeStep, UpgradeProbe


def run(*frames: str) -> list[ProbeStep]:
    probe = UpgradeProbe()
    return [probe.receive(frame) for frame in frames]


def test_probe_then_upgrade() -> None:
    assert run("2probe", "5") == [ProbeStep.ANSWER, ProbeStep.COMPLETE]


@pytest.mark.parametrize(
    "frames",
    [
        ("5",),  # upgrade before the probe
        ("2probe", "2probe"),  # a second probe
        ("4hello",),  # a message instead of the probe
        ("2probe", "4hello"),  # a message instead of the upgrade
        ("2",),  # a plain ping
        ("2PROBE",),
        ("",),
    ],
)
def test_anything_else_fails(frames: tuple[str, ...]) -> None:
    assert run(*frames)[-1] is ProbeStep.FAIL
