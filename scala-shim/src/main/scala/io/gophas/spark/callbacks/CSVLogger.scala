package io.gophas.spark.callbacks

import java.io.{ByteArrayOutputStream, FileNotFoundException}
import java.nio.charset.StandardCharsets

import scala.collection.mutable
import scala.jdk.CollectionConverters._

import org.apache.hadoop.conf.Configuration
import org.apache.hadoop.fs.Path

import io.gophas.spark.{Callback, CallbackState}

/**
 * Keras' CSVLogger: writes each epoch's logs as a CSV row to `filename` (any
 * Hadoop URI), in Keras' layout: a header `epoch` and the logs' keys sorted
 * (with `val_` columns added when the first epoch had none), then one row
 * per epoch, numbers as Python writes them, `NA` for a missing key, rows
 * ending in `\r\n`. With `append` the rows follow what the file holds. The
 * file is rewritten whole after each epoch (Hadoop file systems need not
 * append), so a reader always sees complete rows; a resumed fit continues it.
 */
class CSVLogger(val filename: String, val separator: String = ",", val append: Boolean = false) extends Callback {
  require(filename != null && filename.nonEmpty, "CSVLogger needs a filename")

  @transient private[spark] var hadoopConf: Configuration = _
  private var keys: Option[Seq[String]] = None
  private var content = new StringBuilder
  private var header = true

  private def conf: Configuration = Option(hadoopConf).getOrElse(new Configuration())

  private def path = new Path(filename)

  private def quote(s: String): String =
    if (s.contains(separator) || s.contains("\"") || s.contains("\n") || s.contains("\r")) "\"" + s.replace("\"", "\"\"") + "\"" else s

  override def onTrainBegin(logs: mutable.Map[String, Double]): Unit = {
    content = new StringBuilder
    header = true
    keys = None
    if (append) {
      val fs = path.getFileSystem(conf)
      val existing = try {
        val in = fs.open(path)
        try { val out = new ByteArrayOutputStream(); in.transferTo(out); new String(out.toByteArray, StandardCharsets.UTF_8) }
        finally in.close()
      } catch { case _: FileNotFoundException => "" }
      content ++= existing
      header = { val ls = existing.linesIterator; !ls.hasNext || ls.next().isEmpty }
    }
  }

  override def onEpochEnd(epoch: Int, logs: mutable.Map[String, Double]): Unit = {
    if (keys.isEmpty) {
      val ks = logs.keys.toSeq.sorted
      keys = Some(if (ks.nonEmpty && !ks.exists(_.startsWith("val_"))) ks ++ ks.map("val_" + _) else ks)
      if (header) content ++= (Seq("epoch") ++ keys.get).map(quote).mkString(separator) + "\r\n"
    }
    val row = Seq(epoch.toString) ++ keys.get.map(k => logs.get(k).map(PyFormat.repr).getOrElse("NA"))
    content ++= row.map(quote).mkString(separator) + "\r\n"
    write()
  }

  private def write(): Unit = {
    val fs = path.getFileSystem(conf)
    Option(path.getParent).foreach(fs.mkdirs)
    val out = fs.create(path, true)
    try out.write(content.toString.getBytes(StandardCharsets.UTF_8)) finally out.close()
  }

  override def state: Option[CallbackState] = {
    val n = Json.mapper.createObjectNode()
    n.put("content", content.toString).put("header", header)
    keys.foreach(ks => ks.foldLeft(n.putArray("keys"))((a, k) => a.add(k)))
    Some(CallbackState(Json.mapper.writeValueAsString(n)))
  }

  override def restoreState(s: CallbackState): Unit = {
    val n = Json.mapper.readTree(s.json)
    content = new StringBuilder(n.path("content").asText())
    header = n.path("header").asBoolean(true)
    keys = if (n.has("keys")) Some(n.get("keys").elements().asScala.map(_.asText()).toSeq) else None
  }
}
