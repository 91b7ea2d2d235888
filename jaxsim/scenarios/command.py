"""The ``jaxsim`` command: the scenarios as subcommands, and ``jaxsim run config.toml``.

    jaxsim <scenario> [options]      run a scenario (``jaxsim <scenario> --help``)
    jaxsim run FILE [options]        run again what a config.toml describes (options override it)
    jaxsim list                      the scenarios, one per line

Parsing needs no JAX (:mod:`jaxsim.scenarios.arguments`): ``--help`` and a bad argument
answer at once, in one line with exit status 2. Before any work the output folder is
checked (:func:`jaxsim.cli.check_output_dir`) and ``--no-cache`` applied; then the
scenario's program runs, and on success its output folder gets a ``config.toml`` holding
the scenario and every option's value, which ``jaxsim run`` turns back into the same
command line. Input errors end in one line (exit 2), Ctrl-C in ``interrupted; nothing
written`` (exit 130); a bug keeps its traceback.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import math
import os
import sys
from pathlib import Path
from typing import Sequence

from jaxsim import __version__, caches, cli, plot_worker, progress
from jaxsim.errors import InputError
from jaxsim.scenarios import arguments

#: Name of the file a run writes into its output folder.
CONFIG_FILE = "config.toml"


# ---------------------------------------------------------------------- running
def execute(name: str, argv: Sequence[str] | None = None, *, prog: str | None = None) -> int:
    """Parse ``argv`` for scenario ``name`` and run it; errors propagate (see :func:`main`)."""
    args = arguments.parse(name, argv, prog=prog)
    return run_parsed(args)


def run_parsed(args) -> int:
    """Run a parsed scenario: check the output folder, apply ``--no-cache``, turn on the
    compile cache, run the program, write ``config.toml``."""
    out = cli.check_output_dir(args.out) if getattr(args, "out", None) else None
    if getattr(args, "no_cache", False):
        if getattr(args, "llm_replay", False):
            raise InputError("--no-cache and --llm-replay exclude each other: a replay reads the LLM cache")
        caches.disable_all()
        if hasattr(args, "compile_cache"):
            args.compile_cache = "off"
    progress.stage(f"loading jaxsim {args.scenario}")
    spec = arguments.scenario(args.scenario)
    # The plot worker first: it imports matplotlib on the other core while JAX loads here.
    with plot_worker.started(spec.plots) if spec.plots else contextlib.nullcontext(), progress.Heartbeat():
        with cli.interrupts_deferred():  # Ctrl-C while JAX's native libraries load: acted on after
            from jaxsim.compile_cache import enable_compile_cache

            enable_compile_cache(getattr(args, "compile_cache", None))
            program = importlib.import_module(spec.module)
        status = program.run(args)
    if status == 0 and out is not None and out.is_dir():
        write_config(args, out / CONFIG_FILE)
        print(f"wrote {out / CONFIG_FILE} (jaxsim run {out / CONFIG_FILE} runs it again)", flush=True)
    return status


def main(argv: Sequence[str] | None = None, *, exit_process: bool | None = None) -> int:
    """The ``jaxsim`` command line (``argv`` without the program name).

    ``exit_process`` (default: when ``argv`` is ``None``, i.e. the command line is the
    process's own, as for the installed ``jaxsim`` and ``python -m jaxsim``) ends the
    process when the command returns, skipping the interpreter's slow teardown
    (:func:`jaxsim.cli.leave`); called from Python with an ``argv``, it returns the status.
    """
    if exit_process is None:  # not in a Python prompt or notebook that calls main()
        exit_process = argv is None and not hasattr(sys, "ps1") and "ipykernel" not in sys.modules
    argv = list(sys.argv[1:] if argv is None else argv)
    status = _main(argv)
    if exit_process:
        cli.leave(status)
    return status


def _main(argv: list[str]) -> int:
    cli.install_interrupt_handler()
    for stream in (sys.stdout, sys.stderr):  # piped output arrives line by line, as it happens
        try:
            stream.reconfigure(line_buffering=True)
        except (AttributeError, ValueError):
            pass
    try:
        return _dispatch(argv)
    except KeyboardInterrupt:
        cli.interrupted()
    except SystemExit as exit_:  # argparse's --help (0) and one-line errors (2)
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 2)


def _dispatch(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] == "--version":
        print(f"jaxsim {__version__}")
        return 0
    if argv[0] == "list":
        for spec in arguments.SCENARIOS.values():
            print(f"{spec.name}\t{spec.summary}")
        return 0
    if argv[0] == "run":
        return cli.run_cli(lambda rest: rerun(rest), argv[1:])
    try:
        spec = arguments.scenario(argv[0])
    except KeyError:
        print(f"jaxsim: error: no scenario {argv[0]!r}; one of: {', '.join(arguments.SCENARIOS)} "
              "(see jaxsim --help)", file=sys.stderr)
        return 2
    return cli.run_cli(lambda rest: execute(spec.name, rest), argv[1:])


def usage() -> str:
    width = max(len(name) for name in arguments.SCENARIOS)
    lines = [
        "usage: jaxsim <scenario> [options]   run a scenario (jaxsim <scenario> --help for its options)",
        "       jaxsim run FILE [options]     run again what a run's config.toml describes",
        "       jaxsim list | --version",
        "",
        "scenarios:",
    ]
    for spec in arguments.SCENARIOS.values():
        alias = f" ({', '.join(spec.aliases)})" if spec.aliases else ""
        lines.append(f"  {spec.name:<{width}}  {spec.summary}{alias}")
    lines += ["", f"caches: {caches.cache_root()} ($JAXSIM_CACHE_DIR; --no-cache for none)"]
    return "\n".join(lines)


# ---------------------------------------------------------------------- config.toml
def config_values(args) -> dict:
    """The options of a parsed run as ``{dest: value}`` (every option of its parser, the
    defaults included, so a later version's defaults do not change the rerun)."""
    parser = arguments.build_parser(args.scenario)
    values = {}
    for action in parser._actions:
        if action.dest in ("help", argparse_suppress()) or not hasattr(args, action.dest):
            continue
        values[action.dest] = getattr(args, action.dest)
    return values


def argparse_suppress() -> str:
    import argparse

    return argparse.SUPPRESS


def write_config(args, path: Path) -> None:
    """Write ``config.toml`` (atomically): the scenario, the jaxsim version and every option."""
    lines = [
        f"# A jaxsim run. Run it again: jaxsim run {path}",
        f"scenario = {_toml(args.scenario)}",
        f"jaxsim_version = {_toml(__version__)}",
        "",
        "[options]",
    ]
    skipped = []
    for dest, value in config_values(args).items():
        if value is None:
            skipped.append(dest)
            continue
        lines.append(f"{dest} = {_toml(value)}")
    if skipped:
        lines.append(f"# not set: {', '.join(skipped)}")
    text = "\n".join(lines) + "\n"
    temporary = path.with_name(f".{path.name}.tmp{os.getpid()}")
    temporary.write_text(text)
    os.replace(temporary, path)


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)  # a TOML basic string


def read_config(path: str | os.PathLike) -> tuple[str, dict]:
    """``(scenario, options)`` of a ``config.toml``; :class:`InputError` naming the file and
    the problem when it is not one."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    path = Path(path)
    if path.is_dir():
        path = path / CONFIG_FILE
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: no such config file (a run writes {CONFIG_FILE} into its --out folder)") from None
    except tomllib.TOMLDecodeError as err:
        raise InputError(f"{path}: not valid TOML: {err}") from None
    name = data.get("scenario")
    if not isinstance(name, str):
        raise InputError(f"{path}: no 'scenario' name (one of {', '.join(arguments.SCENARIOS)})")
    try:
        arguments.scenario(name)
    except KeyError:
        raise InputError(f"{path}: scenario {name!r} is not one of {', '.join(arguments.SCENARIOS)}") from None
    options = data.get("options", {})
    if not isinstance(options, dict):
        raise InputError(f"{path}: [options] must be a table")
    return name, options


def config_argv(name: str, options: dict, source: str = "config") -> list[str]:
    """The command line of scenario ``name`` that sets ``options``; :class:`InputError`
    naming an option the scenario does not have."""
    parser = arguments.build_parser(name)
    by_dest = {a.dest: a for a in parser._actions if a.option_strings and a.dest != "help"}
    argv = []
    for dest, value in options.items():
        action = by_dest.get(dest)
        if action is None:
            raise InputError(f"{source}: option {dest!r} is not one of scenario {name}'s")
        flag = action.option_strings[-1]
        if action.nargs == 0:  # store_true / store_false
            if bool(value) != bool(action.default):
                argv.append(flag)
            continue
        argv += [flag, _argument_text(value)]
    return argv


def _argument_text(value) -> str:
    if isinstance(value, float):
        return repr(value)
    return str(value)


def rerun(argv: Sequence[str]) -> int:
    """``jaxsim run FILE [options]``: the run ``FILE`` describes, options appended (they win)."""
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: jaxsim run FILE [options]\n\nRun again what a run's config.toml (or its output folder) "
              "describes; options given here override the file's.")
        return 0 if argv else 2
    name, options = read_config(argv[0])
    return execute(name, config_argv(name, options, source=str(argv[0])) + list(argv[1:]),
                   prog=f"jaxsim run {argv[0]}")
