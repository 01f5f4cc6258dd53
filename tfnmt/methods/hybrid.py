"""The Hybrid (Wang et al. 2018): a Transformer encoder with a one-layer GRU decoder
(models.recurrent.Hybrid), trained with MLE, then fine-tuned with word-level KD from the
Transformer teacher (Eq. 1); decoded with beam 12 and length penalty 1.0, as in the paper."""

from tfnmt.methods import at
from tfnmt.methods.base import Method

METHOD = Method("hybrid", ("hybrid",), ("mle",), at.build_objective,
                {None: {"method": "autoregressive", "beam_size": 12, "length_penalty": 1.0}})
