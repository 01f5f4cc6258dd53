"""Imported first by every command that runs TensorFlow: TensorFlow's start-up log (about seven
lines, among them a CUDA 'failed call to cuInit' error on machines without a GPU) is kept off
the console unless --verbose is given. Library code never imports this module."""

import os
import sys
import tempfile

from absl import flags

flags.DEFINE_bool("verbose", False, "Show TensorFlow's own start-up and C++ log lines.")
flags.DEFINE_integer("intra_op_threads", 0, "Threads one TensorFlow op may use (0: "
                     "TensorFlow's default, every core). One was faster for batch-1 beam "
                     "search with XLA on a 2-core Xeon, within the timing noise on a 2-core "
                     "Zen 4 EPYC, slower at batch 32 (docs/decisions.md).",
                     lower_bound=0)

_VERBOSE = any(arg in ("--verbose", "--verbose=true", "--verbose=1") for arg in sys.argv[1:])


def _import_tensorflow_quietly():
    """Imports TensorFlow with file descriptor 2 sent to a temporary file (its C++ start-up
    lines bypass Python's sys.stderr); the captured text is shown only if the import fails."""
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        except BaseException:
            os.dup2(saved, 2)
            capture.seek(0)
            sys.stderr.write(capture.read().decode("utf-8", "replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


if not _VERBOSE:
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"  # C++ errors TensorFlow reports and goes on from
    _import_tensorflow_quietly()
