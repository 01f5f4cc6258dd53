"""Exports a trained run as a new numbered version under --export_base: a SavedModel for
TensorFlow Serving (the default),
python -m tfnmt.export --run_dir=runs/<name> --export_base=export/models/<name>
or, for an autoregressive Transformer run, a CTranslate2 model (the optional ctranslate2
package; tfnmt/serving/ctranslate2_export.py lists the options that make it decode as tfnmt does),
python -m tfnmt.export --run_dir=runs/<name> --export_base=export/ct2/<name> --format=ctranslate2
with --quantization=int8 (or another CTranslate2 weight type) for quantized weights."""

from tfnmt import cli  # noqa: F401  (first: keeps TensorFlow's start-up log quiet)

import os

from absl import flags

from tfnmt.cli import decode_flags
from tfnmt.core.errors import run_main, UserError
from tfnmt.core.files import check_creatable
from tfnmt.serving.ctranslate2_export import export_run as export_ctranslate2, QUANTIZATIONS
from tfnmt.serving.saved_model import export_run

FLAGS = flags.FLAGS
flags.adopt_module_key_flags(decode_flags)  # --help lists the decoding flags too
flags.DEFINE_string("run_dir", None, "Trained run directory.")
flags.DEFINE_string("export_base", None, "Model base directory; a new numbered version is added.")
flags.DEFINE_string("batching_parameters", "export/batching_parameters.txt",
                    "TF Serving batching parameters: the warm-up requests cover its "
                    "allowed_batch_sizes at every input width ('' : batch 1 only).")
flags.DEFINE_enum("format", "savedmodel", ["savedmodel", "ctranslate2"],
                  "savedmodel: for TensorFlow Serving; ctranslate2: a CTranslate2 model "
                  "(autoregressive Transformer runs; pip install ctranslate2).")
flags.DEFINE_enum("quantization", "none", list(QUANTIZATIONS),
                  "--format=ctranslate2: CTranslate2 weight type (none: float32 weights).")


def main(argv):
    if len(argv) > 1:
        raise UserError(f"unexpected arguments: {' '.join(argv[1:])}.")
    if not FLAGS.export_base:
        raise UserError("--export_base is required.")
    config = decode_flags.decode_config()
    if not FLAGS.run_dir:
        raise UserError("--run_dir is required.")
    check_creatable(FLAGS.export_base, f"--export_base {FLAGS.export_base}", directory=True)
    if FLAGS.format == "ctranslate2":
        given = [f"--{f.name}" for f in FLAGS.get_flags_for_module(decode_flags.__name__)
                 if f.present and f.name != "checkpoint"]
        if given:
            raise UserError(f"--format=ctranslate2 exports weights only: CTranslate2 takes its "
                            f"decoding options when it translates (drop {', '.join(given)}; "
                            "--quantization sets the weight type).")
        version = export_ctranslate2(FLAGS.run_dir, FLAGS.export_base, FLAGS.checkpoint,
                                     FLAGS.quantization)
        print(f"exported {version}")
        return
    if FLAGS.quantization != "none":
        raise UserError("--quantization applies to --format=ctranslate2 only.")
    batching = FLAGS.batching_parameters
    if batching == flags.FLAGS["batching_parameters"].default and not os.path.isfile(batching):
        batching = ""  # the default file lives in the repository; elsewhere batch 1 only
    version = export_run(FLAGS.run_dir, FLAGS.export_base, FLAGS.checkpoint, config, batching)
    print(f"exported {version}")


if __name__ == "__main__":
    run_main(main)
