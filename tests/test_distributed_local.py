"""``LocalFederation``'s lifecycle without Flower: what it starts is always ended (a start that
fails or is interrupted half-way; processes that left their parent's session)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgeft.distributed import local
from edgeft.distributed.local import LocalFederation, descendants, end_processes

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


# A parent whose child leaves its session (setsid) and sleeps, as flower-superexec starts
# flwr-serverapp; the parent prints the child's pid, then sleeps too.
TREE = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"],
                         start_new_session=True)
print(child.pid, flush=True)
time.sleep(120)
"""


def fake_tree(tmp_path) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, "-c", TREE], stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    child = int(proc.stdout.readline())
    assert os.getsid(child) == child != os.getsid(proc.pid)  # not in the parent's group
    return proc, child


@pytest.fixture
def reap():
    pids = []
    yield pids
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("grace_s", [5.0, 0.0])
def test_end_processes_ends_a_descendant_that_left_the_session(tmp_path, reap, grace_s):
    proc, child = fake_tree(tmp_path)
    reap.append(child)
    assert child in descendants([proc.pid])
    end_processes([proc], grace_s)
    assert proc.returncode is not None
    assert wait_gone(child), "the setsid grandchild outlived end_processes"


def test_stop_ends_every_descendant_of_the_federation(tmp_path, reap):
    """What `--timeout` left behind: a flwr-serverapp in the session of the SuperLink's
    flower-superexec, re-parented to init once the SuperLink had gone."""
    fed = LocalFederation(tmp_path / "fed")
    link, child = fake_tree(tmp_path)
    node, node_child = fake_tree(tmp_path)
    reap.extend([child, node_child])
    fed.processes.update({"superlink": link, "supernode-0": node})
    fed.stop(grace_s=5.0)
    assert fed.processes == {}
    assert wait_gone(child) and wait_gone(node_child)
    assert link.returncode is not None and node.returncode is not None


def test_kill_node_ends_that_node_and_its_descendants_only(tmp_path, reap):
    fed = LocalFederation(tmp_path / "fed")
    link, child = fake_tree(tmp_path)
    node, node_child = fake_tree(tmp_path)
    reap.extend([link.pid, child, node_child])
    fed.processes.update({"superlink": link, "supernode-1": node})
    fed.kill_node(1)
    assert wait_gone(node_child) and node.returncode == -signal.SIGKILL
    assert alive(child) and link.poll() is None
    fed.stop(grace_s=5.0)
    assert wait_gone(child)


# -- a run's summary -----------------------------------------------------------------------
@pytest.mark.parametrize("writes", [False, True])
def test_a_finished_runs_summary_is_kept_until_the_new_run_writes_its_own(tmp_path, monkeypatch,
                                                                        writes):
    out = tmp_path / "run"
    out.mkdir()
    (out / "summary.json").write_text('{"rounds_run": 2}')
    fed = LocalFederation(tmp_path / "fed")
    fed.root.mkdir()

    def submit(command, timeout_s):
        assert not (out / "summary.json").exists()  # aside while the run goes
        if writes:
            (out / "summary.json").write_text('{"rounds_run": 4}')
        return (0, "") if writes else (1, "edgeft.errors.InputError: checkpoint: expected ...")

    monkeypatch.setattr(fed, "_submit", submit)
    outcome = fed.run({"out-dir": str(out)})
    assert outcome.summary == ({"rounds_run": 4} if writes else None)
    assert (out / "summary.json").read_text() == \
        ('{"rounds_run": 4}' if writes else '{"rounds_run": 2}')
    assert sorted(p.name for p in out.iterdir()) == ["summary.json"]
