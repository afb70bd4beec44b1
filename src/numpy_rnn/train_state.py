"""What a training checkpoint holds, and the checks a stored one passes before anything is built.

A checkpoint (:mod:`numpy_rnn.checkpoint` file) of a run holds these arrays:

* ``params.<name>``: the weights the loop trains (the model's parameter names);
* ``best.<name>``: with early stopping keeping the best weights, those of the best evaluation;
* ``optimizer.<name>.<key>``: the optimizer's per-parameter state (``exp_avg``, ...);
* ``data.<key>``: the data adapter's arrays (the carried state of a stream, the recall task's
  pending targets);
* ``rtrl.sensitivities``: with ``gradient="rtrl"`` and a carried state, the RTRL sensitivities
  ``(B, S*H, P)`` the next chunk goes on from,

and this metadata (:data:`META_SCHEMA`, every key always present):

=====================================  ==============================================================
key                                    value
=====================================  ==============================================================
``format``                             :data:`FORMAT`
``config``                             ``TrainConfig.to_dict()``
``step``                               steps taken, an int in ``[0, config.steps]``
``history``                            one record per evaluation (:data:`RECORD_SCHEMA`)
``since_evaluation``                   ``{"loss_sum", "grad_norm_sum", "grad_norm_max", "steps",
                                       "parameters": {name: {"grad_norm_sum", "grad_norm_max",
                                       "update_ratio_sum", "update_ratio_max"}}}`` of the finite
                                       steps since the last evaluation
``skipped``, ``skips_in_a_row``        non-finite steps skipped, in all and in a row
``best_step``, ``best_val_loss``       the best evaluation so far (``None``: none, or not finite)
``evaluations_without_improvement``    early stopping's count
``stopped_early``                      bool
``elapsed``                            training seconds over every session of the run
``optimizer``, ``schedule``            their ``state_dict()`` without arrays (``schedule`` None
                                       for a constant learning rate)
``model_rng``                          the dropout generator's ``bit_generator.state``
``data``                               the data adapter's metadata
=====================================  ==============================================================

:func:`check_meta` checks all of it against this schema and returns the stored
:class:`~numpy_rnn.config.TrainConfig`; :func:`check_parameter_count` compares the stored
parameters with the least the configuration needs, before the model is built. Every refusal is
a :class:`~numpy_rnn.checkpoint.CheckpointError` with a one-line message.
"""
from __future__ import annotations

import math

from .cells import Cell
from .checkpoint import CheckpointError, check_schema
from .config import TrainConfig
from .models import cell_class, stored_configuration

__all__ = ["FORMAT", "META_SCHEMA", "RECORD_SCHEMA", "check_meta", "check_parameter_count"]

FORMAT = "numpy_rnn.train/3"
#: a history record: step, means (and maxima) over the steps since the previous evaluation, per
#: parameter the gradient norm and the update-to-weight ratio, lr, clock, skips
RECORD_SCHEMA = {"step": int, "train_loss": (float, None), "val_loss": (float, None), "grad_norm": (float, None),
                 "grad_norm_max": (float, None),
                 "parameters": {str: {key: (float, None) for key in ("grad_norm", "grad_norm_max", "update_ratio",
                                                                     "update_ratio_max")}},
                 "lr": float, "elapsed": float, "skipped": int}
#: the form of the metadata (:func:`~numpy_rnn.checkpoint.check_schema`); ranges are checked apart
META_SCHEMA = {
    "format": str, "config": dict, "step": int, "history": [RECORD_SCHEMA],
    "since_evaluation": {"loss_sum": float, "grad_norm_sum": float, "grad_norm_max": float, "steps": int,
                         "parameters": {str: {key: float for key in ("grad_norm_sum", "grad_norm_max",
                                                                     "update_ratio_sum", "update_ratio_max")}}},
    "skipped": int, "skips_in_a_row": int, "best_step": int, "best_val_loss": (float, None),
    "evaluations_without_improvement": int, "stopped_early": bool, "elapsed": float,
    "optimizer": dict, "schedule": (dict, None), "model_rng": dict, "data": dict,
}


def check_meta(path: str, meta: dict) -> TrainConfig:
    """The stored configuration, once ``meta`` (of the checkpoint at ``path``) has the form
    :data:`META_SCHEMA` and its counts are in range."""
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise CheckpointError(f"checkpoint '{path}': expected a training checkpoint of format {FORMAT!r}, "
                              f"got {found!r:.80}")
    check_schema(path, meta, META_SCHEMA)
    try:
        with stored_configuration():
            config = TrainConfig.from_dict(meta["config"])
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint '{path}': invalid stored config: {exc}") from None
    step, most = meta["step"], meta["step"] // config.eval_every + 1
    ranges = {
        f"step in [0, {config.steps}]": 0 <= step <= config.steps,
        f"history of at most {most} records": len(meta["history"]) <= most,
        "history steps in [0, step]": all(0 <= record["step"] <= step for record in meta["history"]),
        "skipped, skips_in_a_row, evaluations_without_improvement and best_step in [0, step]":
            all(0 <= meta[key] <= step for key in ("skipped", "skips_in_a_row", "evaluations_without_improvement",
                                                   "best_step")),
        "since_evaluation.steps in [0, step]": 0 <= meta["since_evaluation"]["steps"] <= step,
        "elapsed >= 0": meta["elapsed"] >= 0,
        "schedule null exactly for a constant learning rate":
            (meta["schedule"] is None) == (config.schedule == "constant" and config.warmup == 0),
    }
    broken = [what for what, ok in ranges.items() if not ok]
    if broken:
        raise CheckpointError(f"checkpoint '{path}': expected {broken[0]} (the run is at step {step})")
    return config


def minimum_parameter_count(config: TrainConfig, input_size: int, output_size: int) -> int:
    """A lower bound on the parameter values of the model ``config`` builds, from its sizes
    alone (no array is made): per direction of every layer ``W (D_l, H)`` at least (one gate
    block), the cell's recurrent parameters (a built-in cell's ``R (h, H)`` at least, ``h`` the
    width of its output, ``proj_size`` or ``H``; a cell of your own: exactly what it declares),
    ``b (H,)`` where an Elman or a gated cell without layer norm has it, then the head
    ``(dirs*h, K)`` and ``(K,)``. Exact for the Elman cell."""
    H, K = config.hidden_size, output_size
    dirs = 2 if config.bidirectional else 1
    D = config.embedding_size or input_size
    L = config.num_layers  # in closed form: a stored num_layers may be huge
    cell = cell_class(config.cell_used, "checkpoint")
    if issubclass(cell, Cell):  # a cell of your own declares its shapes; making one makes no arrays
        own = cell(H)
        h, recurrent = own.state_widths[0], sum(math.prod(shape) for shape in own.param_shapes().values())
        bias = own.num_gates * H if config.bias and own.input_bias else 0
    else:
        h = config.proj_size or H
        recurrent, bias = h * H, H if config.bias and not config.layer_norm else 0
    per_direction = L * (recurrent + bias) + (D + (L - 1) * dirs * h) * H
    return input_size * config.embedding_size + dirs * per_direction + dirs * h * K + K


def check_parameter_count(path: str, arrays: dict, config: TrainConfig, input_size: int, output_size: int) -> None:
    """CheckpointError when the stored ``params.*`` of ``arrays`` (read from the checkpoint
    ``path``) hold fewer values than ``config`` needs for data of ``input_size`` features in and
    ``output_size`` out: refused before the model (and its memory) is built."""
    stored = sum(value.size for name, value in arrays.items() if name.startswith("params."))
    needed = minimum_parameter_count(config, input_size, output_size)
    if needed > stored:
        raise CheckpointError(f"checkpoint '{path}': the stored config (hidden_size={config.hidden_size}, "
                              f"num_layers={config.num_layers}, "
                              f"embedding_size={config.embedding_size}) needs at least {needed} parameter values, "
                              f"the stored parameters hold {stored}")
