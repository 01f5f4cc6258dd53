"""The benchmark's timing protocol."""

from tfnmt.core.config import DecodeConfig
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
