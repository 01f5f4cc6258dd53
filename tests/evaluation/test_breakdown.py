import pytest

from tfnmt.core.config import ModelConfig
from tfnmt.evaluation.breakdown import breakdown, COMPONENTS
from tfnmt.models import build_model


@pytest.mark.parametrize("architecture", ["transformer", "hybrid", "rnmt"])
def test_breakdown_times_every_component_of_each_architecture(architecture):
    model = build_model(ModelConfig.from_shape("tiny", architecture=architecture, vocab_size=50,
                                               decoder_hidden=32, dropout=0.0))
    result = breakdown(model, sentences=6, batch_size=2, source_length=7, target_length=5,
                       beam_size=3, xla=False, repeats=2)
    assert result["total"] > 0 and result["encoding"] > 0
    parts = [c for c in COMPONENTS if c in result]
    assert ("FFN" in parts) == (architecture == "transformer")
    assert all(result[c] > 0 for c in parts)
