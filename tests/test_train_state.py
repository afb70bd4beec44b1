"""What a training checkpoint holds: the metadata schema and the size check before building."""
import json
import re
import tracemalloc

import pytest
from conftest import TINY

from numpy_rnn.checkpoint import CheckpointError
from numpy_rnn.config import TrainConfig
from numpy_rnn.models import RNN, SequenceModel
from numpy_rnn.train import Trainer
from numpy_rnn.train_state import (
    check_meta,
    check_parameter_count,
    minimum_parameter_count,
)


@pytest.fixture(scope="module")
def stored():
    """(arrays, meta) of a TINY run stopped at step 25."""
    trainer = Trainer(TrainConfig(**TINY))
    trainer.run(until=25)
    arrays, meta = trainer.state_dict()
    return {k: v.copy() for k, v in arrays.items()}, json.loads(json.dumps(meta))


def _changed(meta, *keys_and_value):
    meta = json.loads(json.dumps(meta))
    *keys, value = keys_and_value
    target = meta
    for key in keys[:-1]:
        target = target[key]
    if value is KeyError:
        del target[keys[-1]]
    else:
        target[keys[-1]] = value
    return meta


def test_a_stored_run_passes_and_gives_its_config(stored):
    assert check_meta("p", stored[1]) == TrainConfig(**TINY)


@pytest.mark.parametrize("change, message", [
    (("format", "numpy_rnn.train/1"), "expected a training checkpoint of format 'numpy_rnn.train/3'"),
    (("config", KeyError), "meta: missing key 'config'"),
    (("config", "lstm"), r"meta\['config'\]: expected object, got str"),
    (("config", "hidden_size", "64"), "invalid stored config: TrainConfig: expected hidden_size to be an int"),
    (("config", "eval_size", 10**9), "invalid stored config: .*each evaluation set"),
    (("step", "fifty"), r"meta\['step'\]: expected int, got str 'fifty'"),
    (("step", True), r"meta\['step'\]: expected int, got bool True"),
    (("step", -1), r"expected step in \[0, 40\]"),
    (("step", 41), r"expected step in \[0, 40\]"),
    (("history", {"step": 1}), r"meta\['history'\]: expected list"),
    (("history", [1, 2]), r"meta\['history'\]\[0\]: expected object"),
    (("history", 0, "val_loss", "low"), r"meta\['history'\]\[0\]\['val_loss'\]: expected float or null"),
    (("history", 0, "step", 99), r"expected history steps in \[0, step\]"),
    (("history", [{"step": 1, "train_loss": None, "val_loss": None, "grad_norm": None, "grad_norm_max": None,
                   "parameters": {}, "lr": 0.1, "elapsed": 0.0, "skipped": 0}] * 10),
     "expected history of at most 3 records"),
    (("history", 0, "parameters", "rnn.W", "update_ratio_max", "big"),
     r"meta\['history'\]\[0\]\['parameters'\]\['rnn.W'\]\['update_ratio_max'\]: expected float or null"),
    (("since_evaluation", "parameters", "rnn.R", "grad_norm_max", None),
     r"meta\['since_evaluation'\]\['parameters'\]\['rnn.R'\]\['grad_norm_max'\]: expected float"),
    (("since_evaluation", "steps", 2.5), r"meta\['since_evaluation'\]\['steps'\]: expected int"),
    (("best_step", 30), r"best_step in \[0, step\]"),
    (("stopped_early", 0), r"meta\['stopped_early'\]: expected bool, got int 0"),
    (("elapsed", -1.0), "expected elapsed >= 0"),
    (("optimizer", [1, 2]), r"meta\['optimizer'\]: expected object, got list"),
    (("schedule", {}), "expected schedule null exactly for a constant learning rate"),
    (("surprise", 1), "meta: unexpected key 'surprise'"),
])
def test_metadata_out_of_schema_is_refused_in_one_line(stored, change, message):
    with pytest.raises(CheckpointError) as refused:
        check_meta("run/checkpoint.ckpt", _changed(stored[1], *change))
    text = str(refused.value)
    assert text.startswith("checkpoint 'run/checkpoint.ckpt': ") and "\n" not in text
    assert re.search(message, text), text


def test_a_stored_cell_of_your_own_imports_nothing_so_loading_never_runs_code(stored, custom_cell, tmp_path):
    (tmp_path / "side_effect.py").write_text("open('ran', 'w').close()\n")
    with pytest.raises(CheckpointError, match=r"invalid stored config: TrainConfig: cell 'side_effect:Cell': expected "
                                              r"module 'side_effect' to be imported, as a stored configuration imports "
                                              r"nothing .+ \(numpy-rnn: --import side_effect\)"):
        check_meta("p", _changed(stored[1], "config", "cell", "side_effect:Cell"))
    assert not (tmp_path / "ran").exists()
    mine = _changed(stored[1], "config", "cell", custom_cell)
    with pytest.raises(CheckpointError, match="expected module 'my_cells' to be imported"):
        check_meta("p", mine)
    TrainConfig(cell=custom_cell)  # the user's own configuration imports it
    assert check_meta("p", mine).cell == custom_cell


@pytest.mark.parametrize("options, exact", [
    ({"model": "notebook", "hidden_size": 7}, True),
    ({"cell": "rnn", "hidden_size": 7, "num_layers": 3, "bidirectional": True}, True),
    ({"cell": "rnn", "hidden_size": 7, "num_layers": 2, "bias": False}, True),
    ({"cell": "lstm", "hidden_size": 5, "num_layers": 2}, False),
    ({"cell": "lstm", "hidden_size": 40, "proj_size": 2, "num_layers": 2, "bidirectional": True}, False),
    ({"cell": "gru", "hidden_size": 6, "layer_norm": True, "bias": False}, False),
    ({"task": "chars", "cell": "gru", "hidden_size": 6, "embedding_size": 4, "eval_size": 1000}, False),
    ({"cell": "custom", "hidden_size": 7, "num_layers": 2, "bidirectional": True}, True),  # the leaky Elman cell
], ids=["notebook", "rnn-deep-bidir", "rnn-no-bias", "lstm", "lstm-proj", "gru-layer-norm-no-bias", "gru-chars",
        "custom-cell"])
def test_the_minimum_parameter_count_bounds_the_model_and_is_exact_for_elman(options, exact, request):
    if options.get("cell") == "custom":
        options = {**options, "cell": request.getfixturevalue("custom_cell")}
    config = TrainConfig(**options)
    D, K = 3, 11
    model = (RNN(D, config.hidden_size, K) if config.model == "notebook"
             else SequenceModel(config.model_config(D, K), rng=0))
    count = sum(p.size for p in model.params.values())
    bound = minimum_parameter_count(config, D, K)
    assert bound == count if exact else bound < count


def test_a_config_asking_for_more_parameters_than_stored_is_refused_before_any_allocation(stored):
    arrays = stored[0]
    config = TrainConfig(**{**TINY, "hidden_size": 10**6})
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError, match=r"the stored config \(hidden_size=1000000, num_layers=1, "
                                                  r"embedding_size=0\) needs at least 1000\d+ parameter values, "
                                                  r"the stored parameters hold \d+"):
            check_parameter_count("p", arrays, config, 1, 1)
        assert tracemalloc.get_traced_memory()[1] < 2**20
    finally:
        tracemalloc.stop()
    check_parameter_count("p", arrays, TrainConfig(**TINY), 1, 1)



def test_a_huge_stored_num_layers_is_refused_at_once(stored):
    config = TrainConfig(**{**TINY, "num_layers": 10**12})
    with pytest.raises(CheckpointError, match="num_layers=1000000000000"):
        check_parameter_count("p", stored[0], config, 1, 1)
