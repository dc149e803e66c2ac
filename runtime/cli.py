"""The ``plcrun`` command: check, run and simulate Structured Text programs.

Errors are one clear line (or positioned diagnostics for ST mistakes) and a non-zero exit code:
0 success, 1 errors in the program (or a failed run), 2 a usage problem (missing file, bad option).
"""

from __future__ import annotations

import argparse
import importlib.resources
import json
import logging
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .cli_devices import add_devices_parser, duration
from .cli_native import hangups_ignored, use_native
from .cli_sim import cmd_sim
from .cli_sweep import cmd_sweep
from .compiler.api import check_file, compile_file
from .dashboard.server import check_options as check_dashboard_options
from .errors import PlcrunError, UsageError
from .executor.alarms import AlarmBus
from .executor.clock import DEFAULT_SPIN_NS, MAX_WAIT_SETTING_NS, PRODUCT_WAKE_TOLERANCE_NS
from .executor.config import ExecutorConfig
from .executor.runner import write_stats_json
from .executor.watchdog import WatchdogConfig
from .io.credentials import (
    DASHBOARD_TOKEN,
    RETAIN_KEY,
    CredentialError,
    optional_credential_text,
    read_secret_file,
)
from .io.sim.scenario_load import builtin_scenarios, load_scenario
from .io.site_io import SiteIo, config_io
from .site import DashboardOptions, SiteRuntime, run_cycles
from .state.program import CompiledProgram

EXIT_OK, EXIT_ERRORS, EXIT_USAGE = 0, 1, 2

EPILOG = """examples:
  plcrun programs/freq_response.st            run against the built-in simulation
  plcrun check programs/*.st                  report mistakes, exit 1 if there are errors
  plcrun run prog.st --cycles 100 --json      100 scans in virtual time, final values as JSON
"""


def resolve_program(name: str) -> Path:
    """A path to an ST file, or a program shipped with plcrun (``freq_response`` or ``programs/x.st``)."""
    path = Path(name)
    if path.is_file():
        return path
    if path.exists():
        raise UsageError(f"{name}: not a file")
    stem = path.name if path.suffix == ".st" else path.name + ".st"
    for package in ("plcrun.st_programs", "plcrun.st_stdlib"):
        candidate = importlib.resources.files(package).joinpath(stem)
        if candidate.is_file():
            return Path(str(candidate))
    raise UsageError(f"{name}: no such file")


def cmd_check(args: argparse.Namespace) -> int:
    worst = EXIT_OK
    for name in args.files:
        path = resolve_program(name)
        diagnostics, sources = check_file(path)
        errors = [d for d in diagnostics if d.is_error]
        shown = diagnostics if not args.quiet else errors
        for d in shown:
            print(d.render(sources.get(d.pos.file)), file=sys.stderr)
        warnings = len(diagnostics) - len(errors)
        if errors:
            worst = EXIT_ERRORS
        if not args.quiet:
            status = "ok" if not errors else "failed"
            print(f"{path}: {status} ({len(errors)} errors, {warnings} warnings)", file=sys.stderr)
    return worst


def cmd_run(args: argparse.Namespace) -> int:
    path = resolve_program(args.program)
    # options refused before the compile: a mistake in them costs nothing
    dashboard = dashboard_options(args) if args.cycles is None else None
    program = compile_file(path)
    for d in program.diagnostics:
        if not args.json:
            print(d.render(program.sources.get(d.pos.file)), file=sys.stderr)
    if args.native:
        with hangups_ignored():
            use_native(program, say_loaded=True)
    if args.cycles is None:
        return run_realtime(program, args, dashboard)
    if args.cycles < 0:
        raise UsageError("--cycles must be 0 or more")
    return cmd_cycles(program, args)


def cmd_cycles(program: CompiledProgram, args: argparse.Namespace) -> int:
    """N scans per task on the executor in virtual time, no I/O; the final values as JSON. A fault
    is reported once, here, not also by the executor's and the alarm bus's log lines."""
    quiet = [logging.getLogger(name) for name in ("plcrun.executor", "plcrun.alarm")]
    levels = [logger.level for logger in quiet]
    for logger in quiet:
        logger.setLevel(logging.CRITICAL)
    try:
        result = run_cycles(program, args.cycles, executor_config(args))
    finally:
        for logger, level in zip(quiet, levels, strict=True):
            logger.setLevel(level)
    for task, message in result.faults.items():
        print(f"plcrun: task {task} faulted: {message}", file=sys.stderr)
    if result.faults:
        return EXIT_ERRORS
    if args.json:
        print(json.dumps(json_safe(result.values), allow_nan=False))
    return EXIT_OK


def json_safe(value: Any) -> Any:
    """JSON has no infinity: +/-infinity become the strings "inf" / "-inf" (NaN is already null)."""
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [json_safe(item) for item in value]
    return value


def cmd_sim_args(args: argparse.Namespace) -> int:
    sizes: list[int | None] = []
    for text in (args.evs or "").split(","):
        if not text.strip():
            continue
        try:
            sizes.append(int(text))
        except ValueError:
            raise UsageError(f"--evs {args.evs}: write N or N1,N2,... (whole numbers)") from None
        if (sizes[-1] or 0) < 0:
            raise UsageError("--evs must be 0 or more")
    sizes = sizes or [None]
    path = resolve_program(args.program)
    program = compile_file(path)
    if args.native:
        use_native(program)
    if len(args.scenario) == 1 and len(sizes) == 1 and not args.sweep:
        return cmd_sim(program, args.scenario[0], sizes[0], args.json, args.out, args.set or [])
    if args.json:
        raise UsageError("--json is for one run; a sweep writes its summary as CSV (--csv)")
    if args.jobs is not None and args.jobs < 1:
        raise UsageError("--jobs must be 1 or more")
    return cmd_sweep(
        program,
        str(path),
        args.scenario,
        sizes,
        args.set or [],
        args.sweep or [],
        args.out,
        args.csv,
        args.jobs,
        native=program.native is not None,
    )


def executor_config(args: argparse.Namespace) -> ExecutorConfig:
    try:
        watchdog = WatchdogConfig(
            time_factor=args.watchdog_factor,
            overrun_limit=args.overrun_limit,
            restart=args.restart,
            restart_delay_s=args.restart_delay,
        )
    except ValueError as error:
        raise UsageError(str(error)) from None
    if args.retain:
        check_retain_path(Path(args.retain))
    return ExecutorConfig(watchdog=watchdog, retain_path=args.retain, retain_key=retain_key(args))


def check_retain_path(path: Path) -> None:
    """Refuse at start a retain file plcrun could not write (a missing or read-only folder, a folder in
    the way): found at the first snapshot it would lose every RETAIN value written until then."""
    if path.is_dir():
        raise UsageError(f"--retain {path}: is a folder; give a file name")
    probe = path.with_name(path.name + ".tmp")
    try:
        with open(probe, "ab"):
            pass
        probe.unlink()
        if path.exists():
            with open(path, "r+b"):
                pass
    except OSError as error:
        raise UsageError(f"--retain {path}: cannot write there: {error.strerror or error}") from None


def retain_key(args: argparse.Namespace) -> bytes | None:
    """The retain file's MAC key: --retain-key-file, else the systemd credential retain-key, else none.
    64 hexadecimal characters, or 32 or more raw bytes."""
    try:
        if args.retain_key_file:
            path = Path(args.retain_key_file)
            text = read_secret_file(path, "retain key file")
            where = str(path)
        else:
            found = optional_credential_text(RETAIN_KEY)
            if found is None:
                return None
            text, where = found, f"credential '{RETAIN_KEY}'"
    except CredentialError as error:
        raise UsageError(f"retain: {error}") from None
    stripped = text.strip()
    if len(stripped) == 64:
        try:
            return bytes.fromhex(stripped)
        except ValueError:
            pass
    key = text.encode()
    if len(key) < 32:
        raise UsageError(
            f"retain: {where} holds {len(key)} bytes; give 64 hex characters or 32 or more bytes"
        )
    return key


def dashboard_options(args: argparse.Namespace) -> DashboardOptions | None:
    """The dashboard of ``plcrun run`` (None with --no-dashboard), its options checked."""
    if args.no_dashboard:
        return None
    options = DashboardOptions(args.dashboard_host, args.dashboard_port, dashboard_token(args))
    try:
        check_dashboard_options(options.host, options.port, options.token)
    except ValueError as error:
        raise UsageError(f"dashboard: {error}") from None
    return options


def run_realtime(
    program: CompiledProgram, args: argparse.Namespace, dashboard: DashboardOptions | None
) -> int:
    if args.duration is not None and args.duration <= 0:
        raise UsageError("--duration must be positive")
    site = SiteRuntime.build(
        program,
        config=args.config,
        scenario=args.scenario,
        evs=args.evs,
        set_options=args.set,
        executor_config=executor_config(args),
        dashboard=dashboard,
        gateway_id=args.gateway_id,
    )
    print(f"plcrun: I/O: {site.description}", file=sys.stderr)
    if site.io.parameters:
        shown = ", ".join(f"{path}={st_text(value)}" for path, value in site.io.parameters.items())
        print(f"plcrun: parameters: {shown}", file=sys.stderr)
    tasks = ", ".join(f"{t.name} every {t.interval_ns / 1e6:g} ms" for t in program.tasks)

    def started() -> None:
        for line in site.started:
            if line.startswith("dashboard on") and dashboard is not None:
                mode = (
                    "writes and forces with the token"
                    if dashboard.token
                    else "read-only (give --token-file to allow writes)"
                )
                line = f"{line} ({mode})"
            print(f"plcrun: {line}", file=sys.stderr)
        print(f"plcrun: running {program.main_file} ({tasks}); Ctrl-C stops", file=sys.stderr)

    site.run_realtime(
        args.duration,
        status_every_s=args.status_every,
        watch=args.watch,
        scan_cpu=args.scan_cpu,
        require_realtime=args.require_realtime,
        wake_tolerance_us=args.wake_tolerance_us,
        spin_budget_us=args.spin_budget_us,
        on_started=started,
        native=args.native,
    )
    if args.stats_json:
        try:
            write_stats_json(site.executor, args.stats_json)
        except OSError as error:
            raise UsageError(f"--stats-json {args.stats_json}: {error.strerror}") from None
    return EXIT_ERRORS if site.faulted else EXIT_OK


def wait_us(text: str) -> int:
    """A waiting setting in whole microseconds, 0 to ``MAX_WAIT_SETTING_NS``."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number of microseconds") from None
    if not 0 <= value <= MAX_WAIT_SETTING_NS // 1000:
        raise argparse.ArgumentTypeError(f"{value} µs is outside 0..{MAX_WAIT_SETTING_NS // 1000}")
    return value


def dashboard_token(args: argparse.Namespace) -> str | None:
    """From --token-file, --token (visible to every local user: warned), $PLCRUN_TOKEN or the
    systemd credential dashboard-token, in that order."""
    if args.token and args.token_file:
        raise UsageError("give --token-file or --token, not both")
    if args.token:
        logging.getLogger("plcrun.dashboard").warning(
            "--token is visible to every local user in the process list (ps, /proc/<pid>/cmdline): "
            "use --token-file FILE (mode 0600) or the systemd credential %s",
            DASHBOARD_TOKEN,
        )
        return str(args.token)
    try:
        if args.token_file:
            return read_secret_file(Path(args.token_file), "dashboard token file")
        return os.environ.get("PLCRUN_TOKEN") or optional_credential_text(DASHBOARD_TOKEN)
    except CredentialError as error:
        raise UsageError(f"dashboard: {error}") from None


def cmd_vars(args: argparse.Namespace) -> int:
    """The variables a program exposes to I/O, the dashboard and retain, with types and locations."""
    program = compile_file(resolve_program(args.program))
    rows = program.variables(leaves=args.leaves, initial=True)
    parameters = vars_parameters(program, args)
    if args.json:
        out = []
        for row in rows:
            item = dict(row.__dict__)
            if row.path in parameters:
                item["parameter"] = parameters[row.path]
            out.append(item)
        print(json.dumps(out))
        return EXIT_OK
    for row in rows:
        flags = " ".join(f for f, on in (("RETAIN", row.retain), ("CONSTANT", row.constant)) if on)
        where = f" AT {row.location}" if row.location else ""
        safe = f" safe={row.safe_value}" if row.safe_value is not None else ""
        print(
            f"{row.path}{where} : {row.type_name}  [{row.section}] {flags}{safe}{parameter_note(row.path, parameters)}".rstrip()
        )
    return EXIT_OK


def vars_parameters(program: CompiledProgram, args: argparse.Namespace) -> dict[str, object]:
    """The parameters ``--config`` and ``--set`` would give the program (checked like ``run`` does)."""
    if not args.config and not args.set:
        return {}
    io = (
        config_io(program, args.config, AlarmBus(), dict, "gateway", realtime=False)
        if args.config
        else SiteIo()
    )
    io.set_parameters(program, args.set or [])
    return io.parameters


def st_text(value: object) -> str:
    return ("TRUE" if value else "FALSE") if isinstance(value, bool) else str(value)


def parameter_note(path: str, parameters: dict[str, object]) -> str:
    if path in parameters:
        return f"  = {st_text(parameters[path])} (parameter)"
    elements = [f"{p[len(path) :]}={st_text(v)}" for p, v in parameters.items() if p.startswith(path + "[")]
    return f"  = {{{', '.join(elements)}}} (parameters)" if elements else ""


def cmd_doctor(args: argparse.Namespace) -> int:
    """Host check: kernel, isolation, limits, clocks, temperatures, state, certificates, firewall."""
    from .doctor import DEFAULT_STATE_DIRECTORY, exit_code, render, run_checks

    site = Path(args.config) if args.config else None
    if site is not None and not site.is_file():
        raise UsageError(f"{args.config}: no such file")
    states = [Path(d) for d in args.state_dir] or [DEFAULT_STATE_DIRECTORY]
    checks = run_checks(Path(args.root), site_file=site, state_directories=states, scan_cpu=args.scan_cpu)
    print(render(checks, args.json))
    return exit_code(checks, args.strict)


def cmd_scenarios(args: argparse.Namespace) -> int:
    for name in builtin_scenarios():
        scenario = load_scenario(name)
        print(f"{name:20s} {scenario.duration_s:6.0f} s  {scenario.n_evs:3d} EVs  {scenario.description}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="plcrun",
        description="Run IEC 61131-3 Structured Text programs in a deterministic scan cycle.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"], help="log detail"
    )
    parser.add_argument("--version", action="version", version=f"plcrun {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    check = sub.add_parser(
        "check",
        help="report mistakes in ST files",
        epilog="examples:\n  plcrun check programs/freq_response.st\n  plcrun check -q a.st b.st",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument("files", nargs="+", metavar="FILE")
    check.add_argument("-q", "--quiet", action="store_true", help="errors only")
    check.set_defaults(func=cmd_check)

    run = sub.add_parser(
        "run",
        help="run a program",
        epilog="examples:\n  plcrun run prog.st --cycles 500 --json\n  plcrun run programs/freq_response.st",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("program", metavar="FILE")
    run.add_argument("--cycles", type=int, help="run N scans per task in virtual time, no I/O")
    run.add_argument("--json", action="store_true", help="print the final variable values as JSON")
    run.add_argument("--duration", type=duration, metavar="TIME", help="stop after 20, 20s, 5m or 1h")
    run.add_argument("--stats-json", metavar="PATH", help="write the final scan statistics as JSON")
    run.add_argument("--retain", metavar="PATH", help="file for RETAIN variables (restored at start)")
    run.add_argument(
        "--retain-key-file",
        metavar="FILE",
        help="MAC key of the retain file (mode 0600; 64 hex characters), else the credential retain-key",
    )
    run.add_argument("--status-every", type=float, default=10.0, metavar="SECONDS", help="status line period")
    run.add_argument(
        "--watchdog-factor",
        type=float,
        default=10.0,
        help="fault a task when one scan exceeds this x its interval",
    )
    run.add_argument(
        "--overrun-limit",
        type=int,
        default=3,
        help="fault a task after this many overruns in a row (0 = off)",
    )
    run.add_argument(
        "--restart", choices=["stay", "restart"], default="stay", help="what a faulted task does"
    )
    run.add_argument("--restart-delay", type=float, default=5.0, metavar="SECONDS")
    run.add_argument(
        "--watch", action="store_true", help="online change when the file is saved (SIGHUP does it too)"
    )
    run.add_argument(
        "--config",
        metavar="SITE.toml",
        help="site configuration (with --scenario: simulate what its devices do not feed)",
    )
    run.add_argument("--scenario", metavar="NAME|FILE", help="simulation scenario (default quiet_grid)")
    run.add_argument(
        "--set",
        action="append",
        metavar="PATH=VALUE",
        help="set a program parameter at start (repeatable; wins over the site file's [parameters])",
    )
    run.add_argument("--evs", type=int, metavar="N", help="simulated fleet size")
    run.add_argument("--gateway-id", default="gateway", help="gateway id in MQTT reports")
    run.add_argument(
        "--dashboard-port", type=int, default=8080, metavar="PORT", help="dashboard port (0: any free)"
    )
    run.add_argument("--dashboard-host", default="127.0.0.1", metavar="HOST", help="dashboard address")
    run.add_argument(
        "--token",
        help="allow writes and forces from the dashboard with this token (visible in the process list: "
        "prefer --token-file, PLCRUN_TOKEN or the systemd credential dashboard-token)",
    )
    run.add_argument(
        "--token-file",
        metavar="FILE",
        help="read the dashboard token from this file (mode 0600; at least 16 characters)",
    )
    run.add_argument("--no-dashboard", action="store_true", help="do not serve the dashboard")
    run.add_argument(
        "--native",
        action="store_true",
        help="run a native build of the program (Cython and gcc, cached; an online change builds the new "
        "program before it is swapped in; else interpreted, with a warning); docs/native-build.md",
    )
    run.add_argument(
        "--require-realtime",
        action="store_true",
        help="refuse to start without real-time priority (SCHED_FIFO); site file: [runtime] require_realtime",
    )
    run.add_argument(
        "--scan-cpu", type=int, metavar="CPU", help="pin the scan thread to this CPU (the isolated core)"
    )
    run.add_argument(
        "--wake-tolerance-us",
        type=wait_us,
        metavar="US",
        help=f"how late a scan may start at p99 before the scan thread spins to be on time (default "
        f"{PRODUCT_WAKE_TOLERANCE_NS // 1000}; 0: wake-ups of a few µs for about 1 %% of a core more); "
        "site file: [runtime] wake_tolerance_us; docs/executor.md",
    )
    run.add_argument(
        "--spin-budget-us",
        type=wait_us,
        metavar="US",
        help=f"the most the scan thread spins before a release (default {DEFAULT_SPIN_NS // 1000}: what it "
        "spins without SCHED_FIFO); site file: [runtime] spin_budget_us",
    )

    sim = sub.add_parser(
        "sim",
        help="run a scenario in virtual time and report",
        epilog="examples:\n  plcrun sim programs/freq_response.st --scenario fcr_static\n"
        "  plcrun sim programs/freq_response.st --scenario gb_2019_08_09 --evs 50 --json\n"
        "  plcrun sim programs/freq_response.st --scenario fcr_static --scenario lfsm --evs 10,100 "
        "--sweep main.fcr_droop_pct=4,5   (a sweep: every combination, in parallel)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sim.add_argument("program", metavar="FILE")
    sim.add_argument(
        "--scenario",
        required=True,
        action="append",
        metavar="NAME|FILE",
        help="built-in scenario name or TOML file (repeat for a sweep)",
    )
    sim.add_argument(
        "--evs", metavar="N[,N...]", help="resize the simulated fleet to N cars (several sizes: a sweep)"
    )
    sim.add_argument("--set", action="append", metavar="PATH=VALUE", help="set a program parameter at start")
    sim.add_argument(
        "--sweep", action="append", metavar="PATH=V1,V2", help="run once per value of this parameter"
    )
    sim.add_argument("--jobs", type=int, metavar="N", help="parallel runs of a sweep (default: one per core)")
    sim.add_argument("--csv", metavar="PATH", help="a sweep's summary CSV (default <out>/summary.csv)")
    sim.add_argument("--json", action="store_true", help="print the report as JSON (one run)")
    sim.add_argument(
        "--native",
        action="store_true",
        help="run a native build of the program (Cython and gcc, cached; else interpreted, with a warning)",
    )
    sim.add_argument(
        "--out", metavar="DIR", help="report folder (default sim-report-<scenario>; a sweep: sim-sweep)"
    )
    sim.set_defaults(func=cmd_sim_args)

    variables = sub.add_parser(
        "vars",
        help="list a program's variables (paths, types, locations, RETAIN, safe values)",
        epilog="examples:\n  plcrun vars programs/freq_response.st\n  plcrun vars prog.st --leaves --json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    variables.add_argument("program", metavar="FILE")
    variables.add_argument("--leaves", action="store_true", help="every elementary element (arrays expanded)")
    variables.add_argument("--json", action="store_true")
    variables.add_argument("--config", metavar="SITE.toml", help="show the site file's [parameters]")
    variables.add_argument("--set", action="append", metavar="PATH=VALUE", help="show this parameter too")
    variables.set_defaults(func=cmd_vars)

    scenarios = sub.add_parser(
        "scenarios", help="list the built-in simulation scenarios", epilog="example:\n  plcrun scenarios"
    )
    scenarios.set_defaults(func=cmd_scenarios)
    add_devices_parser(sub)

    doctor = sub.add_parser(
        "doctor",
        help="check this host for running plcrun as a service (exit 1 if a check fails)",
        epilog="examples:\n  plcrun doctor\n  plcrun doctor --config /etc/plcrun/site.toml --scan-cpu 3",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    doctor.add_argument(
        "--config", metavar="SITE.toml", help="check the TLS certificates this site file names"
    )
    doctor.add_argument(
        "--state-dir",
        action="append",
        default=[],
        metavar="DIR",
        help="must be writable (default /var/lib/plcrun)",
    )
    doctor.add_argument("--scan-cpu", type=int, metavar="CPU", help="the CPU the scan thread is pinned to")
    doctor.add_argument(
        "--root", default="/", metavar="DIR", help="read /proc, /sys and /etc under this folder"
    )
    doctor.add_argument("--json", action="store_true")
    doctor.add_argument("--strict", action="store_true", help="warnings fail too")
    doctor.set_defaults(func=cmd_doctor)
    run.set_defaults(func=cmd_run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    commands = {"check", "run", "sim", "vars", "scenarios", "doctor", "devices", "-h", "--help", "--version"}
    if argv and argv[0] not in commands and not argv[0].startswith("-"):
        argv.insert(0, "run")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(getattr(args, "log_level", "info")).upper(), logging.INFO),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
        force=True,  # main may run more than once in a process (tests): log to this call's stderr
    )
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.func(args))
    except PlcrunError as error:  # every expected failure: one line (or ST diagnostics), no traceback
        print(error.render(), file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader went away (plcrun vars x.st | head)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
