"""A keras_hub task model with its preprocessor takes raw strings, as `fit` does: the
preprocessor runs outside the gradient, then the model; against the brute-force loop on the
preprocessed inputs."""

import keras
import numpy as np
import pytest

import tfstiffness as tfs
from tests.support.bruteforce import brute_force_gram, relative_error

keras_hub = pytest.importorskip("keras_hub")

SCE = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "a", "dog", "on",
         "mat", "ran"] + [f"w{i}" for i in range(20)]
TEXT = np.array(["the cat sat on the mat", "a dog ran", "w1 w2 w3", "the dog sat",
                 "a cat ran on a mat w7", "w4"])
LABELS = np.array([0, 1, 0, 1, 1, 0])


@pytest.fixture(scope="module")
def classifier():
    keras.utils.set_random_seed(7)
    tokenizer = keras_hub.tokenizers.BertTokenizer(vocabulary=VOCAB)
    preprocessor = keras_hub.models.BertTextClassifierPreprocessor(tokenizer=tokenizer,
                                                                  sequence_length=10)
    backbone = keras_hub.models.BertBackbone(vocabulary_size=len(VOCAB), num_layers=1,
                                             num_heads=2, hidden_dim=16, intermediate_dim=32,
                                             max_sequence_length=10)
    return keras_hub.models.BertTextClassifier(backbone=backbone, num_classes=2,
                                               preprocessor=preprocessor)


def _tokens(model, text):
    return {k: np.asarray(v) for k, v in model.preprocessor(text).items()}


def test_raw_strings_go_through_the_preprocessor(classifier):
    tokens = _tokens(classifier, TEXT)
    expected, _ = brute_force_gram(classifier, SCE, tokens, LABELS)
    gram = tfs.gradient_gram(classifier, TEXT, LABELS, loss=SCE)
    assert relative_error(gram.total, expected) <= 1e-5
    # The model's own dict of inputs is taken as it is (not preprocessed again).
    gram = tfs.gradient_gram(classifier, tokens, LABELS, loss=SCE)
    assert relative_error(gram.total, expected) <= 1e-5
    # The compiled loss (keras_hub compiles the task) and a cross set of raw strings.
    cross = tfs.gradient_gram(classifier, TEXT, LABELS, x2=list(TEXT[:2]), y2=LABELS[:2])
    assert relative_error(cross.total, expected[:, :2]) <= 1e-5


def test_summary_of_raw_strings_uses_token_ids(classifier):
    tokens = _tokens(classifier, TEXT)
    expected, _ = brute_force_gram(classifier, SCE, tokens, LABELS)
    summary = tfs.stiffness_summary(classifier, TEXT, LABELS, loss=SCE, block_size=4,
                                    distance_edges=())
    C = tfs.class_stiffness(tfs.stiffness_matrix(expected, "cosine"), LABELS)
    np.testing.assert_allclose(summary.class_matrix["cosine"], C, atol=1e-5)


def test_preprocessor_failure_is_named(classifier):
    with pytest.raises(ValueError, match=r"(?s)x: the model's preprocessor "
                       r"\(BertTextClassifierPreprocessor\) failed on it: .*Pass raw inputs it "
                       r"takes \(e.g. strings\), or the model's dict of inputs"):
        tfs.gradient_gram(classifier, {"text": TEXT, "other": TEXT}, LABELS, loss=SCE)


GPT2_VOCAB = {"<|endoftext|>": 0, "t": 1, "h": 2, "e": 3, "Ġ": 4, "c": 5, "a": 6, "s": 7,
              "d": 8, "o": 9, "g": 10, "th": 11, "the": 12, "Ġc": 13, "Ġs": 14, "Ġd": 15}
GPT2_MERGES = ["t h", "th e", "Ġ c", "Ġ s", "Ġ d"]


def test_causal_lm_labels_and_padding_weights_come_from_its_preprocessor():
    keras.utils.set_random_seed(8)
    tokenizer = keras_hub.tokenizers.GPT2Tokenizer(vocabulary=GPT2_VOCAB, merges=GPT2_MERGES)
    preprocessor = keras_hub.models.GPT2CausalLMPreprocessor(tokenizer=tokenizer,
                                                             sequence_length=8)
    backbone = keras_hub.models.GPT2Backbone(vocabulary_size=16, num_layers=1, num_heads=2,
                                             hidden_dim=16, intermediate_dim=32,
                                             max_sequence_length=8)
    lm = keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=preprocessor)
    text = np.array(["the cat sat", "a dog", "the dog sat", "a cat", "the"])
    tokens, y, w = preprocessor(list(text))
    x = {k: np.asarray(v) for k, v in tokens.items()}
    y, w = np.asarray(y), np.asarray(w).astype("float32")
    assert w.min() == 0  # padding: the weights matter

    def fit_loss(yt, p):  # Keras' loss on one example with its per-token weights
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)(
            yt[0], p, sample_weight=yt[1])[None]

    expected, _ = brute_force_gram(lm, fit_loss, x, (y, w))
    gram = tfs.gradient_gram(lm, text, loss=SCE)
    assert relative_error(gram.total, expected) <= 1e-5
    # Without the weights (all ones) the matrix differs: the padding was weighted out.
    unweighted, _ = brute_force_gram(lm, fit_loss, x, (y, np.ones_like(w)))
    assert relative_error(unweighted, expected) > 1e-2
