"""The benchmark's timing protocol."""

from concurrent import futures

import pytest

from tfnmt.core.config import DecodeConfig
from tfnmt.core.errors import UserError
from tfnmt.evaluation import benchmark
from tfnmt.evaluation.benchmark import file_tag, time_translation


class Recorder:
    """A translator that records what it is asked to translate."""

    def __init__(self):
        self.calls = []

    def translate(self, sentences):
        self.calls.append(list(sentences))
        return [[(s.upper(), -1.0)] for s in sentences]


def test_a_whole_untimed_pass_precedes_the_timed_ones():
    """Every data-dependent branch of a compiled program (HRT's and mask-predict's widths) has
    run before the clock starts: the warm-up is a pass over all sentences, not one batch per
    program."""
    translator = Recorder()
    passes, hypotheses = time_translation(translator, ["a b", "c"], repeats=2)
    assert translator.calls == [["a b", "c"]] * 3
    assert hypotheses == ["A B", "C"] and len(passes) == 2 and min(passes) >= 0


def test_every_timed_pass_is_returned_in_order(monkeypatch):
    """A row keeps the fastest pass and records each: with a clock that a translation advances
    by 3, 5 and 2 seconds, the timed passes are 5 and 2 (the first is the warm-up)."""
    clock, durations = [0.0], iter([3.0, 5.0, 2.0])

    class Slow(Recorder):
        def translate(self, sentences):
            clock[0] += next(durations)
            return super().translate(sentences)

    monkeypatch.setattr(benchmark.time, "perf_counter", lambda: clock[0])
    passes, _ = time_translation(Slow(), ["a"], repeats=2)
    assert passes == [5.0, 2.0]


def test_a_translations_file_names_its_decoding():
    """evaluate writes each decoding of a run to its own file (a NAT's two candidate rules on
    val did overwrite one file named by the beam alone)."""
    names = {file_tag(DecodeConfig(method="nat", length_halfwidth=4, nat_selection=rule))
             for rule in ("normalized", "total")}
    assert names == {"nat9.normalized", "nat9.total"}
    assert file_tag(DecodeConfig(method="nat", length_halfwidth=0, nat_selection="total",
                                 collapse_repeats=True)) == "nat1.total.collapsed"
    assert file_tag(DecodeConfig(beam_size=4)) == "beam4"
    assert file_tag(DecodeConfig(method="hrt", hrt_chunk=2, beam_size=5)) == "hrt2.beam5"
    assert file_tag(DecodeConfig(method="mask_predict", iterations=4)) == "mask_predict4"


def timed_row(run, batch, threads, passes):
    """A row as a benchmark child returns it: 10 sentences, 50 words."""
    return {"run": run, "decoding": "beam 4", "xla": True, "batch": batch,
            "intra_op_threads": threads, **benchmark.timing_fields(passes, 10, 50)}


def test_a_round_merges_every_thread_counts_passes_with_the_earlier_rounds():
    """Hand-worked: round 1 timed batch 1 with one thread (4.0, 3.0 s) and two (3.5, 3.6 s);
    round 2 gives one thread 2.5 and 2.9 s, two threads 3.2 s. The row is one thread's, its
    fastest pass over both rounds (2.5 s) and the speeds of that pass."""
    first = benchmark.merge_round([timed_row("a", 1, 1, [4.0, 3.0]),
                                   timed_row("a", 1, 2, [3.5, 3.6])], {})
    key = ("a", "beam 4", True, 1)
    assert first[key]["seconds"] == 3.0 and first[key]["intra_op_threads"] == 1
    assert first[key]["seconds_by_threads"] == {"1": 3.0, "2": 3.5}
    assert first[key]["rounds"] == 1
    second = benchmark.merge_round([timed_row("a", 1, 1, [2.5, 2.9]),
                                    timed_row("a", 1, 2, [3.2])], first)
    row = second[key]
    assert row["rounds"] == 2 and row["intra_op_threads"] == 1
    assert row["pass_seconds"] == [4.0, 3.0, 2.5, 2.9] and row["seconds"] == 2.5
    assert row["pass_seconds_by_threads"] == {"1": [4.0, 3.0, 2.5, 2.9], "2": [3.5, 3.6, 3.2]}
    assert row["seconds_by_threads"] == {"1": 2.5, "2": 3.2}
    assert (row["sentences_per_second"], row["words_per_second"]) == (4.0, 20.0)
    # A round slower than the earlier fastest thread count keeps that count's row.
    third = benchmark.merge_round([timed_row("a", 1, 1, [9.0]), timed_row("a", 1, 2, [1.5])],
                                  second)
    assert third[key]["intra_op_threads"] == 2 and third[key]["seconds"] == 1.5
    assert third[key]["seconds_by_threads"] == {"1": 2.5, "2": 1.5}
    # Another round of other weights (a resume naming another checkpoint) is refused.
    stale = {key: {**third[key], "weights": "0" * 16, "run_dir": "r", "checkpoint": "c"}}
    other = {**timed_row("a", 1, 1, [1.0]), "weights": "f" * 16, "run_dir": "r",
             "checkpoint": "d"}
    with pytest.raises(UserError, match="kept rows of a timed weights 0000000000000000"):
        benchmark.merge_round([other], stale)


class InProcess:
    """A stand-in for the benchmark's child process pool: runs the job here."""

    def __init__(self, *args, **kwargs):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def submit(self, fn, *args):
        done = futures.Future()
        done.set_result(fn(*args))
        return done


def test_rounds_time_every_run_in_turn_and_a_resume_adds_the_missing_rounds(monkeypatch):
    """--rounds=2 over runs a and b: children a, b, a, b; a row keeps its fastest pass of both
    rounds; the file saved after every run holds every row timed so far. Resuming a file saved
    after round 1 with round 2's first run done times only what is missing."""
    clock = iter(range(1, 100))
    calls = []

    def fake_time_run(spec, sentences, references, batch_sizes, beam_sizes, xla_modes, config,
                      repeats, iterations, halfwidths, kept, *rest):
        calls.append(spec[0])
        key = (spec[0], "beam 4", True, 1)
        if key in kept:
            return [kept[key]]
        # a's passes get faster with every call (9, 8, ...), b's slower (1, 2, ...)
        step = next(clock)
        passes = [10.0 - step] if spec[0] == "a" else [float(step)]
        return [timed_row(spec[0], 1, 0, passes)]

    monkeypatch.setattr(benchmark, "time_run", fake_time_run)
    monkeypatch.setattr(benchmark.futures, "ProcessPoolExecutor", InProcess)
    saved = []
    specs = [("a", "dir_a", "best"), ("b", "dir_b", "best")]
    rows = benchmark.benchmark(specs, ["s"] * 10, None, [1], [4], [True], DecodeConfig(), 1,
                               on_run=lambda r: saved.append([dict(x) for x in r]), rounds=2)
    assert calls == ["a", "b", "a", "b"]
    assert [(r["run"], r["pass_seconds"], r["seconds"], r["rounds"]) for r in rows] == [
        ("a", [9.0, 7.0], 7.0, 2), ("b", [2.0, 4.0], 2.0, 2)]
    assert [[(r["run"], r["rounds"]) for r in s] for s in saved] == [
        [("a", 1)], [("a", 1), ("b", 1)], [("a", 2), ("b", 1)], [("a", 2), ("b", 2)]]
    calls.clear()
    resumed = benchmark.benchmark(specs, ["s"] * 10, None, [1], [4], [True], DecodeConfig(), 1,
                                  kept=saved[2], rounds=2)
    assert calls == ["a", "b", "a", "b"]  # every child but b's second only reuses rows
    assert [(r["run"], r["pass_seconds"], r["rounds"]) for r in resumed] == [
        ("a", [9.0, 7.0], 2), ("b", [2.0, 5.0], 2)]


def test_a_table_has_an_alpha_column_only_when_the_reference_beam_was_timed():
    """Alpha divides by the reference run's rows of the reference beam; a NAT reference (it
    decodes without a beam) has none, and its tables no empty alpha column."""
    def row(run, decoding, beam, batch, seconds):
        return {"run": run, "decoding": decoding, "method": "nat" if beam is None else "at",
                "beam": beam, "batch": batch, "xla": True, "seconds": seconds,
                "sentences_per_second": 1.0, "words_per_second": 1.0, "bleu": 20.0,
                "chrf": 40.0, "repeated_tokens_percent": None}

    timed = [row("at", "beam 4", 4, 1, 2.0), row("nat", "nat 1 length", None, 1, 0.5),
             row("at", "beam 4", 4, 8, 1.0), row("nat", "nat 1 length", None, 8, 0.25)]
    rows = benchmark.add_alpha([dict(r) for r in timed], "at", 4)
    assert [r["alpha"] for r in rows] == [1.0, 4.0, 1.0, 4.0]
    table = benchmark.markdown(rows, "at", 4).splitlines()
    assert "| alpha vs at beam 4 |" in table[0] and table[3].split("|")[8].strip() == "4.00"
    by_batch = benchmark.by_batch_markdown(rows, "at", 4).splitlines()
    assert by_batch[2].endswith("| time (s) b=1 | alpha b=1 | time (s) b=8 | alpha b=8 |")
    assert by_batch[5].endswith("| 0.5 | 4.00 | 0.25 | 4.00 |")

    rows = benchmark.add_alpha([dict(r) for r in timed[1::2]], "nat", 4)
    assert [r["alpha"] for r in rows] == [None, None]
    table = benchmark.markdown(rows, "nat", 4).splitlines()
    assert "alpha" not in table[0] and len(table[2].split("|")) == len(table[0].split("|"))
    by_batch = benchmark.by_batch_markdown(rows, "nat", 4).splitlines()
    assert by_batch[0] == "Time at each batch size (no alpha: nat has no beam 4 rows):"
    assert by_batch[2].endswith("| chrF2 | time (s) b=1 | time (s) b=8 |")
    assert by_batch[4].endswith("| 20.0 | 40.0 | 0.5 | 0.25 |")
