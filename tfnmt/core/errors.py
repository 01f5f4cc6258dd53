"""User-facing errors: one clear sentence and exit code 1, never a traceback."""

import sys


class UserError(Exception):
    """An error the user caused (bad path, bad flag value, bad corpus)."""


def run_main(main):
    """Runs an absl `main(argv)`, turning a UserError, or an OSError that names its path, into
    one line on stderr and exit code 1."""
    from absl import app, flags, logging

    def wrapped(argv):
        if not flags.FLAGS["verbosity"].present:  # absl defaults to INFO: keep the console quiet
            logging.set_verbosity(logging.WARNING)
        threads = flags.FLAGS["intra_op_threads"].value if "intra_op_threads" in flags.FLAGS else 0
        if threads:  # tfnmt.cli's flag; before the command creates its first tensor
            import tensorflow as tf
            tf.config.threading.set_intra_op_parallelism_threads(threads)
        try:
            return main(argv)
        except UserError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(1)
        except OSError as e:  # the file system refused a path (full, read-only, not a folder)
            if e.filename is None:
                raise
            print(f"error: {e.filename}: {e.strerror or e}.", file=sys.stderr)
            sys.exit(1)

    def parse(argv):  # absl's own parser prints "FATAL Flags parsing error" and a usage hint
        try:
            return flags.FLAGS(argv)
        except flags.Error as e:
            reason = str(e).removeprefix("ERROR:: ")  # how absl words an unreadable flag file
            print(f"error: {reason} (--help lists the flags).", file=sys.stderr)
            sys.exit(1)

    if any(arg in ("-h", "--help", "--helpshort") for arg in sys.argv[1:]):
        app.usage(shorthelp=True, writeto_stdout=True)  # absl's own --help exits with 1
        if "tfnmt.cli" in sys.modules:  # --verbose, defined outside the command's module
            print("\n" + flags.FLAGS.module_help(sys.modules["tfnmt.cli"]))
        sys.exit(0)
    app.run(wrapped, flags_parser=parse)
