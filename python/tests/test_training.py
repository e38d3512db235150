"""What a Keras user trains with, from Python, on a local Spark: Keras'
callback objects (translated or run here), your own callbacks, schedules,
class and sample weights, validation data, checkpoints and resume."""

import math
import os
import warnings

import numpy as np
import pytest

from conftest import mlp

import gophas
from gophas import SparkModel
from gophas.errors import GophasError


@pytest.fixture(scope="module")
def small(spark, mnist_arrays):
    """300 training rows (to overfit) and 1000 validation rows, as DataFrames and arrays."""
    from gophas import to_data_frame

    x, y, xt, yt = mnist_arrays
    train = to_data_frame(spark.sparkContext, x[:300], y[:300]).repartition(2).cache()
    val = to_data_frame(spark.sparkContext, xt[:1000], yt[:1000]).coalesce(2).cache()
    return train, val, (xt[:1000], yt[:1000])


def replay(callback_class, history, **kwargs):
    """Keras' own callback run on a merged history: the epochs it lets run and the callback."""
    import keras

    model = mlp(seed=3)
    cb = callback_class(**kwargs)
    cb.set_model(model)
    cb.on_train_begin({})
    run = 0
    for epoch in range(len(history["loss"])):
        cb.on_epoch_end(epoch, {k: v[epoch] for k, v in history.items()})
        run += 1
        if model.stop_training:
            break
    assert keras  # imported for the callback classes
    return run, cb


def test_keras_early_stopping_and_checkpoints(spark, small, tmp_path, record_property):
    import keras

    train, val, (xv, yv) = small
    sm = SparkModel(mlp(seed=5, optimizer=keras.optimizers.Adam(0.01)), num_workers=2, batch_size=64)
    es = keras.callbacks.EarlyStopping(patience=2, restore_best_weights=True)
    ckpt = str(tmp_path / "m_{epoch:02d}.keras")
    mc = keras.callbacks.ModelCheckpoint(ckpt, save_best_only=True)
    hist_cb = keras.callbacks.History()
    h = sm.fit(train, epochs=30, validation_data=val, callbacks=[es, mc, hist_cb])
    run, keras_es = replay(keras.callbacks.EarlyStopping, h.history, patience=2)
    record_property("early_stopping", f"{len(h.epoch)} epochs, best {keras_es.best_epoch + 1}")
    assert len(h.epoch) == run < 30
    assert hist_cb.history == h.history and hist_cb.epoch == h.epoch and hist_cb.params["steps"] == h.params["steps"]
    vl = h.history["val_loss"]
    improving = [i for i in range(len(vl)) if all(np.float32(vl[i]) < np.float32(p) for p in vl[:i])]
    saved = sorted(os.listdir(tmp_path))
    assert saved == [f"m_{i + 1:02d}.keras" for i in improving]
    # Each saved model loads in Keras; the last one (the best) predicts as the restored model.
    best = keras.saving.load_model(str(tmp_path / saved[-1]))
    assert best.count_params() == 118282
    np.testing.assert_allclose(best.predict(xv[:50], verbose=0), sm.predict(xv[:50]), rtol=1e-5, atol=1e-6)
    assert np.argmax(best.predict(xv, verbose=0), axis=1).tolist() == np.argmax(sm.predict(xv), axis=1).tolist()
    # Its weights are the restored ones, bit for bit.
    for a, b in zip(best.get_weights(), sm.get_weights()):
        assert np.array_equal(a, b)


def test_user_callbacks_see_merged_logs_and_control_the_fit(spark, small):
    train, val, _ = small

    from gophas.callbacks import Callback

    class Recorder(Callback):
        def __init__(self):
            super().__init__()
            self.calls = []

        def on_train_begin(self, logs=None):
            self.calls.append(("train_begin", self.params["epochs"]))

        def on_epoch_begin(self, epoch, logs=None):
            self.calls.append(("epoch_begin", epoch))

        def on_epoch_end(self, epoch, logs=None):
            self.calls.append(("epoch_end", epoch, sorted(logs)))
            if epoch == 0:
                self.lr = self.model.optimizer.learning_rate
                self.model.optimizer.learning_rate = 0.0
                self.frozen = [w.copy() for w in self.model.get_weights()]
            if epoch == 2:
                self.model.stop_training = True

        def on_train_end(self, logs=None):
            self.calls.append(("train_end",))

    rec = Recorder()
    sm = SparkModel(mlp(seed=2), num_workers=2, batch_size=64)
    h = sm.fit(train, epochs=6, validation_data=val, callbacks=[rec])
    assert [c[0] for c in rec.calls] == ["train_begin"] + ["epoch_begin", "epoch_end"] * 3 + ["train_end"]
    assert rec.calls[2] == ("epoch_end", 0, ["accuracy", "loss", "val_accuracy", "val_loss"])
    assert math.isclose(rec.lr, 0.001, rel_tol=1e-6)
    assert h.epoch == [0, 1, 2]
    for a, b in zip(rec.frozen, sm.get_weights()):  # learning rate 0 from epoch 1 on
        assert np.array_equal(a, b)


def test_learning_rate_scheduler_and_schedules(spark, small):
    import keras

    train, _, _ = small
    sm = SparkModel(mlp(seed=4, optimizer=keras.optimizers.SGD(0.1)), num_workers=2, batch_size=64)
    h = sm.fit(train, epochs=3, callbacks=[keras.callbacks.LearningRateScheduler(lambda e, lr: lr / 2)])
    assert np.float32(h.history["learning_rate"]).tolist() == np.float32([0.05, 0.025, 0.0125]).tolist()
    sched = keras.optimizers.schedules.CosineDecay(0.1, decay_steps=1000)  # still above 0 when the callback would lower it
    sm2 = SparkModel(mlp(seed=4, optimizer=keras.optimizers.SGD(sched)), num_workers=2, batch_size=64)
    with pytest.raises(GophasError, match="CosineDecay schedule, so it cannot be set"):
        sm2.fit(train, epochs=2, callbacks=[keras.callbacks.ReduceLROnPlateau(monitor="loss", patience=0, min_delta=10)])
    sm2.fit(train, epochs=2)
    assert sm2.server_stats["steps"] == 2 * 6  # two workers of 150 rows: 3 batches each per epoch


def test_sample_and_class_weights(spark, small):
    import keras
    from pyspark.sql import functions as F

    train, val, _ = small
    # Plain SGD: a step of zero gradients moves nothing (Adam's moments, kept from the previous fit, would).
    model = mlp(seed=6, weighted_metrics=["accuracy"], optimizer=keras.optimizers.SGD(0.05))
    sm = SparkModel(model, num_workers=2, batch_size=64)
    sm.fit(train, epochs=1)
    w = val.withColumn("w", F.when(F.col("label") < 5, F.lit(2.0)).otherwise(F.lit(0.0)))
    weighted = sm.evaluate_dict(w, sample_weight_col="w")
    kept = sm.evaluate_dict(w.filter(F.col("label") < 5))
    n, n1 = w.count(), w.filter(F.col("label") < 5).count()
    assert set(weighted) == {"loss", "accuracy", "weighted_accuracy"}
    assert math.isclose(weighted["loss"], 2 * kept["loss"] * n1 / n, rel_tol=1e-9)
    assert math.isclose(weighted["weighted_accuracy"], kept["accuracy"], rel_tol=1e-12)
    before = sm.get_weights()
    sm.fit(train, epochs=1, class_weight={c: 0.0 for c in range(10)})
    for a, b in zip(before, sm.get_weights()):
        assert np.array_equal(a, b)
    h = sm.fit(train.withColumn("sw", F.lit(1.5)), epochs=1, sample_weight_col="sw", validation_data=w.withColumnRenamed("w", "sw"))
    assert "val_weighted_accuracy" in h.history
    with pytest.raises(GophasError, match="cannot be used together"):
        sm.fit(train.withColumn("sw", F.lit(1.0)), epochs=1, sample_weight_col="sw", class_weight={0: 2.0})


def test_validation_arrays_and_freq(spark, small):
    train, _, (xv, yv) = small
    sm = SparkModel(mlp(seed=7), num_workers=2, batch_size=64)
    h = sm.fit(train, epochs=3, validation_data=(xv, yv), validation_freq=[1, 3])
    assert len(h.history["loss"]) == 3 and len(h.history["val_loss"]) == 2
    assert math.isclose(h.history["val_loss"][-1], sm.evaluate_dict(xv, yv)["loss"], rel_tol=1e-9)


def test_refused_and_warned_callbacks(spark, small, tmp_path):
    import keras

    train, _, _ = small
    sm = SparkModel(mlp(seed=8), num_workers=2, batch_size=64)
    with pytest.raises(GophasError, match="TensorBoard is not supported"):
        sm.fit(train, epochs=1, callbacks=[keras.callbacks.TensorBoard(str(tmp_path / "tb"))])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        sm.fit(train, epochs=3, callbacks=[keras.callbacks.EarlyStopping(patience=5)])
    msgs = [str(w.message) for w in caught if "Early stopping conditioned" in str(w.message)]
    assert msgs == ["Early stopping conditioned on metric `val_loss` which is not available. Available metrics are: loss,accuracy"]
    not_dir = tmp_path / "file"
    not_dir.write_text("x")
    with pytest.raises(GophasError, match=f"checkpoint directory {not_dir}/backup is not writable"):
        sm.fit(train, epochs=1, callbacks=[keras.callbacks.BackupAndRestore(str(not_dir / "backup"))])


def test_backup_and_restore_resumes(spark, mnist_frames, tmp_path, record_property):
    import keras

    train, test = mnist_frames
    backup = str(tmp_path / "backup")

    class Die(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                raise RuntimeError("the driver dies")

    def fresh():
        return SparkModel(mlp(seed=9), mode="synchronous", num_workers=2, batch_size=64)

    with pytest.raises(RuntimeError):
        fresh().fit(train, epochs=4, callbacks=[keras.callbacks.BackupAndRestore(backup), Die()])
    assert os.listdir(backup) == ["epoch-000002"]
    resumed = fresh()
    h = resumed.fit(train, epochs=4, callbacks=[keras.callbacks.BackupAndRestore(backup)])
    assert h.epoch == [0, 1, 2, 3] and len(h.history["loss"]) == 4
    assert not os.path.exists(backup)
    straight = fresh()
    straight.fit(train, epochs=4)
    a, b = resumed.evaluate_dict(test)["accuracy"], straight.evaluate_dict(test)["accuracy"]
    record_property("resume accuracy", f"{a:.4f} vs uninterrupted {b:.4f}")
    assert abs(a - b) <= 0.005


def test_saved_model_continues_the_optimizer(spark, small, tmp_path):
    from gophas import safetensors

    train, _, _ = small
    sm = SparkModel(mlp(seed=10), num_workers=2, batch_size=64)
    sm.fit(train, epochs=1)
    path = str(tmp_path / "saved")
    sm.save(path)
    saved = sorted(f for f in os.listdir(os.path.join(path, "optimizer")) if not f.startswith("."))  # Hadoop's .crc files aside
    assert saved == ["partition-0.safetensors", "partition-1.safetensors"]
    loaded = gophas.load_spark_model(path, num_workers=2, batch_size=64)
    loaded.fit(train, epochs=1)
    out = str(tmp_path / "again")
    loaded.save(out)
    with open(os.path.join(out, "optimizer", "partition-0.safetensors"), "rb") as f:
        state = dict(safetensors.loads(f.read()))
    assert float(state["iteration"]) == 6  # 3 steps per epoch, two fits
