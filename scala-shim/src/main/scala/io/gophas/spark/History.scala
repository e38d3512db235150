package io.gophas.spark

import scala.collection.immutable.ListMap

import com.fasterxml.jackson.databind.ObjectMapper

/**
 * What `SparkModel.fit` returns, shaped like Keras' `History`: `history` maps
 * each key (`loss`, each compiled metric, then `val_` keys when a validation
 * split was asked for) to one value per epoch, merged exactly across workers
 * (sum of per-row values over sum of rows). `workers` holds the same per
 * worker (`partition-<index>`); an epoch in which a worker trained no rows
 * (an empty partition, or a retried task whose update had already been
 * applied) is NaN there.
 */
final class History private[spark] (
    val history: ListMap[String, IndexedSeq[Double]],
    val workers: ListMap[String, ListMap[String, IndexedSeq[Double]]],
    /** Wall-clock seconds of each epoch (training and validation). */
    val epochSeconds: IndexedSeq[Double]) extends Serializable {

  def epochs: Int = epochSeconds.length

  /** The values of one key, one per epoch. */
  def apply(key: String): IndexedSeq[Double] = history.getOrElse(key,
    throw new NoSuchElementException(s"no '$key' in the history; keys: ${history.keys.mkString(", ")}"))

  /** The history as JSON: `{"history": {...}, "workers": {...}, "epochSeconds": [...]}`; NaN becomes null. */
  def toJson: String = {
    val m = new ObjectMapper()
    val root = m.createObjectNode()
    def put(node: com.fasterxml.jackson.databind.node.ObjectNode, h: ListMap[String, IndexedSeq[Double]]): Unit =
      h.foreach { case (k, vs) =>
        val a = node.putArray(k)
        vs.foreach(v => if (v.isNaN) a.addNull() else a.add(v))
      }
    put(root.putObject("history"), history)
    val w = root.putObject("workers")
    workers.foreach { case (name, h) => put(w.putObject(name), h) }
    val s = root.putArray("epochSeconds")
    epochSeconds.foreach(v => s.add(v))
    m.writeValueAsString(root)
  }

  override def toString: String =
    history.map { case (k, vs) => s"$k: ${vs.map(v => f"$v%.4f").mkString("[", ", ", "]")}" }.mkString("History(", "; ", ")")
}
