"""The ``blendgan`` command: one entry point, one module per subcommand.

Each subcommand module in this package defines::

    HELP = "one line shown in `blendgan --help`"
    EXAMPLES = "blendgan NAME ...\nblendgan NAME ..."   # one or two example command lines
    def add_arguments(parser: argparse.ArgumentParser) -> None
    def run(args: argparse.Namespace) -> int        # exit status

and one line in COMMANDS registers it. The modules import nothing heavy (torch, OpenCV) at import
time, only inside run(), so that `blendgan --help` answers at once. Commands only translate flags into
pipeline calls and report; the work lives in ``blendgan.pipeline`` and friends.
"""

import argparse
import importlib
import sys

from ..errors import BlendGANError

# subcommand name -> module (relative to this package)
COMMANDS = {
    "pairs": "pairs",  # generate_image_pairs
    "transfer": "transfer",  # style_transfer_folder
    "video": "video",  # gen_video
    "stylize": "stylize",  # whole photos: every face stylized and pasted back
    "align": "align",
    "dataset": "dataset",  # raw photos / artworks -> training shards
    "download": "download",
    "convert": "convert",
    "info": "info",
    "export": "export",
    "demo": "demo",
    "train": "train",
    "eval": "eval",
    "fit-style": "fit_style",
    "publish": "publish",
    "bench": "bench",
    "directions": "directions",
}


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Help lines end with the flag's default (unless the text already says it); the epilog keeps its lines."""

    def _get_help_string(self, action):
        text = action.help or ""
        if (
            action.option_strings
            and action.nargs != 0  # on/off switches say what they switch
            and "default" not in text.lower()
            and action.default not in (None, argparse.SUPPRESS)
        ):
            text += " (default: %(default)s)"
        return text


class CommandListFormatter(argparse.HelpFormatter):
    """`blendgan --help`: argparse sizes the help column without the subcommands' indentation, so a name as long
    as `fit-style` would push its help line down; they are counted here with it."""

    def add_argument(self, action):
        super().add_argument(action)
        if isinstance(action, argparse._SubParsersAction):
            for sub in action._get_subactions():
                width = len(sub.metavar or sub.dest) + self._current_indent + 4
                self._action_max_length = max(self._action_max_length, width)


def _epilog(module, prog):
    """'examples:' and the module's EXAMPLES lines; for a script of scripts/ (`prog`), `blendgan NAME` becomes
    `python scripts/<prog>`."""
    lines = getattr(module, "EXAMPLES", "").strip().splitlines()
    if not lines:
        return None
    if prog:
        command = f"python scripts/{prog}" if prog.endswith(".py") else prog
        lines = [" ".join([command, *line.split()[2:]]) if line.startswith("blendgan ") else line for line in lines]
    return "examples:\n" + "\n".join("  " + line for line in lines)


def _load(name):
    return importlib.import_module(f"{__name__}.{COMMANDS[name]}")


def run_module(module, argv=None, prog=None):
    """Parse ``argv`` with one subcommand module's flags and run it; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog=prog, description=module.HELP, epilog=_epilog(module, prog), formatter_class=HelpFormatter
    )
    module.add_arguments(parser)
    args = parser.parse_args(argv)
    return _guarded(module.run, args)


def _guarded(fn, args):
    try:
        if any(str(v).startswith("hf://") for v in _flag_values(args)):
            from ._common import resolve_hub_files

            resolve_hub_files(args)  # files named on the Hub are fetched before the command sees them
        return int(fn(args) or 0)
    except BlendGANError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _flag_values(args):
    for value in vars(args).values():
        yield from value if isinstance(value, list) else [value]


def main(argv=None):
    """Entry point of the ``blendgan`` console script."""
    parser = argparse.ArgumentParser(
        prog="blendgan",
        description="BlendGAN: stylized face generation.",
        formatter_class=CommandListFormatter,
        epilog="`blendgan COMMAND --help` shows a command's flags and examples.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules = {}
    for name in COMMANDS:
        module = modules[name] = _load(name)
        p = sub.add_parser(
            name, help=module.HELP, description=module.HELP, epilog=_epilog(module, None), formatter_class=HelpFormatter
        )
        module.add_arguments(p)
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    return _guarded(modules[args.command].run, args)


if __name__ == "__main__":
    sys.exit(main())
