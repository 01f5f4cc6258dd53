"""TensorFlow's saved_model_cli with tensorflow_text's ops registered first (the stock tool never
imports them, so it cannot load our exports): python -m tfnmt.saved_model_cli show --dir ... --all

-h and --help print the stock tool's own help (of a subcommand when one is named): the stock
entry point hands them to absl, which knows neither its subcommands nor -h.
"""

from tfnmt import cli  # noqa: F401  (first: keeps TensorFlow's start-up log quiet)

import os
import sys

import tensorflow_text  # noqa: F401  (registers the SentencePiece ops)
from tensorflow.python.tools import saved_model_cli

COMMANDS = ("show", "run", "scan", "convert", "aot_compile_cpu", "freeze_model")


def main():
    args = [a for a in sys.argv[1:] if a not in ("--verbose", "--noverbose")]
    if any(a in ("-h", "--help", "--helpshort", "--helpfull") for a in args):
        command = [a for a in args if a in COMMANDS][:1]
        saved_model_cli.create_parser().parse_args(command + ["--help"])  # prints, exits 0
    for i, arg in enumerate(args):  # the stock tool answers a wrong --dir with a traceback
        given = arg.split("=", 1)[1] if arg.startswith("--dir=") else (
            args[i + 1] if arg == "--dir" and i + 1 < len(args) else None)
        if given is not None and not os.path.isfile(os.path.join(given, "saved_model.pb")):
            print(f"error: {given} holds no SavedModel (saved_model.pb); pass a version "
                  "directory such as export/models/teacher/1.", file=sys.stderr)
            sys.exit(1)
    sys.argv = sys.argv[:1] + args
    saved_model_cli.main()


if __name__ == "__main__":
    main()
