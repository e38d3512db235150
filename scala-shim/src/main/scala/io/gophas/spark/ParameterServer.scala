package io.gophas.spark

import java.io.{BufferedReader, InputStreamReader, OutputStream}
import java.nio.charset.StandardCharsets
import java.nio.file.Path
import java.util.concurrent.{LinkedBlockingQueue, TimeUnit}

import scala.jdk.CollectionConverters._
import scala.util.control.NonFatal

import com.fasterxml.jackson.databind.{JsonNode, ObjectMapper}
import org.apache.spark.internal.Logging

/** One worker's counters on the parameter server (Go's ps.WorkerStats, field for field). */
final case class WorkerStats(worker: String, applied: Long, refused: Long, duplicate: Long, nonFinite: Long, registers: Long,
    done: Boolean, epoch: Int)

/**
 * What the parameter server reports: its mode, weights version, open epoch and per-worker counters. It is Go's
 * ps.Stats field for field, the one stats record: the driver's control channel answers it as JSON with these names,
 * and `json` is that JSON as the driver wrote it (what the Python package receives).
 */
final case class ServerStats(mode: String, frequency: String, version: Long, round: Long, epoch: Int, workersExpected: Int,
    workers: Seq[WorkerStats], json: String)

object ServerStats {
  /** Reads the stats record from its JSON (the `stats` of the driver's answer). */
  def fromJson(n: JsonNode): ServerStats =
    ServerStats(n.path("mode").asText(), n.path("frequency").asText(), n.path("version").asLong(), n.path("round").asLong(),
      n.path("epoch").asInt(), n.path("workersExpected").asInt(),
      n.path("workers").elements().asScala.map { w =>
        WorkerStats(w.path("worker").asText(), w.path("applied").asLong(), w.path("refused").asLong(), w.path("duplicate").asLong(),
          w.path("nonFinite").asLong(), w.path("registers").asLong(), w.path("done").asBoolean(), w.path("epoch").asInt())
      }.toSeq, n.toString)
}

/**
 * ParameterServer runs one `gophas driver` process on the Spark driver for
 * one fit: it starts it bound to the driver's host, reads its ready line
 * (address, token, TLS fingerprint), talks to it over its stdin/stdout
 * control channel (load, save, epoch, stats, forget; one JSON line each way, every
 * wait bounded), and stops it by closing its stdin, killing it if it does not
 * exit in time. The process also dies with this JVM (Linux parent-death
 * signal), so it can never outlive the application.
 */
private[spark] final class ParameterServer private (
    proc: Process,
    stdin: OutputStream,
    lines: LinkedBlockingQueue[Either[Throwable, String]],
    stderr: StderrTail,
    timeoutMs: Long) extends Logging {

  private val mapper = new ObjectMapper()
  @volatile private var stopped = false

  var address: String = _
  var token: String = _
  var tlsFingerprint: String = _

  private def nextLine(what: String): String = {
    val got = lines.poll(timeoutMs, TimeUnit.MILLISECONDS)
    got match {
      case null =>
        throw failure(s"gave no $what within $timeoutMs ms")
      case Left(e) => throw failure(s"closed its output before its $what (${e.getMessage})")
      case Right(null) => throw failure(s"exited before its $what")
      case Right(l) => l
    }
  }

  private def failure(what: String): GophasException = {
    proc.waitFor(2, TimeUnit.SECONDS)
    stderr.join(2000)
    val status = if (proc.isAlive) "" else s" (exit status ${proc.exitValue()})"
    val err = stderr.lastError.map(e => s": $e").getOrElse("")
    val tail = stderr.tail
    new GophasException(s"gophas driver $what$status$err" +
      (if (tail.isEmpty) "" else "\ndriver stderr (last lines):\n  " + tail.mkString("\n  ")))
  }

  private def readReady(): Unit = {
    val line = nextLine("ready line")
    val n = try mapper.readTree(line) catch {
      case NonFatal(e) => throw failure(s"printed '$line' instead of its ready line: ${e.getMessage}")
    }
    if (n.path("protocol").asInt(-1) != Protocol.Version)
      throw failure(s"speaks protocol ${n.path("protocol")}, this shim ${Protocol.Version}")
    address = n.path("address").asText()
    token = n.path("token").asText()
    tlsFingerprint = n.path("tlsFingerprint").asText("")
    if (address.isEmpty || token.isEmpty) throw failure(s"ready line without address or token: $line")
  }

  /** Sends one command and returns its answer; a failed command is a GophasException with the driver's words. */
  private def command(fields: (String, Any)*): JsonNode = synchronized {
    if (stopped) throw new GophasException("the parameter server has been stopped")
    val cmd = new java.util.LinkedHashMap[String, Any]()
    fields.foreach { case (k, v) => cmd.put(k, v) }
    try {
      stdin.write(mapper.writeValueAsBytes(cmd))
      stdin.write('\n')
      stdin.flush()
    } catch {
      case NonFatal(e) => throw failure(s"cannot be sent '${fields.head._2}' (${e.getMessage})")
    }
    val n = mapper.readTree(nextLine(s"answer to '${fields.head._2}'"))
    if (!n.path("ok").asBoolean(false)) throw new GophasException(s"gophas driver: ${fields.head._2}: ${n.path("error").asText("failed")}")
    n
  }

  /** Installs the network's weights (and spec) on the server; returns the version. */
  def load(modelDir: Path): Long = command("cmd" -> "load", "model" -> modelDir.toString).path("version").asLong()

  /** Writes the current weights with the loaded spec as a model directory; returns the version. */
  def save(dir: Path): Long = command("cmd" -> "save", "dir" -> dir.toString).path("version").asLong()

  /**
   * Opens epoch e (from 1, in order) before its tasks start and returns the
   * synchronous round of its first batch: the server's rounds then wait for
   * every worker of the fit to register for the epoch.
   */
  def openEpoch(e: Int): Long = command("cmd" -> "epoch", "epoch" -> e).path("round").asLong()

  /** The parameter server's stats record (the control command stats answers with Go's ps.Stats as JSON). */
  def stats(): ServerStats = ServerStats.fromJson(command("cmd" -> "stats").path("stats"))

  /** Drops blobs (old optimizer states) from the model store. */
  def forget(hashes: Seq[String]): Unit =
    if (hashes.nonEmpty) command("cmd" -> "forget", "hashes" -> hashes.asJava)

  /** Closes stdin (the driver drains and exits), killing the process if it has not exited in time. Safe to call twice. */
  def stop(): Unit = synchronized {
    if (stopped) return
    stopped = true
    try stdin.close() catch { case NonFatal(_) => }
    if (!proc.waitFor(timeoutMs min 30000L, TimeUnit.MILLISECONDS)) {
      logWarning(s"gophas driver at $address did not exit after its stdin closed; killing it")
      proc.destroyForcibly()
      proc.waitFor(10, TimeUnit.SECONDS)
    }
    stderr.join(5000)
  }

  def isAlive: Boolean = proc.isAlive
}

private[spark] object ParameterServer extends Logging {

  /**
   * Starts `gophas driver` on host for a fit in mode/frequency with workers
   * workers. Every wait for it is bounded by timeoutMs.
   */
  def start(binary: Path, host: String, mode: String, frequency: String, workers: Int, scale: Boolean, tls: Boolean,
      roundTimeoutMs: Long, timeoutMs: Long): ParameterServer = {
    val args = Seq(binary.toString, "driver", "--host", host, "--mode", mode, "--frequency", frequency,
      "--workers", workers.toString, "--round-timeout", s"${roundTimeoutMs}ms") ++
      (if (scale) Seq("--scale") else Nil) ++ (if (tls) Seq("--tls") else Nil)
    val proc = try new ProcessBuilder(args: _*).start() catch {
      case NonFatal(e) => throw new GophasException(s"cannot start ${args.mkString(" ")}: ${e.getMessage}", e)
    }
    val stderr = new StderrTail(proc.getErrorStream, "gophas driver")
    stderr.start()
    val lines = new LinkedBlockingQueue[Either[Throwable, String]]()
    val reader = new Thread("gophas driver stdout") {
      override def run(): Unit = {
        val r = new BufferedReader(new InputStreamReader(proc.getInputStream, StandardCharsets.UTF_8))
        try {
          var l = r.readLine()
          while (l != null) { lines.put(Right(l)); l = r.readLine() }
          lines.put(Right(null))
        } catch { case NonFatal(e) => lines.put(Left(e)) }
      }
    }
    reader.setDaemon(true)
    reader.start()
    val ps = new ParameterServer(proc, proc.getOutputStream, lines, stderr, timeoutMs)
    try ps.readReady() catch {
      case NonFatal(e) => ps.stop(); throw e
    }
    logInfo(s"gophas driver serving at ${ps.address} ($mode, $frequency, $workers workers${if (scale) ", deltas scaled by 1/workers" else ""}${if (tls) ", TLS" else ""})")
    ps
  }
}
