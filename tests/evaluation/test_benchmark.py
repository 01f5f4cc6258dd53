"""The benchmark's timing protocol."""

from tfnmt.evaluation.benchmark import time_translation


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
