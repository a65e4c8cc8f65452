"""``edgeft flower local``: run the Flower app on a local federation, start to stop, after
checking everything it can on this host (docs/distributed.md section 4); ``edgeft flower app``:
where the app folder was installed, for ``flwr run``. Needs the ``flower`` extra
(``pip install "edgeft[flower]"``); edgeft's other commands work without it (flwr is imported
only here, only when the command runs).

Example: ``edgeft flower local --engine deployment --nodes 3 --out runs/flower
--set model=random:tiny-bert --set rounds=5``.
"""

from __future__ import annotations

import argparse
import json
import tomllib
from pathlib import Path

from edgeft.cli.common import HelpFormatter, number
from edgeft.distributed.settings import run_config_keys
from edgeft.errors import EdgeftError, InputError, RunError


class KeysHelpFormatter(HelpFormatter):
    """Help whose lines break between words only: a key such as ``lr-decay`` stays whole."""

    def _split_lines(self, text, width):
        import textwrap

        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


class ServerAppError(EdgeftError):
    """An error of :mod:`edgeft.errors` that the ServerApp raised, with its exit code."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


def add_parsers(sub) -> None:
    group = sub.add_parser("flower", help="DEFT and FedAvg-LoRA as a Flower app "
                           "(needs edgeft[flower])", formatter_class=HelpFormatter)
    group.set_defaults(func=lambda args: (group.print_help(), 2)[1])
    cmds = group.add_subparsers(dest="flower_command", metavar="SUBCOMMAND",
                                help="local: a local federation, one run, stopped; app: the "
                                "Flower app folder, for flwr run")
    app = cmds.add_parser(
        "app", formatter_class=HelpFormatter, help="print the Flower app folder (flwr run)",
        description="Print the folder of edgeft's Flower app (its pyproject.toml: the two "
        "components and every setting's default), installed with the package, for "
        '`flwr run "$(edgeft flower app)" CONNECTION --run-config run.toml`.')
    app.set_defaults(func=print_app_dir)
    p = cmds.add_parser(
        "local", formatter_class=KeysHelpFormatter,
        help="start a SuperLink and SuperNodes on loopback (or the simulation engine), run "
        "the app once, stop them",
        description="Start a local federation (deployment engine: one flower-superlink and "
        "NODES flower-supernode processes on 127.0.0.1, node n holding partition n; simulation "
        "engine: a flower-superlink --simulation with NODES simulated nodes on Ray, one CPU "
        "each), submit the app with `flwr run`, wait for it, print its summary and stop every "
        "process it started. Results land in OUT/run (trace.jsonl, checkpoint.pt, "
        "summary.json), logs in OUT/federation.")
    p.add_argument("--engine", choices=("deployment", "simulation"), default="deployment",
                   help="Flower's deployment engine (real processes) or simulation engine")
    p.add_argument("--nodes", type=int, default=3, metavar="N",
                   help="SuperNodes (simulated ones with --engine simulation)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for results and logs")
    p.add_argument("--set", action="append", default=None, metavar="KEY=VALUE", dest="settings",
                   help="a run-config setting (repeatable), e.g. --set rounds=50 --set "
                   "algorithm=fedavg; keys (docs/distributed.md section 4, Settings): "
                   + ", ".join(run_config_keys()))
    p.add_argument("--secure", action="store_true",
                   help="deployment engine: TLS on every connection and SuperNode "
                   "authentication (a local CA and node keys under OUT/federation/credentials,"
                   " each node registered with `flwr supernode register`)")
    p.add_argument("--ray-cpus", type=int, default=2, metavar="C",
                   help="CPUs Ray may use (simulation engine; one per simulated node at a time)")
    p.add_argument("--node-threads", type=int, default=1, metavar="T",
                   help="torch threads of each node's work")
    p.add_argument("--timeout", type=float, default=7200.0, metavar="S",
                   help="seconds to wait for the run")
    p.set_defaults(func=run_local)


def parse_settings(pairs: list[str]) -> dict:
    """``KEY=VALUE`` pairs as a run configuration: VALUE read as TOML (numbers, true/false,
    quoted strings), a bare word as a string."""
    out = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise InputError("--set", pair, "KEY=VALUE")
        if not _utf8(pair):  # bytes the shell passed through (surrogates): no TOML can hold them
            raise InputError(f"--set {key.strip()}" if _utf8(key) else "--set",
                             text if _utf8(key) else pair, "UTF-8 text")
        try:
            value = tomllib.loads(f"v = {text.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = text.strip()
        out[key.strip()] = value
    return out


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def app_dir() -> Path:
    """The installed Flower app folder; a broken install is named before anything starts."""
    from edgeft.distributed.local import APP_DIR

    if not (APP_DIR / "pyproject.toml").is_file():
        raise InputError("Flower app folder", str(APP_DIR), "a folder holding pyproject.toml "
                         '(reinstall edgeft: pip install "edgeft[flower]")')
    return APP_DIR


def print_app_dir(args: argparse.Namespace) -> int:
    """Handler of ``edgeft flower app``."""
    print(app_dir())
    return 0


def run_local(args: argparse.Namespace) -> int:
    """Handler of ``edgeft flower local``."""
    from edgeft import checks
    from edgeft.files import check_output_dir

    checks.integer("--nodes", args.nodes, 1, 64)
    checks.integer("--ray-cpus", args.ray_cpus, 1, 1024)
    checks.integer("--node-threads", args.node_threads, 1, 256)
    checks.positive("--timeout", args.timeout)
    if args.secure and args.engine != "deployment":
        raise InputError("--secure", f"--engine {args.engine}", "--engine deployment (the "
                         "simulation engine has no network between nodes)")
    out = check_output_dir(args.out, "--out").resolve()
    config = parse_settings(args.settings or [])
    for key in ("glue-dir", "out-dir"):  # the processes run in OUT/federation, not here
        if isinstance(config.get(key), str) and config[key]:
            config[key] = str(Path(config[key]).expanduser().resolve())
    config.setdefault("out-dir", str(out / "run"))
    config.setdefault("num-devices", args.nodes)
    import importlib.util

    if importlib.util.find_spec("flwr") is None or (
            args.engine == "simulation" and importlib.util.find_spec("ray") is None):
        raise InputError("edgeft flower", "flwr[simulation] not installed",
                         'the flower extra: pip install "edgeft[flower]"')
    from edgeft.distributed.local import LocalFederation
    from edgeft.distributed.settings import AppSettings

    # Everything that can be checked here is, before any process starts.
    settings = AppSettings.from_run_config(config)
    if settings.num_devices != args.nodes:
        raise InputError("run config num-devices", settings.num_devices,
                         f"--nodes ({args.nodes}): node n holds device n")
    settings.check_data()
    check_output_dir(settings.out_dir, "run config out-dir")
    app = app_dir()
    from edgeft.distributed.server_app import check_checkpoint

    check_checkpoint(settings, settings.out_dir)  # a rerun of other settings: refused here
    with LocalFederation(out / "federation", engine=args.engine, num_nodes=args.nodes,
                         ray_cpus=args.ray_cpus, node_threads=args.node_threads,
                         secure=args.secure) as fed:
        print(f"{args.engine} engine: SuperLink at {fed.address}"
              + (" (TLS, SuperNode authentication)" if args.secure else "")
              + (f", {args.nodes} SuperNodes" if args.engine == "deployment" else
                 f", {args.nodes} simulated nodes") + f" (up in {fed.started_s:.1f} s)",
              flush=True)
        outcome = fed.run(config, app_dir=app, timeout_s=args.timeout)
    if outcome.summary is None and outcome.edgeft_error:  # its exit code: 2 for bad input
        message, code = outcome.edgeft_error
        raise ServerAppError(f"{message} (the ServerApp's error; see {out / 'federation'}/"
                             "*.log)", code)
    if outcome.summary is None:
        raise RunError(f"the run wrote no summary ({outcome.error or 'flwr run exited '}"
                       f"{'' if outcome.error else outcome.returncode}); see "
                       f"{out / 'federation'}/*.log")
    s = outcome.summary
    metric = ", ".join(f"{k} {number(v)}" for k, v in (s["final_metric"] or {}).items())
    print(f"{s['algorithm']}: {s['rounds_run']} rounds in {outcome.wall_s:.1f} s "
          f"(server start-up {s['startup_s']:.1f} s); final {metric or 'not evaluated'}; "
          f"{s['bytes_down'] + s['bytes_up']:,} bytes moved; {s['events']} events")
    print(f"results: {config['out-dir']} (trace.jsonl, checkpoint.pt, summary.json)")
    if s.get("federated_metric"):
        print("federated evaluation: " + json.dumps(s["federated_metric"]))
    return 0 if Path(config["out-dir"]).exists() else 4
