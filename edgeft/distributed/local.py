"""A local federation on loopback, started, used and stopped: the two Flower engines on one host.

- ``deployment``: one ``flower-superlink`` and ``num_nodes`` ``flower-supernode`` processes,
  each node holding one data partition (``--node-config "partition-id=n num-partitions=N"``)
  and its own cache folder; every process on its own free port of 127.0.0.1;
- ``secure`` (deployment): TLS on every connection and SuperNode authentication: a local CA
  and keys (:mod:`edgeft.distributed.credentials`), the SuperLink started with
  ``--ssl-*`` and ``--enable-supernode-auth``, each node's public key registered with
  ``flwr supernode register`` before the node starts with ``--root-certificates`` and
  ``--auth-supernode-private-key``;
- ``simulation``: one ``flower-superlink --simulation``; ``flwr run`` asks for ``num_nodes``
  simulated SuperNodes on Ray, capped for a small host: one CPU per client, ``ray_cpus`` CPUs
  in all, a 100 MB object store (``RAY_DEFAULT_OBJECT_STORE_MAX_MEMORY_BYTES``), no dashboard.

:meth:`LocalFederation.run` submits the app (``flwr run <app> <connection> --stream``) with a run
configuration and waits for it; ``summary.json`` in its ``out-dir`` says how it ended. Every
process runs in its own session; :meth:`LocalFederation.stop` (and :meth:`kill_node`, the
fault tests' crash) ends the processes this federation started, their process groups and every
descendant found through ``/proc`` (:func:`end_processes`), also the ServerApp and ClientApp
processes that Flower's SuperExec starts in sessions of their own; a :meth:`start` that fails
or is interrupted ends what it had started. Flower's state (``FLWR_HOME``: the connection file,
installed apps, logs) and every log file live under the federation's folder. Used by
``edgeft flower local`` (``./dev.sh flower-local``), the tests and
``benchmarks/flower_overhead.py``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from edgeft import checks
from edgeft.errors import InputError, RunError

ENGINES = ("deployment", "simulation")
CONNECTION = "edgeft-local"
APP_DIR = Path(__file__).resolve().parent / "app"  # the Flower app folder (package data)
OBJECT_STORE_BYTES = 100 * 2**20
# Ray gives its raylet a fixed 30 s to register (ray/_private/node.py); on an overloaded host it
# may not, and the simulation never starts. Such a run is submitted again, once.
RAY_START_FAILURE = "The current node timed out during startup"
RAY_START_RETRIES = 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tool(name: str) -> str:
    """A Flower command of this environment (beside this Python)."""
    path = Path(sys.executable).with_name(name)
    return str(path) if path.exists() else name


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


def _stat(pid: int) -> tuple[int, str, int] | None:
    """(parent pid, state, start time in clock ticks) of a process, or None if it has gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # "pid (comm) state ppid ... starttime (field 22) ...": comm may hold spaces and ")"
    rest = stat[stat.rindex(")") + 2:].split()
    return int(rest[1]), rest[0], int(rest[19])


def _alive(pid: int, started: int | None) -> bool:
    """The process ``pid`` that started at ``started`` runs (a zombie has ended; a process
    with another start time got a reused pid)."""
    stat = _stat(pid)
    return stat is not None and stat[1] != "Z" and stat[2] == started


def descendants(pids) -> dict[int, int]:
    """Every process below ``pids`` (children, their children, ...) with its start time, found
    by the parent id in each ``/proc/<pid>/stat``: also those that started a session of their
    own (``setsid``), as Flower's SuperExec and the ServerApp and ClientApp processes it starts
    do, which their ancestors' process groups do not reach. Empty without ``/proc``."""
    children: dict[int, list[tuple[int, int]]] = {}
    with contextlib.suppress(OSError):
        for entry in os.listdir("/proc"):
            stat = _stat(int(entry)) if entry.isdigit() else None
            if stat is not None:
                children.setdefault(stat[0], []).append((int(entry), stat[2]))
    found: dict[int, int] = {}
    todo = list(pids)
    while todo:
        for child, started in children.get(todo.pop(), ()):
            if child not in found:
                found[child] = started
                todo.append(child)
    return found


def end_processes(procs: list[subprocess.Popen], grace_s: float,
                  sig: int = signal.SIGTERM) -> None:
    """End ``procs``, their process groups and every descendant: ``sig`` to all of them at
    once, then SIGKILL to whatever is left after ``grace_s`` (at once with ``grace_s = 0``).

    The descendants are collected before any signal: a process whose parent has ended is
    re-parented to init and can no longer be traced to the federation. Those started in the
    meantime are collected again before the SIGKILL."""
    roots = [p.pid for p in procs]
    tree = descendants(roots)

    def signal_all(signum: int, pids) -> None:
        for pid in roots:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signum)  # each root leads its own session's group
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signum)

    signal_all(sig, tree)
    end = time.monotonic() + grace_s
    while time.monotonic() < end:
        if all(p.poll() is not None for p in procs) and \
                not any(_alive(pid, started) for pid, started in tree.items()):
            break
        time.sleep(0.05)
    living = {pid: started for pid, started in tree.items() if _alive(pid, started)}
    living.update(descendants([p.pid for p in procs if p.poll() is None] + list(living)))
    signal_all(signal.SIGKILL, living)
    for p in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(timeout=5.0)


@dataclass
class RunOutcome:
    returncode: int
    output: str
    wall_s: float
    summary: dict | None

    @property
    def error(self) -> str:
        """The ServerApp's exception (its last line), or ''."""
        import re

        found = re.findall(r"^[\w.]+(?:Error|Exception|Mismatch): .*$", self.output, re.M)
        return found[-1] if found else ""

    @property
    def edgeft_error(self) -> tuple[str, int] | None:
        """(message, exit code) when the ServerApp's exception is one of
        :mod:`edgeft.errors` (an :class:`InputError` found there is still bad input: 2)."""
        from edgeft import errors

        name, _, message = self.error.partition(": ")
        cls = getattr(errors, name.removeprefix("edgeft.errors."), None) \
            if name.startswith("edgeft.errors.") else None
        if isinstance(cls, type) and issubclass(cls, errors.EdgeftError):
            return message, cls.exit_code
        return None


@dataclass
class LocalFederation:
    """A SuperLink and (deployment) SuperNodes under ``root``; a context manager."""

    root: Path
    engine: str = "deployment"
    num_nodes: int = 3
    ray_cpus: int = 2
    node_threads: int = 1
    secure: bool = False
    port: int = 0
    node_ports: list[int] = field(default_factory=list)
    processes: dict = field(default_factory=dict)
    started_s: float = 0.0  # host seconds from start() until the SuperLink answered

    def __post_init__(self):
        checks.choice("engine", self.engine, ENGINES)
        checks.integer("nodes", self.num_nodes, 1, 64)
        checks.integer("ray_cpus", self.ray_cpus, 1, 1024)
        if self.secure and self.engine != "deployment":
            raise InputError("secure", self.secure, "the deployment engine (the simulation "
                             "engine has no network between nodes)")
        self.root = Path(self.root).resolve()
        self.credentials = None

    # -- lifecycle -----------------------------------------------------------------------
    def __enter__(self) -> LocalFederation:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def home(self) -> Path:
        return self.root / "flwr-home"

    def env(self) -> dict:
        env = dict(os.environ)
        env.update({
            "FLWR_HOME": str(self.home),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
            "OMP_WAIT_POLICY": "PASSIVE",
            "OMP_NUM_THREADS": str(self.node_threads),
            "FLWR_SUPEREXEC_TASK_POLL_INTERVAL": "0.2",  # pick a node's task up quickly
            "FLWR_DISABLE_UPDATE_CHECK": "1",
            "RAY_DEFAULT_OBJECT_STORE_MAX_MEMORY_BYTES": str(OBJECT_STORE_BYTES),
            "RAY_DISABLE_USAGE_STATS": "1",
            "RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO": "0",
            "TOKENIZERS_PARALLELISM": "false",
        })
        return env

    def _spawn(self, name: str, command: list[str]) -> subprocess.Popen:
        log = open(self.root / f"{name}.log", "ab")  # noqa: SIM115 - the process owns it
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=self.env(),
                                cwd=self.root, start_new_session=True)
        log.close()
        self.processes[name] = proc
        return proc

    def start(self, timeout_s: float = 60.0) -> None:
        """Start the SuperLink (and the SuperNodes); returns when the SuperLink answers. On any
        exception (a failed start, Ctrl-C, SIGTERM) it first ends what it had started."""
        try:
            self._start(timeout_s)
        except BaseException:
            self.stop(grace_s=2.0)
            raise

    def _start(self, timeout_s: float) -> None:
        tick = time.perf_counter()
        self.root.mkdir(parents=True, exist_ok=True)
        self.home.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        link = [tool("flower-superlink"), "--host", "127.0.0.1", "--port", str(self.port),
                "--disable-runtime-dependency-installation"]
        if self.secure:
            from edgeft.distributed.credentials import make_credentials

            self.credentials = c = make_credentials(self.root / "credentials", self.num_nodes)
            link += ["--ssl-ca-certfile", str(c.ca_cert), "--ssl-certfile", str(c.server_cert),
                     "--ssl-keyfile", str(c.server_key), "--enable-supernode-auth"]
            trust = f'root-certificates = "{c.ca_cert}"\n'
        else:
            link.append("--insecure")
            trust = "insecure = true\n"
        (self.home / "config.toml").write_text(
            f'[superlink]\ndefault = "{CONNECTION}"\n\n[superlink.{CONNECTION}]\n'
            f'address = "{self.address}"\n{trust}')
        if self.engine == "simulation":
            link.append("--simulation")
        self._spawn("superlink", link)
        self._wait_healthy(timeout_s)
        if self.engine == "deployment":
            for n in range(self.num_nodes):
                if self.secure:
                    self.register_node(n)
                self.start_node(n)
        self.started_s = time.perf_counter() - tick

    def start_node(self, n: int) -> None:
        """SuperNode ``n`` (partition n of ``num_nodes``), its own port and cache folder."""
        port = free_port()
        self.node_ports.append(port)
        cache = self.root / f"cache-{n}"
        config = (f"partition-id={n} num-partitions={self.num_nodes} "
                  f"cache-dir={toml_value(str(cache))} threads={self.node_threads}")
        if self.secure:
            trust = ["--root-certificates", str(self.credentials.ca_cert),
                     "--auth-supernode-private-key", str(self.credentials.node_keys[n])]
        else:
            trust = ["--insecure"]
        self._spawn(f"supernode-{n}", [
            tool("flower-supernode"), *trust, "--superlink", self.address, "--port", str(port),
            "--node-config", config])

    def register_node(self, n: int) -> None:
        """Tell the SuperLink node ``n``'s public key (``flwr supernode register``)."""
        key = self.credentials.node_keys[n]
        done = subprocess.run([tool("flwr"), "supernode", "register", f"{key}.pub", CONNECTION],
                              capture_output=True, text=True, env=self.env(), cwd=self.root,
                              timeout=120)
        (self.root / f"register-{n}.log").write_text(done.stdout + done.stderr)
        if done.returncode != 0:
            raise RunError(f"flwr supernode register failed for node {n} (exit "
                           f"{done.returncode}); see {self.root / f'register-{n}.log'}")

    def _wait_healthy(self, timeout_s: float) -> None:
        end = time.monotonic() + timeout_s
        proc = self.processes["superlink"]
        scheme, context = "http", None
        if self.secure:
            import ssl

            scheme = "https"
            context = ssl.create_default_context(cafile=str(self.credentials.ca_cert))
        while time.monotonic() < end:
            if proc.poll() is not None:
                raise RunError(f"flower-superlink exited with code {proc.returncode}; see "
                               f"{self.root / 'superlink.log'}")
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"{scheme}://{self.address}/health", timeout=1,
                                            context=context) as r:
                    if r.status == 200:
                        return
            time.sleep(0.2)
        raise RunError(f"flower-superlink did not answer within {timeout_s:g} s; see "
                       f"{self.root / 'superlink.log'}")

    def kill_node(self, n: int, sig: int = signal.SIGKILL) -> None:
        """End SuperNode ``n`` and its children at once (a crash, or a lost machine)."""
        proc = self.processes.pop(f"supernode-{n}", None)
        if proc is not None:
            end_processes([proc], grace_s=0.0, sig=sig)

    def stop(self, grace_s: float = 10.0) -> None:
        """End every process this federation started and all their descendants (see
        :func:`end_processes`): SIGTERM, then SIGKILL after ``grace_s``."""
        procs = list(self.processes.values())
        self.processes.clear()
        end_processes(procs, grace_s)

    # -- runs ----------------------------------------------------------------------------
    def run(self, run_config: dict, app_dir: Path | None = None, timeout_s: float = 1800.0,
            name: str = "run") -> RunOutcome:
        """Submit the app with ``run_config`` (``out-dir`` required) and wait until it ends;
        the ``flwr run --stream`` output goes to ``<name>.log`` as well. A ``summary.json``
        already in ``out-dir`` is moved aside while the run goes, and put back unless the run
        writes its own."""
        out_dir = run_config.get("out-dir")
        if not out_dir:
            raise InputError.missing("run config out-dir", "a folder for the run's results")
        app_dir = Path(app_dir or APP_DIR)
        if not (app_dir / "pyproject.toml").is_file():
            raise InputError("app", str(app_dir), "a Flower app folder holding pyproject.toml")
        config_file = self.root / f"{name}-config.toml"
        config_file.write_text("".join(f"{k} = {toml_value(v)}\n" for k, v in
                                       run_config.items()))
        command = [tool("flwr"), "run", str(app_dir), CONNECTION, "--stream",
                   "--run-config", str(config_file)]
        if self.engine == "simulation":
            command += ["--federation-config",
                        f"num-supernodes={self.num_nodes} client-resources-num-cpus=1 "
                        f"init-args-num-cpus={self.ray_cpus}"]
        summary_path = Path(out_dir) / "summary.json"
        previous = summary_path.with_name("summary.previous.json")
        if summary_path.is_file():  # this run's summary, not an earlier one's, says how it ended
            summary_path.replace(previous)
        try:
            return self._run(command, summary_path, timeout_s, name)
        finally:
            if previous.is_file() and summary_path.is_file():
                previous.unlink()
            elif previous.is_file():  # refused or failed: the finished run's summary is back
                previous.replace(summary_path)

    def _run(self, command: list[str], summary_path: Path, timeout_s: float,
             name: str) -> RunOutcome:
        import json

        tick = time.perf_counter()
        for _ in range(1 + RAY_START_RETRIES * (self.engine == "simulation")):
            code, output = self._submit(command, timeout_s - (time.perf_counter() - tick))
            (self.root / f"{name}.log").write_text(output)
            if RAY_START_FAILURE not in output or summary_path.is_file():
                break
        wall = time.perf_counter() - tick
        summary = json.loads(summary_path.read_text()) if summary_path.is_file() else None
        return RunOutcome(code, output, wall, summary)

    def _submit(self, command: list[str], timeout_s: float) -> tuple[int, str]:
        try:
            done = subprocess.run(command, capture_output=True, text=True, env=self.env(),
                                  cwd=self.root, timeout=max(timeout_s, 1.0))
            return done.returncode, done.stdout + done.stderr
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout or ""
            return 124, out.decode() if isinstance(out, bytes) else out
