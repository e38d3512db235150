package io.gophas.spark.callbacks

import scala.collection.mutable

import io.gophas.spark.{Callback, GophasException}

/**
 * Keras' TerminateOnNaN: stops the fit when the loss is NaN or infinite.
 * Keras looks at each batch's loss; on Spark the driver sees the epoch's
 * merged loss, which is NaN or infinite as soon as any batch's was, so the
 * fit stops at the end of that epoch. With `raiseError` it fails instead.
 */
class TerminateOnNaN(val raiseError: Boolean = false) extends Callback {
  override def onEpochEnd(epoch: Int, logs: mutable.Map[String, Double]): Unit =
    logs.get("loss").filter(l => l.isNaN || l.isInfinite).foreach { loss =>
      if (raiseError)
        throw new GophasException(s"NaN or Inf loss encountered in epoch ${epoch + 1}. Loss value: ${PyFormat.repr(loss)}. " +
          "Terminating training immediately.")
      model.say(s"Epoch ${epoch + 1}: Invalid loss, terminating training")
      model.stopTraining = true
    }
}
