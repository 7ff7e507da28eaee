"""The ``blendgan`` command: one entry point, one module per subcommand.

Each subcommand module in this package defines::

    HELP = "one line shown in `blendgan --help`"
    def add_arguments(parser: argparse.ArgumentParser) -> None
    def run(args: argparse.Namespace) -> int        # exit status

and nothing else is needed to register it here. Commands only translate flags into pipeline
calls and report; the work lives in ``blendgan.pipeline`` and friends.
"""
import argparse
import importlib
import sys

from ..errors import BlendGANError

# subcommand name -> module (relative to this package)
COMMANDS = {
    "pairs": "pairs",         # generate_image_pairs
    "transfer": "transfer",   # style_transfer_folder
    "video": "video",         # gen_video
    "align": "align",
    "download": "download",
    "convert": "convert",
    "info": "info",
    "bench": "bench",
    "train": "train",
}


def _load(name):
    return importlib.import_module(f"{__name__}.{COMMANDS[name]}")


def run_module(module, argv=None, prog=None):
    """Parse ``argv`` with one subcommand module's flags and run it; returns the exit status."""
    parser = argparse.ArgumentParser(prog=prog, description=module.HELP)
    module.add_arguments(parser)
    args = parser.parse_args(argv)
    return _guarded(module.run, args)


def _guarded(fn, args):
    try:
        return int(fn(args) or 0)
    except BlendGANError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def main(argv=None):
    """Entry point of the ``blendgan`` console script."""
    parser = argparse.ArgumentParser(prog="blendgan", description="BlendGAN: stylized face generation.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules = {}
    for name in COMMANDS:
        try:
            module = _load(name)
        except ModuleNotFoundError as err:
            if err.name and err.name.startswith(__name__):
                continue  # subcommand not built yet
            raise
        modules[name] = module
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    return _guarded(modules[args.command].run, args)


if __name__ == "__main__":
    sys.exit(main())
