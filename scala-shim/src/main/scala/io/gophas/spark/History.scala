package io.gophas.spark

import scala.collection.immutable.ListMap
import scala.jdk.CollectionConverters._

import com.fasterxml.jackson.databind.{JsonNode, ObjectMapper}
import com.fasterxml.jackson.databind.node.ObjectNode

/**
 * What `SparkModel.fit` returns, shaped like Keras' `History`: `history` maps
 * each key (`loss`, each compiled metric, the `val_` keys of the epochs that
 * were validated, and what callbacks added, such as `learning_rate`) to its
 * values, one per epoch that logged it, merged exactly across workers (sum
 * of per-row values over sum of rows). `epoch` lists the epochs run (from 0,
 * as Keras counts them; a resumed fit's history holds the epochs before the
 * failure too) and `params` the fit's parameters (`epochs`, `steps`,
 * `verbose`, as Keras' `History.params`). `workers` holds the same per worker
 * (`partition-<index>`); an epoch in which a worker trained no rows (an empty
 * partition, or a retried task whose update had already been applied) is
 * NaN there.
 */
final class History private[spark] (
    val history: ListMap[String, IndexedSeq[Double]],
    val workers: ListMap[String, ListMap[String, IndexedSeq[Double]]],
    /** Wall-clock seconds of each epoch (training and validation). */
    val epochSeconds: IndexedSeq[Double],
    epochs: Option[IndexedSeq[Int]] = None,
    val params: ListMap[String, Long] = ListMap.empty) extends Serializable {

  /** The epochs run, from 0. */
  val epoch: IndexedSeq[Int] = epochs.getOrElse(epochSeconds.indices)

  /** The number of epochs run. */
  def epochsRun: Int = epoch.length

  /** The values of one key, one per epoch that logged it. */
  def apply(key: String): IndexedSeq[Double] = history.getOrElse(key,
    throw new NoSuchElementException(s"no '$key' in the history; keys: ${history.keys.mkString(", ")}"))

  /**
   * The history as JSON: `{"history": {...}, "workers": {...}, "epochSeconds": [...], "epoch": [...], "params": {...}}`;
   * NaN becomes null.
   */
  def toJson: String = {
    val m = new ObjectMapper()
    val root = m.createObjectNode()
    def put(node: ObjectNode, h: ListMap[String, IndexedSeq[Double]]): Unit =
      h.foreach { case (k, vs) =>
        val a = node.putArray(k)
        vs.foreach(v => if (v.isNaN || v.isInfinite) a.addNull() else a.add(v))
      }
    put(root.putObject("history"), history)
    val w = root.putObject("workers")
    workers.foreach { case (name, h) => put(w.putObject(name), h) }
    val s = root.putArray("epochSeconds")
    epochSeconds.foreach(v => s.add(v))
    val e = root.putArray("epoch")
    epoch.foreach(v => e.add(v))
    val p = root.putObject("params")
    params.foreach { case (k, v) => p.put(k, v) }
    m.writeValueAsString(root)
  }

  override def toString: String =
    history.map { case (k, vs) => s"$k: ${vs.map(v => f"$v%.4f").mkString("[", ", ", "]")}" }.mkString("History(", "; ", ")")
}

object History {
  /** Reads a history written by toJson (null reads as NaN). */
  def fromJson(json: String): History = {
    val root = new ObjectMapper().readTree(json)
    def read(n: JsonNode): ListMap[String, IndexedSeq[Double]] =
      ListMap(n.properties().asScala.iterator.map(e => e.getKey -> e.getValue.elements().asScala.map(v => if (v.isNull) Double.NaN else v.asDouble()).toIndexedSeq).toSeq: _*)
    val seconds = root.path("epochSeconds").elements().asScala.map(_.asDouble()).toIndexedSeq
    val epochs = if (root.has("epoch")) Some(root.get("epoch").elements().asScala.map(_.asInt()).toIndexedSeq) else None
    new History(read(root.path("history")),
      ListMap(root.path("workers").properties().asScala.iterator.map(e => e.getKey -> read(e.getValue)).toSeq: _*),
      seconds, epochs,
      ListMap(root.path("params").properties().asScala.iterator.map(e => e.getKey -> e.getValue.asLong()).toSeq: _*))
  }
}
