"""Translates a file through an exported SavedModel and times it, in a process that imports only
TensorFlow and tensorflow_text (as a model server would load it: no tfnmt code):

python export/savedmodel_translate.py --model=export/models/teacher/1 --input=test.en \
    --output=test.hyp [--signature=translate] [--batch_sizes=1,8,32 --timing=results/x.json]

Without --timing it writes the translations of --signature at --batch_size. With --timing it
also times every signature in --signatures at every batch size (each batch shape is run once
before timing, so compilation is excluded) and writes a JSON record.
"""

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time

import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the SentencePiece ops, as the server links them)


def translate(signature, sentences, batch_size):
    outputs, scores = [], []
    for start in range(0, len(sentences), batch_size):
        out = signature(sentences=tf.constant(sentences[start:start + batch_size]))
        outputs += [t.decode("utf-8") for t in out["translations"].numpy()]
        scores += out["scores"].numpy().tolist()
    return outputs, scores


def cpu_model():
    with open("/proc/cpuinfo", encoding="utf-8") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="SavedModel version directory.")
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", help="Where the translations of --signature go.")
    parser.add_argument("--signature", default="translate")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--timing", help="Write latency/throughput JSON here.")
    parser.add_argument("--signatures", default="translate,translate_plain")
    parser.add_argument("--batch_sizes", default="1,8,32")
    parser.add_argument("--timing_sentences", type=int, default=0,
                        help="Time on the first N sentences only (0: all).")
    args = parser.parse_args()
    try:
        with open(args.input, encoding="utf-8") as f:
            sentences = [line.rstrip("\n") for line in f]
        loaded = tf.saved_model.load(args.model)
    except (OSError, UnicodeDecodeError, ValueError) as e:
        sys.exit(f"error: {e}")
    if args.output:
        outputs, _ = translate(loaded.signatures[args.signature], sentences, args.batch_size)
        tmp = f"{args.output}.tmp-{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            f.writelines(o + "\n" for o in outputs)
        os.replace(tmp, args.output)
    if args.timing:
        if args.timing_sentences:
            sentences = sentences[: args.timing_sentences]
        rows = []
        for name in args.signatures.split(","):
            for batch in (int(b) for b in args.batch_sizes.split(",")):
                signature = loaded.signatures[name]
                translate(signature, sentences, batch)  # warm-up: every batch shape once
                start = time.perf_counter()
                translate(signature, sentences, batch)
                seconds = time.perf_counter() - start
                requests = -(-len(sentences) // batch)
                rows.append({"signature": name, "batch": batch, "seconds": round(seconds, 3),
                             "sentences_per_second": round(len(sentences) / seconds, 2),
                             "latency_ms_per_request": round(1000 * seconds / requests, 2)})
                print(json.dumps(rows[-1]), flush=True)
        head = "| signature | batch | time (s) | sent/s | latency per request (ms) |"
        lines = [head, "|---|---|---|---|---|"] + [
            f"| {r['signature']} | {r['batch']} | {r['seconds']} | {r['sentences_per_second']} "
            f"| {r['latency_ms_per_request']} |" for r in rows]
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip()
        record = {"kind": "serving_benchmark",
                  "values": {"model": args.model, "source": args.input,
                             "sentences": len(sentences), "rows": rows,
                             "markdown": "\n".join(lines) + "\n"},
                  "provenance": {"command": "python " + " ".join(sys.argv),
                                 "git_commit": commit or "unknown",
                                 "date": datetime.datetime.now(datetime.timezone.utc)
                                 .isoformat(timespec="seconds"),
                                 "cpu": cpu_model(), "cpu_threads": os.cpu_count(),
                                 "tensorflow": tf.__version__}}
        with open(args.timing, "w", encoding="utf-8") as f:
            json.dump(record, f, indent=2, sort_keys=True)
            f.write("\n")


if __name__ == "__main__":
    main()
