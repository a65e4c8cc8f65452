"""``LocalFederation``'s lifecycle without Flower: what it starts is always ended (a start that
fails or is interrupted half-way; processes that left their parent's session)."""

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from edgeft.distributed import local
from edgeft.distributed.local import LocalFederation

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"  # a zombie has ended


def wait_gone(pid: int, timeout_s: float = 10.0) -> bool:
    end = time.monotonic() + timeout_s
    while alive(pid) and time.monotonic() < end:
        time.sleep(0.05)
    return not alive(pid)


@pytest.fixture
def fake_flower(tmp_path, monkeypatch):
    """Every Flower command replaced by a script that only sleeps."""
    script = tmp_path / "fake-flower"
    script.write_text(f"#!{sys.executable}\nimport time\ntime.sleep(120)\n")
    script.chmod(0o755)
    monkeypatch.setattr(local, "tool", lambda name: str(script))
    yield script
    for entry in Path("/proc").iterdir():  # a failing test leaves nothing behind either
        try:
            if str(script).encode() in (entry / "cmdline").read_bytes():
                os.kill(int(entry.name), signal.SIGKILL)
        except (OSError, ValueError):
            pass


@pytest.mark.parametrize("failure", [KeyboardInterrupt, OSError])
def test_a_start_interrupted_after_the_superlink_started_ends_it(tmp_path, fake_flower,
                                                                 monkeypatch, failure):
    started = []

    def wait_healthy(self, timeout_s):
        started.append(self.processes["superlink"].pid)
        raise failure("interrupted while waiting for the SuperLink")

    monkeypatch.setattr(LocalFederation, "_wait_healthy", wait_healthy)
    fed = LocalFederation(tmp_path / "fed", num_nodes=2)
    with pytest.raises(failure):
        with fed:
            pytest.fail("the body must not run")
    assert started and fed.processes == {}
    assert wait_gone(started[0]), "the SuperLink outlived a failed start"


def test_a_start_failing_at_the_second_node_ends_the_superlink_and_the_first_node(
        tmp_path, fake_flower, monkeypatch):
    monkeypatch.setattr(LocalFederation, "_wait_healthy", lambda self, timeout_s: None)
    real_start_node = LocalFederation.start_node
    pids = []

    def start_node(self, n):
        if n == 1:
            pids.extend(p.pid for p in self.processes.values())
            raise KeyboardInterrupt
        real_start_node(self, n)

    monkeypatch.setattr(LocalFederation, "start_node", start_node)
    fed = LocalFederation(tmp_path / "fed", num_nodes=3)
    with pytest.raises(KeyboardInterrupt):
        fed.start()
    assert len(pids) == 2 and fed.processes == {}
    assert all(wait_gone(pid) for pid in pids)
