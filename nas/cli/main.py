"""The ``nas`` command line. It only parses arguments and calls library functions.

Exit status: 0 success, 1 failure, 2 usage error. Errors print one line (``nas: error: ...``);
``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from nas import __version__
from nas.errors import NasError, UsageError

# command name -> (module, help). Each module defines add_arguments(parser) and run(args) -> int.
COMMANDS: dict[str, tuple[str, str]] = {
    "spaces": ("nas.cli.spaces", "list, show, sample, validate and export search spaces"),
    "train": ("nas.cli.train", "train a weight-sharing supernet"),
    "search": ("nas.cli.search", "search a space for the accuracy/latency Pareto front"),
    "extract": ("nas.cli.extract", "extract a subnet from a supernet checkpoint"),
    "profile": ("nas.cli.profile", "build a latency lookup table on this device"),
    "predictor": ("nas.cli.predictor", "fit and evaluate accuracy/latency predictors"),
    "benchmark": ("nas.cli.benchmark", "replay a searcher against a table of measurements"),
    "eval": ("nas.cli.evaluate", "evaluate subnets of a supernet checkpoint"),
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _add_debug(p: argparse.ArgumentParser, depth: int = 1) -> None:
    """``--debug``, ``-v`` and ``-q`` also after the command and its actions (``nas spaces
    sample X --debug``); SUPPRESS keeps a subparser from resetting ``nas --debug train ...``
    to False."""
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="show tracebacks on errors")
    # (own names: the parser's values are added to the ones given before the command)
    verbosity = p.add_mutually_exclusive_group()
    verbosity.add_argument("-v", "--verbose", action="count", dest=f"verbose_{depth}",
                           default=argparse.SUPPRESS, help="more logging (-vv: debug)")
    verbosity.add_argument("-q", "--quiet", action="store_true", dest=f"quiet_{depth}",
                           default=argparse.SUPPRESS, help="warnings and errors only")
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                _add_debug(child, depth + 1)


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = _Parser(prog="nas", description="Neural architecture search and supernets.")
    parser.add_argument("--version", action="version", version=f"nas {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    verbosity.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (module, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        mod = importlib.import_module(module)
        mod.add_arguments(p)
        _add_debug(p)
        p.set_defaults(_run=mod.run)
        _set_prog(p)
    return parser


def _set_prog(p: argparse.ArgumentParser) -> None:
    """Each (sub)command records its own name (``nas predictor fit``), for its messages, and
    its ``--help`` opens with the line ``nas COMMAND --help`` lists it by."""
    p.set_defaults(_prog=p.prog)
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for listed in action._choices_actions:
                child = action.choices[listed.dest]
                if child.description is None and listed.help:
                    child.description = listed.help
            for child in dict.fromkeys(action.choices.values()):
                _set_prog(child)


def _configure_logging(verbose: int, quiet: bool) -> None:
    from rich.logging import RichHandler

    from nas.cli._common import err_console

    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    handler = RichHandler(console=err_console, show_path=False, show_time=False)
    logging.basicConfig(level=level, format="%(message)s", handlers=[handler], force=True)


def _stdout_gone() -> bool:
    """Whether standard output's reader has gone (a broken pipe from anything else -- a
    socket, a worker -- is an error like any other)."""
    try:
        import select

        fd = sys.stdout.fileno()
        poll = select.poll()
        poll.register(fd, select.POLLOUT)
        # a pipe whose read end is closed reports an error condition to its writer
        return any(ev & (select.POLLERR | select.POLLHUP) for _, ev in poll.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll(), no file descriptor
        return False


class _Terminated(KeyboardInterrupt):
    """SIGTERM (timeout, kill, a batch scheduler), raised where the command is, as Ctrl-C
    is: files being written atomically are left as they were, and the command says so."""

    signal = "SIGTERM"


def _on_sigterm(signum: int, frame: object) -> None:
    raise _Terminated()


def main(argv: Sequence[str] | None = None) -> int:
    import signal
    import threading

    try:
        parser = build_parser()  # (imports every command's module, torch with them)
        # (checking --device imports torch: a second or two)
        args, extra = parser.parse_known_args(argv)
    except KeyboardInterrupt:
        print("nas: interrupted (SIGINT)", file=sys.stderr)
        return 130
    if extra:  # said by the command they were given to (`nas --bogus train`: by `nas`)
        given = list(sys.argv[1:] if argv is None else argv)
        cut = given.index(args.command) if args.command in given else len(given)
        before = any(e in given[:cut] for e in extra)
        prog = parser.prog if before else getattr(args, "_prog", parser.prog)
        parser.exit(2, f"{prog}: error: unrecognized arguments: {' '.join(extra)} (see "
                       f"{prog} --help)\n")
    if not args.command:
        parser.print_help()
        return 2
    prog = getattr(args, "_prog", f"nas {args.command}")
    # (each command level keeps its own -v/-q: a subcommand's parse would overwrite them)
    levels = vars(args)
    verbose = args.verbose + sum(v for k, v in levels.items() if k.startswith("verbose_"))
    quiet = args.quiet or any(v for k, v in levels.items() if k.startswith("quiet_"))
    if verbose and quiet:
        parser.error("-q/--quiet: not allowed with -v/--verbose")
    _configure_logging(verbose, quiet)
    old = None
    if (threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL):
        old = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt as e:  # (a training run says where it checkpointed)
        sig = getattr(e, "signal", "SIGINT")
        said = str(e) or f"interrupted ({sig})" + (
            "; the same command again resumes it (history.csv keeps every evaluation)"
            if args.command == "search" else "")
        if str(e).startswith("interrupted again"):  # (training stopped at once)
            run = getattr(e, "run", None)
            if args.command == "search":
                said += "; the same command again resumes from the last checkpoint"
            elif args.command == "train" and run is not None:
                said += (f"; `nas train --resume {run}` continues from the last checkpoint"
                         if (Path(run) / "checkpoint.pt").exists() else
                         f"; it had no checkpoint yet: start it again with --out {run}")
        print(f"{prog}: {said}", file=sys.stderr)
        return 143 if sig == "SIGTERM" else 130
    except UsageError as e:
        if args.debug:
            raise
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except NasError as e:
        if args.debug:
            raise
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # a file that cannot be read or written: name it, not a temp file
        if args.debug:
            raise
        if isinstance(e, BrokenPipeError) and _stdout_gone():
            # the reader went away (`nas spaces sample ... | head`): stop quietly, as a tool
            # killed by SIGPIPE does, with no flush error at exit either
            try:
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            except (OSError, ValueError):
                pass
            return 141
        name = e.filename if e.filename is not None else ""
        if name and Path(str(name)).name.startswith(".") and str(name).endswith(".tmp") \
                and e.filename2 is not None:
            name = e.filename2  # an atomic write's temporary file: name the target
        where = f"{name}: " if name else ""
        print(f"{prog}: error: {where}{e.strerror or e}", file=sys.stderr)
        return 1
    except Exception as e:  # an unexpected failure is still one line unless --debug
        if args.debug:
            raise
        print(f"{prog}: error: {type(e).__name__}: {e} (rerun with --debug for "
              "the traceback)", file=sys.stderr)
        return 1
    finally:
        if old is not None:
            signal.signal(signal.SIGTERM, old)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
