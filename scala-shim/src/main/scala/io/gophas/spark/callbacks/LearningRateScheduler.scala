package io.gophas.spark.callbacks

import scala.collection.mutable

import io.gophas.spark.{Callback, GophasException}

/**
 * Keras' LearningRateScheduler: before each epoch, sets the optimizer's
 * learning rate to `schedule(epoch, rate)` (epoch from 0, rate the current
 * one), and logs it as `learning_rate` after the epoch. The rate reaches
 * every worker's optimizer for that epoch.
 */
class LearningRateScheduler(val schedule: (Int, Double) => Double, val verbose: Int = 0) extends Callback {
  override def onEpochBegin(epoch: Int, logs: mutable.Map[String, Double]): Unit = {
    val lr = schedule(epoch, model.learningRate)
    if (lr.isNaN || lr.isInfinite)
      throw new GophasException(s"The output of the `schedule` function should be a finite float. Got: $lr (epoch $epoch)")
    model.learningRate = lr
    if (verbose > 0) model.say(s"Epoch ${epoch + 1}: LearningRateScheduler setting learning rate to ${PyFormat.repr(lr)}.")
  }

  override def onEpochEnd(epoch: Int, logs: mutable.Map[String, Double]): Unit =
    logs("learning_rate") = model.learningRate
}
