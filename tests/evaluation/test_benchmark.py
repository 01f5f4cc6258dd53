"""The benchmark's timing protocol."""

from tfnmt.core.config import DecodeConfig
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
    seconds, hypotheses = time_translation(translator, ["a b", "c"], repeats=2)
    assert translator.calls == [["a b", "c"]] * 3
    assert hypotheses == ["A B", "C"] and seconds >= 0


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
