package io.gophas.spark

import java.io.{ByteArrayOutputStream, IOException}
import java.nio.charset.StandardCharsets
import java.util.UUID

import scala.collection.immutable.ListMap
import scala.jdk.CollectionConverters._
import scala.util.control.NonFatal

import com.fasterxml.jackson.databind.{JsonNode, ObjectMapper}
import com.fasterxml.jackson.databind.node.ArrayNode
import org.apache.hadoop.conf.Configuration
import org.apache.hadoop.fs.{FileSystem, Path}
import org.apache.spark.internal.Logging

/**
 * One epoch's checkpoint: what a fit needs to continue after it.
 *
 * @param epochsDone   epochs complete (the next one to run, from 0)
 * @param network      the weights after that epoch, with every worker's optimizer state (and the server optimizer's)
 * @param steps        the parameter server's global step
 * @param learningRate the learning rate the callbacks set, if any
 * @param epochs       the epochs run so far (from 0), their merged logs, each worker's logs and seconds
 * @param stopped      a callback stopped the fit at that epoch
 * @param callbacks    each callback's class name and state, by its index in the fit's list (-1: the Python package's)
 */
private[spark] final case class CheckpointData(epochsDone: Int, network: GophasNetwork, steps: Long, learningRate: Option[Double],
    epochs: Seq[Int], logs: Seq[ListMap[String, Double]], workerLogs: Seq[Seq[ListMap[String, Double]]], seconds: Seq[Double],
    stopped: Boolean, callbacks: Map[Int, (String, CallbackState)])

/**
 * A fit's checkpoint directory (any Hadoop URI): `epoch-<n>/` holds the
 * checkpoint of n epochs done (`model/`: model.json, model.safetensors and
 * the optimizer states as GophasNetwork.save writes them; `state.json`: the
 * epoch, global step, learning rate, each epoch's logs and the stop flag;
 * `callbacks/<i>.json` and `callbacks/<i>-<name>/`: the callbacks' states).
 * Each is written under a temporary name and renamed into place whole, so a
 * fit killed while writing leaves the previous checkpoint; the older ones
 * are then removed.
 */
private[spark] final class Checkpoint(val dir: String, conf: Configuration, val deleteOnSuccess: Boolean) extends Logging {
  private val mapper = new ObjectMapper()
  private val root = new Path(dir)
  private def fs: FileSystem = root.getFileSystem(conf)

  /** Fails with a GophasException naming the directory when it cannot be created or written. */
  def checkWritable(): Unit = {
    val probe = new Path(root, s".probe-${UUID.randomUUID()}")
    try {
      val f = fs
      if (!f.mkdirs(root) && !f.getFileStatus(root).isDirectory) throw new IOException("cannot create it")
      val out = f.create(probe, true)
      try out.write(1) finally out.close()
      f.delete(probe, false)
    } catch {
      case NonFatal(e) =>
        throw new GophasException(s"checkpoint directory $dir is not writable: ${Option(e.getMessage).getOrElse(e.toString)}", e)
    }
  }

  private def epochDir(n: Int) = new Path(root, f"epoch-$n%06d")

  private def read(p: Path): Array[Byte] = {
    val in = fs.open(p)
    try { val out = new ByteArrayOutputStream(); in.transferTo(out); out.toByteArray } finally in.close()
  }

  private def write(p: Path, bytes: Array[Byte]): Unit = {
    val out = fs.create(p, true)
    try out.write(bytes) finally out.close()
  }

  /** The complete checkpoint of the most epochs, if any. */
  def latest(): Option[CheckpointData] = {
    val f = fs
    if (!f.exists(root)) return None
    val done = f.listStatus(root).toSeq.filter(_.isDirectory).map(_.getPath.getName)
      .collect { case n if n.startsWith("epoch-") && n.drop(6).forall(_.isDigit) && n.length > 6 => n.drop(6).toInt }
      .filter(n => f.exists(new Path(epochDir(n), "state.json")))
    done.sorted.lastOption.map(load)
  }

  private def load(n: Int): CheckpointData = {
    val d = epochDir(n)
    try {
      val st = mapper.readTree(read(new Path(d, "state.json")))
      val net = GophasNetwork.load(new Path(d, "model").toString, conf)
      val cbDir = new Path(d, "callbacks")
      val callbacks = if (!fs.exists(cbDir)) Map.empty[Int, (String, CallbackState)] else {
        val entries = fs.listStatus(cbDir).toSeq.map(_.getPath.getName)
        entries.filter(_.endsWith(".json")).map { name =>
          val i = name.stripSuffix(".json").toInt
          val nets = entries.filter(_.startsWith(s"$i-")).map { sub =>
            sub.drop(s"$i-".length) -> GophasNetwork.load(new Path(cbDir, sub).toString, conf)
          }.toMap
          val cls = new String(read(new Path(cbDir, s"$i.class")), StandardCharsets.UTF_8)
          i -> (cls -> CallbackState(new String(read(new Path(cbDir, name)), StandardCharsets.UTF_8), nets))
        }.toMap
      }
      def logs(a: JsonNode): Seq[ListMap[String, Double]] = a.elements().asScala.map { m =>
        ListMap(m.properties().asScala.iterator.map(e => e.getKey -> (if (e.getValue.isNull) Double.NaN else e.getValue.asDouble())).toSeq: _*)
      }.toSeq
      CheckpointData(st.path("epochsDone").asInt(), net, st.path("steps").asLong(),
        if (st.hasNonNull("learningRate")) Some(st.get("learningRate").asDouble()) else None,
        st.path("epochs").elements().asScala.map(_.asInt()).toSeq, logs(st.path("logs")),
        st.path("workerLogs").elements().asScala.map(logs).toSeq,
        st.path("seconds").elements().asScala.map(_.asDouble()).toSeq, st.path("stopped").asBoolean(), callbacks)
    } catch {
      case g: GophasException => throw g
      case NonFatal(e) => throw new GophasException(s"cannot read the checkpoint $d: ${e.getMessage}", e)
    }
  }

  /** Writes the checkpoint of data.epochsDone epochs, atomically, and removes the older ones. */
  def save(data: CheckpointData): Unit = {
    val f = fs
    val tmp = new Path(root, s".tmp-${data.epochsDone}-${UUID.randomUUID()}")
    try {
      data.network.save(new Path(tmp, "model").toString, conf)
      val cbDir = new Path(tmp, "callbacks")
      data.callbacks.foreach { case (i, (cls, s)) =>
        write(new Path(cbDir, s"$i.class"), cls.getBytes(StandardCharsets.UTF_8))
        write(new Path(cbDir, s"$i.json"), s.json.getBytes(StandardCharsets.UTF_8))
        s.networks.foreach { case (name, net) => net.save(new Path(cbDir, s"$i-$name").toString, conf) }
      }
      val st = mapper.createObjectNode()
      st.put("version", 1).put("epochsDone", data.epochsDone).put("steps", data.steps).put("stopped", data.stopped)
      data.learningRate.foreach(lr => st.put("learningRate", lr))
      def putLogs(a: ArrayNode, ls: Seq[ListMap[String, Double]]): Unit = ls.foreach { l =>
        val m = a.addObject()
        l.foreach { case (k, v) => if (v.isNaN || v.isInfinite) m.putNull(k) else m.put(k, v) }
      }
      data.epochs.foldLeft(st.putArray("epochs"))((a, e) => a.add(e))
      putLogs(st.putArray("logs"), data.logs)
      val wl = st.putArray("workerLogs")
      data.workerLogs.foreach(ls => putLogs(wl.addArray(), ls))
      data.seconds.foldLeft(st.putArray("seconds"))((a, s) => a.add(s))
      write(new Path(tmp, "state.json"), mapper.writeValueAsBytes(st))
      val target = epochDir(data.epochsDone)
      if (f.exists(target)) f.delete(target, true)
      if (!f.rename(tmp, target)) throw new IOException(s"cannot rename $tmp to $target")
    } catch {
      case NonFatal(e) =>
        try f.delete(tmp, true) catch { case NonFatal(_) => }
        throw new GophasException(s"cannot write the checkpoint of epoch ${data.epochsDone} to $dir: ${e.getMessage}", e)
    }
    f.listStatus(root).toSeq.map(_.getPath).filter { p =>
      val n = p.getName
      (n.startsWith("epoch-") && n != epochDir(data.epochsDone).getName) || n.startsWith(".tmp-")
    }.foreach(p => try f.delete(p, true) catch { case NonFatal(e) => logWarning(s"cannot remove the old checkpoint $p: ${e.getMessage}") })
  }

  /** Removes the directory (a fit that completed). */
  def delete(): Unit =
    try { fs.delete(root, true); () } catch { case NonFatal(e) => logWarning(s"cannot remove the checkpoint directory $dir: ${e.getMessage}") }

  override def toString: String = s"Checkpoint($dir)"
}

private[spark] object Checkpoint {
  /** The names of the epoch directories of a checkpoint dir, for tests and messages. */
  def epochs(dir: String, conf: Configuration): Seq[String] = {
    val root = new Path(dir)
    val fs = root.getFileSystem(conf)
    if (!fs.exists(root)) Nil else fs.listStatus(root).toSeq.map(_.getPath.getName).filter(_.startsWith("epoch-")).sorted
  }
}
