"""Small, randomly initialised real-world models (keras.applications, keras_hub) for tests
and benchmarks. Nothing is downloaded."""

from __future__ import annotations

import keras


def mobilenet_v2(classes: int = 10):
    return keras.applications.MobileNetV2(input_shape=(32, 32, 3), weights=None,
                                          classes=classes, classifier_activation=None)


def efficientnet_b0(classes: int = 10):
    return keras.applications.EfficientNetB0(input_shape=(32, 32, 3), weights=None,
                                             classes=classes, classifier_activation=None)


def convnext_tiny(classes: int = 10):
    return keras.applications.ConvNeXtTiny(input_shape=(32, 32, 3), weights=None,
                                           classes=classes, classifier_activation=None,
                                           include_preprocessing=False)


def _hub():
    import keras_hub

    return keras_hub


def bert_backbone(vocab: int = 1000, length: int = 64, hidden: int = 64, layers: int = 2):
    return _hub().models.BertBackbone(vocabulary_size=vocab, num_layers=layers, num_heads=2,
                                      hidden_dim=hidden, intermediate_dim=2 * hidden,
                                      max_sequence_length=length)


def gpt2_backbone(vocab: int = 1000, length: int = 64, hidden: int = 64, layers: int = 2):
    return _hub().models.GPT2Backbone(vocabulary_size=vocab, num_layers=layers, num_heads=2,
                                      hidden_dim=hidden, intermediate_dim=2 * hidden,
                                      max_sequence_length=length)


def gemma_backbone(vocab: int = 1000, hidden: int = 64, layers: int = 2):
    return _hub().models.GemmaBackbone(vocabulary_size=vocab, num_layers=layers,
                                       num_query_heads=2, num_key_value_heads=1,
                                       hidden_dim=hidden, intermediate_dim=2 * hidden,
                                       head_dim=hidden // 2)


def classifier(backbone, classes: int):
    """The backbone's dict inputs -> pooled features (BERT's pooler, else the first token's
    features) -> Dense logits, as a user would put a head on it."""
    inputs = {name: keras.Input(t.shape[1:], dtype=t.dtype, name=name)
              for name, t in backbone.input.items()}
    features = backbone(inputs)
    pooled = features["pooled_output"] if isinstance(features, dict) else features[:, 0, :]
    return keras.Model(inputs, keras.layers.Dense(classes)(pooled))


def on_token_ids(model):
    """A single-input view of a dict-input keras_hub model: token ids (0 = padding) in;
    padding mask and segment ids derived inside."""
    tokens = keras.Input(model.input["token_ids"].shape[1:], dtype="int32", name="token_ids")
    derived = {"token_ids": tokens,
               "padding_mask": keras.ops.cast(keras.ops.not_equal(tokens, 0), "int32"),
               "segment_ids": keras.ops.zeros_like(tokens)}
    return keras.Model(tokens, model({name: derived[name] for name in model.input}))
