"""The main job, end to end on Multi30k En->De: vocabulary, teacher, checkpoint averaging,
translation of test2016, BLEU.

python -m tfnmt.quickstart [--config=configs/multi30k_small.flags] [--data_dir=...]

Each stage runs the same command a user would type, and is skipped or resumed when its output
already exists, so the job can be interrupted and started again.
"""

import os
import signal
import subprocess
import sys

from absl import flags

from tfnmt.core.errors import UserError, run_main

FLAGS = flags.FLAGS
flags.DEFINE_string("config", "configs/multi30k_small.flags", "Training flag file.")
flags.DEFINE_string("data_dir", "../shared/data/multi30k", "Folder with train/val/test2016.{en,de}.")
flags.DEFINE_string("vocab", "data/vocab/multi30k_ende_8k", "SentencePiece model prefix.")
flags.DEFINE_string("run_dir", "runs/multi30k_small", "Run directory.")
flags.DEFINE_integer("beam_size", 4, "Beam size for the test translation.")
flags.DEFINE_float("length_penalty", 1.0, "Length penalty (1.0 was best on val, see docs/experiments.md).")
flags.DEFINE_string("result", "", "Where the scores go (default: <run_dir>/test2016.json; the "
                    "recorded files under results/ are never overwritten by default).")


def stage(title, *args):
    """Runs one command and waits for it. Ctrl-C reaches the command too (the terminal signals
    the whole process group) and SIGTERM is passed on, so a training saves before it stops:
    subprocess.run would kill it 0.25 s after a Ctrl-C. A stopped stage stops the job with
    its exit code (130 / 143); the same command resumes."""
    print(f"\n== {title}\n$ python -m {' '.join(args)}", flush=True)
    child = subprocess.Popen([sys.executable, "-m", *args])
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: child.send_signal(signum))
    try:
        while True:
            try:
                code = child.wait()
                break
            except KeyboardInterrupt:  # the child has it too: let it save and exit
                continue
    finally:
        signal.signal(signal.SIGTERM, previous)
    if code in (130, 143):
        print(f"stage '{title}' stopped; run the same command to resume.", file=sys.stderr)
        sys.exit(code)
    if code != 0:
        raise UserError(f"stage '{title}' failed (command above).")


def main(argv):
    del argv
    data = FLAGS.data_dir
    for name in ("train.en", "train.de", "val.en", "val.de", "test2016.en", "test2016.de"):
        if not os.path.isfile(os.path.join(data, name)):
            raise UserError(f"{os.path.join(data, name)} is missing; pass --data_dir.")
    if not os.path.isfile(FLAGS.config):
        raise UserError(f"{FLAGS.config} does not exist.")
    if not os.path.isfile(FLAGS.vocab + ".model"):
        stage("vocabulary", "tfnmt.vocab", f"--input={data}/train.en,{data}/train.de",
              f"--model_prefix={FLAGS.vocab}", "--vocab_size=8000")
    stage("train the teacher", "tfnmt.train", f"--flagfile={FLAGS.config}",
          f"--train_source={data}/train.en", f"--train_target={data}/train.de",
          f"--valid_source={data}/val.en", f"--valid_target={data}/val.de",
          f"--vocab={FLAGS.vocab}.model", f"--run_dir={FLAGS.run_dir}")
    stage("average the last five checkpoints", "tfnmt.average_checkpoints",
          f"--run_dir={FLAGS.run_dir}", "--num_last=5")
    stage("translate and score test2016", "tfnmt.evaluate", f"--run_dir={FLAGS.run_dir}",
          "--checkpoint=averaged", f"--source={data}/test2016.en",
          f"--reference={data}/test2016.de", f"--beam_size={FLAGS.beam_size}",
          f"--length_penalty={FLAGS.length_penalty}",
          f"--result={FLAGS.result or os.path.join(FLAGS.run_dir, 'test2016.json')}")


if __name__ == "__main__":
    run_main(main)
