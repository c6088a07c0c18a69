"""The ``distilrt`` command.

Each subcommand lives in its own module exposing ``HELP``, ``add_arguments(parser)`` and
``run(args) -> int``.  Command modules import only what their ``run`` needs, inside ``run``, so
``distilrt --help`` and the runtime commands never load torch, transformers or optimum.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Sequence

from .errors import DistilrtError

#: subcommand -> module.  Order is the order ``--help`` lists them in.
COMMANDS: dict[str, str] = {
    "export": "distilrt.export.cli",
    "qa": "distilrt.runtime.commands.qa",
    "fill-mask": "distilrt.runtime.commands.fill_mask",
    "embed": "distilrt.runtime.commands.embed",
    "classify": "distilrt.runtime.commands.classify",
    "info": "distilrt.runtime.commands.info",
    "eval": "distilrt.runtime.commands.eval",
    "serve": "distilrt.runtime.commands.serve",
    "tune": "distilrt.runtime.commands.tune",
    "deploy": "distilrt.runtime.commands.deploy",
    "bench": "distilrt.runtime.commands.bench",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="distilrt",
        description="Export DistilBERT-family checkpoints to ONNX bundles and run them with ONNX Runtime.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        command = sub.add_parser(name, help=module.HELP, description=getattr(module, "DESCRIPTION", module.HELP),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(command)
        command.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args._run(args) or 0)
    except DistilrtError as exc:
        print(f"distilrt {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
