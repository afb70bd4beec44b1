"""TrainConfig: declared field kinds, single-field checks, rules across fields, size bounds."""
import dataclasses
import json

import pytest
from conftest import TINY

from numpy_rnn.config import APPLIES, MAX_VALUES, TASK_DEFAULTS, TrainConfig
from numpy_rnn.models import CELLS


@pytest.mark.parametrize("options, error, message", [
    ({"task": "nosuch"}, ValueError, "unknown task 'nosuch'; valid names: memory, adding, adding-hs, copy, sine, recall, chars"),
    ({"hidden_size": -1}, ValueError, "expected hidden_size >= 1, got -1"),
    ({"steps": 2.5}, TypeError, "expected steps to be an int"),
    ({"lr": float("nan")}, ValueError, "expected lr finite"),
    ({"lr": 0}, ValueError, "expected lr finite and in (0.0, inf), got 0.0"),
    ({"dropout": 1.0}, ValueError, "expected dropout finite and in"),
    ({"cell": "nope"}, ValueError, "unknown cell 'nope'; valid names: rnn, lstm, gru"),
    ({"optimizer": "adam", "momentum": 0.9}, ValueError,
     "momentum applies with optimizer sgd or rmsprop only, got optimizer 'adam'"),
    ({"schedule": "cosine", "warmup": 40}, ValueError, "expected warmup < steps"),
    ({"model": "notebook", "cell": "lstm"}, ValueError, "takes hidden_size only, got cell='lstm'"),
    ({"model": "notebook", "task": "copy"}, ValueError, "task 'copy' needs model 'sequence'"),
    ({"init": {"R": "nope"}}, ValueError, "unknown initialiser 'nope'"),
    ({"task": "adding", "seq_len": 1}, ValueError, "AddingTask: expected seq_len >= 2"),
    ({"cell": "gru", "nonlinearity": "relu"}, ValueError, "nonlinearity applies with cell rnn only, got cell 'gru'"),
    ({"cell": None, "nonlinearity": "relu"}, ValueError, "nonlinearity applies with cell rnn only, got cell 'lstm'"),
    ({"task": "chars", "eval_size": 1000, "bidirectional": True}, ValueError,
     "task 'chars' predicts the next character; a bidirectional layer would also read the text backwards and see "
     "the character it is asked to predict"),
    ({"text": "some.txt"}, ValueError, "text applies with task chars only, got task 'memory'"),
    ({"bptt": 20}, ValueError, "bptt applies with tasks chars, recall only, got task 'memory'"),
    ({"delay": 3}, ValueError, "delay applies with task recall only, got task 'memory'"),
    ({"task": "recall", "bidirectional": True}, ValueError,
     "task 'recall' is read forward as a stream in chunks with the state carried; a bidirectional layer cannot"),
    ({"model": "notebook", "task": "recall"}, ValueError, "task 'recall' needs model 'sequence'"),
    ({"gradient": "rtrl", "num_layers": 2}, ValueError, "gradient 'rtrl' trains one recurrent layer in one direction "
     "on its input without regularisers inside the layer (num_layers=1, bidirectional=False, embedding_size=0, "
     "input_dropout=0.0, recurrent_dropout=0.0, zoneout=0.0, zoneout_c=0.0), got num_layers=2"),
    ({"gradient": "rtrl", "bidirectional": True}, ValueError, "zoneout_c=0.0), got bidirectional=True"),
    ({"gradient": "rtrl", "zoneout": 0.1}, ValueError, "zoneout_c=0.0), got zoneout=0.1"),
    ({"gradient": "rtrl", "task": "chars", "eval_size": 1000, "embedding_size": 4}, ValueError,
     "zoneout_c=0.0), got embedding_size=4"),
    ({"gradient": "backprop"}, ValueError, "unknown gradient 'backprop'; valid names: bptt, rtrl"),
    ({"embedding_size": 8}, ValueError, "embedding_size applies with task chars only, got task 'memory'"),
    ({"task": "chars", "eval_size": 1000, "seq_len": 20}, ValueError,
     "seq_len applies with tasks memory, adding, adding-hs, copy, sine, recall only, got task 'chars' "
     "(the character model reads bptt steps per chunk)"),
    ({"task": "chars"}, ValueError, "eval_size applies with tasks memory, adding, adding-hs, copy, sine, recall only"),
    ({"copy_len": 3}, ValueError, "copy_len applies with task copy only, got task 'memory'"),
    ({"n_symbols": 3}, ValueError, "n_symbols applies with task copy only, got task 'memory'"),
    ({"horizon": 3}, ValueError, "horizon applies with task sine only, got task 'memory'"),
    ({"max_skips": 3}, ValueError, "max_skips applies with nonfinite skip only, got nonfinite 'raise'"),
    ({"final_weights": "last"}, ValueError, "final_weights applies with early stopping (patience > 0) only"),
    ({"eval_size": 10**9}, ValueError, "each evaluation set (eval_size=1000000000) would hold 10000000000 values"),
    ({"seq_len": 10**7, "eval_size": 1}, ValueError, "a batch (batch_size=16) would hold 160000000 values"),
    ({"out": 5}, TypeError, "expected out to be a path (str or os.PathLike), got int 5"),
    ({"bidirectional": 1}, TypeError, "expected bidirectional to be a bool"),
    ({"model": "notebook", "bias": False}, ValueError, "bias applies with model sequence only, got model 'notebook'"),
    ({"proj_size": 2}, ValueError, "proj_size applies with cell lstm only, got cell 'gru'"),
    ({"cell": "lstm", "proj_size": 8}, ValueError, "ModelConfig: expected proj_size < hidden_size=8 (the projection "
     "narrows h), got proj_size=8"),
    ({"cell": "lstm", "proj_size": 2, "layer_norm": True}, ValueError, "ModelConfig: proj_size applies without "
     "layer_norm (the layer-normalised LSTM has no projection), got proj_size=2 with layer_norm=True"),
    ({"cell": "rnn", "layer_norm": True}, ValueError, "layer_norm applies with cells lstm and gru only, got cell 'rnn'"),
    ({"init": {"b": "chrono:1"}}, ValueError, "init: expected chrono:T with T >= 2 (the biases are log U"),
])
def test_bad_config_is_refused_with_a_message(options, error, message):
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        TrainConfig(**{**TINY, **options})


def test_config_round_trips_and_unknown_fields_are_named():
    config = TrainConfig(**TINY, init={"R": "orthogonal"})
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['colour'\]"):
        TrainConfig.from_dict({"colour": "red"})



def test_every_field_declares_its_kind_and_the_kind_decides_the_check():
    kinds = {f.name: TrainConfig.field_kind(f.name) for f in dataclasses.fields(TrainConfig)}
    assert set(kinds.values()) == {"int", "float", "choice", "cell", "bool", "path", "init"}
    assert kinds["text"] == kinds["out"] == "path" and kinds["task"] == "choice" and kinds["init"] == "init"
    assert kinds["cell"] == "cell" and TrainConfig.check_value("cell", "gru") == "gru"
    cell_help = {f.name: f for f in dataclasses.fields(TrainConfig)}["cell"].metadata["help"]
    assert f"recurrent cell: {', '.join(CELLS)}, or MODULE:CLASS" in cell_help  # a literal for the site: kept in step
    with pytest.raises(ValueError, match="TrainConfig: unknown cell 'grue'; valid names: rnn, lstm, gru"):
        TrainConfig.check_value("cell", "grue")
    assert TrainConfig.check_value("text", "a/b.txt") == "a/b.txt"
    with pytest.raises(TypeError, match="expected text to be a path"):
        TrainConfig.check_value("text", {"R": "identity"})  # not taken for an init dict
    with pytest.raises(ValueError, match="unknown field 'colour'; valid names: task, seq_len"):
        TrainConfig.check_value("colour", 1)


def test_every_rule_names_a_field_and_a_setting_of_the_config():
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    defaults = TrainConfig().to_dict()
    for name, (setting, value_of, applies, where) in APPLIES.items():
        assert name in names and setting in names, name
        assert isinstance(applies(value_of(defaults)), bool) and where


def test_inapplicable_fields_at_their_default_pass_the_config_and_are_named_by_check_applicable():
    config = TrainConfig(task="chars", seq_len=10)  # the default: the config cannot tell it was given
    with pytest.raises(ValueError, match=r"train: --seq-len applies with tasks .* only, got --task 'chars'"):
        TrainConfig.check_applicable(config.to_dict(), ["seq_len"], owner="train",
                                     spell=lambda name: "--" + name.replace("_", "-"))
    TrainConfig.check_applicable(config.to_dict(), ["bptt", "hidden_size"])  # these apply


def test_the_data_a_config_implies_is_bounded():
    per_sequence = 150 * 2  # adding: T = 150, D = 2
    TrainConfig(task="adding", seq_len=150, eval_size=MAX_VALUES // per_sequence)
    with pytest.raises(ValueError, match="each evaluation set .* more than the limit of 33554432"):
        TrainConfig(task="adding", seq_len=150, eval_size=MAX_VALUES // per_sequence + 1)
    with pytest.raises(ValueError, match=r"a batch \(batch_size=100000\) would hold 100000000 values"):
        TrainConfig(task="chars", batch_size=100_000, bptt=1000)


def test_keeps_best_only_with_early_stopping_and_final_weights_best():
    assert not TrainConfig().keeps_best
    assert TrainConfig(patience=2).keeps_best
    assert not TrainConfig(patience=2, final_weights="last").keeps_best


def test_a_task_brings_its_defaults_for_the_fields_not_given():
    chars = TrainConfig.for_task("chars")
    assert (chars.cell, chars.hidden_size, chars.embedding_size, chars.dtype, chars.schedule) == (
        "gru", 256, 32, "float32", "cosine")
    assert (chars.steps, chars.warmup, chars.bptt) == (2500, 100, 64)
    short = TrainConfig.for_task("chars", steps=50, cell="lstm")  # warm-up: a tenth of a short run
    assert (short.steps, short.warmup, short.cell) == (50, 5, "lstm")
    assert TrainConfig.for_task("adding", seq_len=20) == TrainConfig(task="adding", seq_len=20)  # no own defaults
    for task, defaults in TASK_DEFAULTS.items():
        fields = {f.name for f in dataclasses.fields(TrainConfig)}
        assert set(defaults) <= fields, task
