"""Sequence-level knowledge distillation (Kim & Rush 2016): a teacher translates a corpus.

The output is built in <output>.partial, chunk by chunk (each chunk written whole and synced),
with <output>.partial.json naming the job; an interrupted job resumes at the last complete
chunk, so the batches, and so the translations, are exactly those of an uninterrupted run. The
finished file is renamed into place and its job record kept as <output>.job.json: the same job
run again returns at once, another job refuses to replace the file.
"""

import json
import os
import sys
import time

from tfnmt.core.errors import UserError
from tfnmt.data import corpus


def _resume_point(partial, chunk_size):
    """Lines already done in `partial`, cut back to a chunk boundary (the file is truncated)."""
    if not os.path.exists(partial):
        return 0
    with open(partial, "rb") as f:
        data = f.read()
    lines = data.count(b"\n")
    lines -= lines % chunk_size
    keep = 0
    for _ in range(lines):
        keep = data.index(b"\n", keep) + 1
    with open(partial, "r+b") as f:
        f.truncate(keep)
    return lines


def distill_file(translator, source_path, output_path, job, chunk_size=1000, log=None):
    """Translates every line of source_path into output_path; returns the number of lines."""
    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    if chunk_size < 1:
        raise UserError(f"chunk_size must be positive, got {chunk_size}.")
    sources = corpus.read_lines(source_path)
    job = dict(job, source=os.path.abspath(source_path), lines=len(sources), chunk_size=chunk_size)
    partial, meta = output_path + ".partial", output_path + ".partial.json"
    record = output_path + ".job.json"
    if os.path.exists(output_path):
        if not os.path.exists(record) and os.path.exists(meta):  # stopped between the renames
            os.replace(meta, record)
        if not os.path.exists(record):
            raise UserError(f"{output_path} exists and has no job record ({record}); remove it "
                            "or pass another --output.")
        with open(record, encoding="utf-8") as f:
            if json.load(f) != job:
                raise UserError(f"{output_path} was distilled by another job ({record}); "
                                "remove both or pass another --output.")
        log(f"{output_path} is already distilled by this job")
        return len(sources)
    if os.path.exists(meta):
        with open(meta, encoding="utf-8") as f:
            if json.load(f) != job:
                raise UserError(f"{partial} belongs to another distillation job; remove it "
                                "and its .json to start again.")
    else:
        os.makedirs(os.path.dirname(os.path.abspath(output_path)), exist_ok=True)
        if os.path.exists(partial):
            os.remove(partial)
        with open(meta, "w", encoding="utf-8") as f:
            json.dump(job, f, sort_keys=True)
    done = _resume_point(partial, chunk_size)
    if done:
        log(f"resuming at line {done} of {len(sources)}")
    start_time = time.time()
    with open(partial, "a", encoding="utf-8") as f:
        for start in range(done, len(sources), chunk_size):
            chunk = sources[start:start + chunk_size]
            hypotheses = [n_best[0][0].replace("\n", " ") for n_best in
                          translator.translate(chunk)]
            f.write("".join(h + "\n" for h in hypotheses))
            f.flush()
            os.fsync(f.fileno())
            finished = start + len(chunk)
            rate = (finished - done) / max(time.time() - start_time, 1e-9)
            log(f"distilled {finished}/{len(sources)} lines ({rate:.1f} lines/s, "
                f"{(len(sources) - finished) / max(rate, 1e-9) / 60:.1f} min left)")
    os.replace(partial, output_path)
    os.replace(meta, record)
    return len(sources)
