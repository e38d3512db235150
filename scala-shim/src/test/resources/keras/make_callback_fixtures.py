#!/usr/bin/env python3
"""Make callbacks.json: what Keras' own callbacks decide on given histories.

CI never runs this script: its output is committed beside it, and the Scala
suite (CallbacksSuite) and the Python tests only read it. Re-run it by hand,
from the repo root, when the fixture must change:

    KERAS_BACKEND=jax .venv/bin/python scala-shim/src/test/resources/keras/make_callback_fixtures.py

Made with keras 3.15.1 on jax 0.10.2. Each case runs one Keras callback,
exactly as Keras' fit drives it (on_train_begin, then per epoch
on_epoch_begin and on_epoch_end with that epoch's logs, stopping when the
callback sets model.stop_training, then on_train_end), on a one-weight model
whose weight is set to the epoch's index before each on_epoch_end, so the
weights a callback keeps or restores say which epoch they are from. It
records:

  EarlyStopping        "epochs_run", "stopped_epoch", "best", "best_epoch",
                       the epoch whose weights the model ends with
                       ("final_weights_epoch"), and the warnings issued
  ReduceLROnPlateau    the optimizer's learning rate after each epoch and
                       the logs' learning_rate
  ModelCheckpoint      the epochs saved and the file names (filepath
                       formatted with epoch and the logs)
  CSVLogger            the file it wrote
  TerminateOnNaN       "epochs_run" (Keras checks each batch; a history of
                       epoch losses stands for the last batch of each)
"""

import json
import math
import os
import tempfile
import warnings

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras  # noqa: E402
import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))

# Histories: per epoch the merged logs a fit would give.
PLATEAU = [
    {"loss": 0.9, "accuracy": 0.50, "val_loss": 1.00, "val_accuracy": 0.48},
    {"loss": 0.7, "accuracy": 0.60, "val_loss": 0.80, "val_accuracy": 0.55},
    {"loss": 0.6, "accuracy": 0.65, "val_loss": 0.70, "val_accuracy": 0.61},
    {"loss": 0.55, "accuracy": 0.66, "val_loss": 0.71, "val_accuracy": 0.60},
    {"loss": 0.52, "accuracy": 0.68, "val_loss": 0.69995, "val_accuracy": 0.62},
    {"loss": 0.50, "accuracy": 0.69, "val_loss": 0.72, "val_accuracy": 0.61},
    {"loss": 0.49, "accuracy": 0.70, "val_loss": 0.73, "val_accuracy": 0.60},
    {"loss": 0.48, "accuracy": 0.71, "val_loss": 0.68, "val_accuracy": 0.63},
    {"loss": 0.47, "accuracy": 0.72, "val_loss": 0.74, "val_accuracy": 0.59},
    {"loss": 0.46, "accuracy": 0.73, "val_loss": 0.75, "val_accuracy": 0.58},
    {"loss": 0.45, "accuracy": 0.74, "val_loss": 0.76, "val_accuracy": 0.57},
    {"loss": 0.44, "accuracy": 0.75, "val_loss": 0.77, "val_accuracy": 0.56},
]
NO_VAL = [{"loss": h["loss"], "accuracy": h["accuracy"]} for h in PLATEAU]
ODD = [{"loss": 1e-05, "accuracy": 0.1 + 0.2, "big": 1e17, "whole": 3.0, "nan": float("nan")},
       {"loss": 2.5e-7, "accuracy": 1.0, "big": 12345678901234567.0, "whole": -0.0, "nan": float("inf")}]
NAN_AT_3 = [{"loss": 0.9}, {"loss": 0.8}, {"loss": 0.7}, {"loss": float("nan")}, {"loss": 0.5}]
INF_AT_1 = [{"loss": 0.9}, {"loss": float("inf")}, {"loss": 0.5}]

CASES = [
    ("early_patience2_restore", "EarlyStopping", {"patience": 2, "restore_best_weights": True}, PLATEAU),
    ("early_patience0", "EarlyStopping", {}, PLATEAU),
    ("early_min_delta", "EarlyStopping", {"patience": 1, "min_delta": 0.02}, PLATEAU),
    ("early_accuracy_max", "EarlyStopping", {"monitor": "val_accuracy", "patience": 2, "restore_best_weights": True}, PLATEAU),
    ("early_mode_min_accuracy", "EarlyStopping", {"monitor": "accuracy", "mode": "min", "patience": 1}, PLATEAU),
    ("early_baseline", "EarlyStopping", {"patience": 3, "baseline": 0.69, "restore_best_weights": True}, PLATEAU),
    ("early_start_from", "EarlyStopping", {"patience": 1, "start_from_epoch": 4, "restore_best_weights": True}, PLATEAU),
    ("early_loss", "EarlyStopping", {"monitor": "loss", "patience": 1, "min_delta": 0.015}, PLATEAU),
    ("early_missing_monitor", "EarlyStopping", {"patience": 1}, NO_VAL),
    ("early_missing_monitor_min", "EarlyStopping", {"monitor": "nope", "mode": "min", "patience": 1}, PLATEAU),
    ("early_unknown_direction", "EarlyStopping", {"monitor": "nope", "patience": 1}, PLATEAU),
    ("reduce_lr", "ReduceLROnPlateau", {"patience": 1, "factor": 0.5}, PLATEAU),
    ("reduce_lr_cooldown_min", "ReduceLROnPlateau", {"patience": 1, "factor": 0.2, "cooldown": 2, "min_lr": 0.002, "min_delta": 0.0}, PLATEAU),
    ("reduce_lr_accuracy", "ReduceLROnPlateau", {"monitor": "val_accuracy", "patience": 2, "factor": 0.1}, PLATEAU),
    ("reduce_lr_missing", "ReduceLROnPlateau", {"patience": 1}, NO_VAL),
    ("checkpoint_best", "ModelCheckpoint", {"filepath": "m_{epoch:02d}_{val_loss:.3f}.keras", "save_best_only": True}, PLATEAU),
    ("checkpoint_all", "ModelCheckpoint", {"filepath": "m_{epoch}.keras"}, PLATEAU[:4]),
    ("checkpoint_best_accuracy", "ModelCheckpoint", {"filepath": "acc_{epoch}.keras", "monitor": "val_accuracy", "save_best_only": True}, PLATEAU),
    ("checkpoint_best_missing", "ModelCheckpoint", {"filepath": "x_{epoch}.keras", "save_best_only": True}, NO_VAL[:3]),
    ("checkpoint_threshold", "ModelCheckpoint", {"filepath": "t_{epoch}.keras", "save_best_only": True, "initial_value_threshold": 0.75}, PLATEAU),
    ("csv", "CSVLogger", {}, PLATEAU[:3]),
    ("csv_no_val", "CSVLogger", {"separator": ";"}, NO_VAL[:3]),
    ("csv_floats", "CSVLogger", {}, ODD),
    ("nan", "TerminateOnNaN", {}, NAN_AT_3),
    ("inf", "TerminateOnNaN", {}, INF_AT_1),
]


def model_for(lr):
    m = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False)])
    m.compile(optimizer=keras.optimizers.SGD(learning_rate=lr), loss="mse", metrics=["accuracy"])
    # Built compile metrics, as a fit has them: "auto" modes look their
    # direction up there (accuracy: up).
    m.evaluate(np.zeros((2, 1), np.float32), np.zeros((2, 1), np.float32), verbose=0)
    return m


def set_epoch(m, epoch):
    m.set_weights([np.full((1, 1), float(epoch), dtype=np.float32)])


def weights_epoch(m):
    return int(round(float(m.get_weights()[0][0, 0])))


def clean(v):
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return str(v)
    return v


def run(kind, config, history, tmp):
    model = model_for(0.01)
    saved = []
    if kind == "ModelCheckpoint":
        config = dict(config, filepath=os.path.join(tmp, config["filepath"]))
        orig_save = model.save

        def save(path, overwrite=True, **kw):
            saved.append(os.path.basename(path))

        model.save = save
        cb = keras.callbacks.ModelCheckpoint(**config)
    elif kind == "CSVLogger":
        cb = keras.callbacks.CSVLogger(os.path.join(tmp, "log.csv"), **config)
    else:
        cb = getattr(keras.callbacks, kind)(**config)
    cb.set_model(model)
    out = {"learning_rates": [], "logged_learning_rates": [], "saved": [], "saved_epochs": []}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        error = None
        try:
            cb.on_train_begin({})
            run_epochs = 0
            for epoch, logs in enumerate(history):
                logs = dict(logs)
                cb.on_epoch_begin(epoch, logs)
                set_epoch(model, epoch)
                if kind == "TerminateOnNaN":
                    cb.on_batch_end(0, logs)
                n = len(saved)
                cb.on_epoch_end(epoch, logs)
                run_epochs += 1
                out["learning_rates"].append(float(np.asarray(model.optimizer.learning_rate)))
                if "learning_rate" in logs:
                    out["logged_learning_rates"].append(logs["learning_rate"])
                if len(saved) > n:
                    out["saved_epochs"].append(epoch)
                if model.stop_training:
                    break
            cb.on_train_end({})
        except ValueError as e:
            error = str(e)
    out["epochs_run"] = run_epochs if error is None else None
    out["error"] = error
    out["warnings"] = [str(w.message) for w in caught if "__array__" not in str(w.message)]
    out["saved"] = saved
    if kind == "EarlyStopping":
        out["stopped_epoch"] = cb.stopped_epoch
        out["best"] = cb.best
        out["best_epoch"] = getattr(cb, "best_epoch", None)
        out["final_weights_epoch"] = weights_epoch(model)
    if kind == "CSVLogger":
        with open(os.path.join(tmp, "log.csv"), newline="") as f:
            out["csv"] = f.read()
    if kind == "ModelCheckpoint":
        out["best"] = cb.best
    return out


def main():
    cases = []
    for name, kind, config, history in CASES:
        with tempfile.TemporaryDirectory() as tmp:
            result = run(kind, config, history, tmp)
        cases.append({"name": name, "callback": kind, "config": config, "initial_learning_rate": 0.01,
                      "history": [{k: clean(v) for k, v in h.items()} for h in history], "keras": result})
    out = os.path.join(HERE, "callbacks.json")
    with open(out, "w") as f:
        json.dump({"keras": keras.__version__, "backend": keras.backend.backend(), "cases": cases}, f, indent=1)
        f.write("\n")
    print("wrote", out)


if __name__ == "__main__":
    main()
