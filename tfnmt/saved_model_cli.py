"""TensorFlow's saved_model_cli with tensorflow_text's ops registered first (the stock tool never
imports them, so it cannot load our exports): python -m tfnmt.saved_model_cli show --dir ... --all
"""

import tensorflow_text  # noqa: F401  (registers the SentencePiece ops)
from tensorflow.python.tools import saved_model_cli


if __name__ == "__main__":
    saved_model_cli.main()
