"""The ``dnolab`` command. Subcommands: ``notebooks`` (the papermill runner)."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="dnolab", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["notebooks"], help="what to run")
    args, rest = parser.parse_known_args(argv[:1])
    if args.command == "notebooks":
        from .notebooks import main as notebooks_main

        return notebooks_main(argv[1:] + rest)
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
