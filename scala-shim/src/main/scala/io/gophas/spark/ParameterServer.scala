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
 * What the parameter server reports: its mode, weights version, open epoch and per-worker counters, and the global
 * step (`steps`: the training batches of every push applied, the step a learning-rate schedule reads). It is Go's
 * ps.Stats field for field, the one stats record: the driver's control channel answers it as JSON with these names,
 * and `json` is that JSON as the driver wrote it (what the Python package receives).
 */
final case class ServerStats(mode: String, frequency: String, version: Long, round: Long, epoch: Int, workersExpected: Int,
    workers: Seq[WorkerStats], json: String, steps: Long = 0L)

object ServerStats {
  /** Reads the stats record from its JSON (the `stats` of the driver's answer). */
  def fromJson(n: JsonNode): ServerStats = {
    import Protocol.{StatsKeys => S, WorkerStatsKeys => W}
    ServerStats(n.path(S.Mode).asText(), n.path(S.Frequency).asText(), n.path(S.Version).asLong(), n.path(S.Round).asLong(),
      n.path(S.Epoch).asInt(), n.path(S.WorkersExpected).asInt(),
      n.path(S.Workers).elements().asScala.map { w =>
        WorkerStats(w.path(W.Worker).asText(), w.path(W.Applied).asLong(), w.path(W.Refused).asLong(), w.path(W.Duplicate).asLong(),
          w.path(W.NonFinite).asLong(), w.path(W.Registers).asLong(), w.path(W.Done).asBoolean(), w.path(W.Epoch).asInt())
      }.toSeq, n.toString, n.path(S.Steps).asLong())
  }
}

/**
 * ParameterServer runs one `gophas driver` process on the Spark driver for
 * one fit: it starts it bound to the driver's host, reads its ready line
 * (address, token, TLS fingerprint), talks to it over its stdin/stdout
 * control channel (load, save, epoch, stats, forget; one JSON line each way, every
 * wait bounded), and stops it by closing its stdin, killing it if it does not
 * exit in time. The process also exits with this JVM (it polls its parent's
 * pid), so it can never outlive the application.
 */
private[spark] final class ParameterServer private (
    proc: Process,
    stdin: OutputStream,
    lines: LinkedBlockingQueue[Either[Throwable, String]],
    stderr: StderrTail,
    timeoutMs: Long) extends Logging {

  private val mapper = new ObjectMapper()
  private val C = Protocol.CommandKeys
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
    import Protocol.{ReadyKeys => R}
    if (n.path(R.Protocol).asInt(-1) != Protocol.Version)
      throw failure(s"speaks protocol ${n.path(R.Protocol)}, this shim ${Protocol.Version}")
    address = n.path(R.Address).asText()
    token = n.path(R.Token).asText()
    tlsFingerprint = n.path(R.TlsFingerprint).asText("")
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
    if (!n.path(Protocol.AnswerKeys.Ok).asBoolean(false))
      throw new GophasException(s"gophas driver: ${fields.head._2}: ${n.path(Protocol.AnswerKeys.Error).asText("failed")}")
    n
  }

  /** Installs the network's weights (and spec) on the server; returns the version. */
  def load(modelDir: Path): Long =
    command(C.Cmd -> Protocol.CmdLoad, C.Model -> modelDir.toString).path(Protocol.AnswerKeys.Version).asLong()

  /** Writes the current weights with the loaded spec as a model directory; returns the version. */
  def save(dir: Path): Long = command(C.Cmd -> Protocol.CmdSave, C.Dir -> dir.toString).path(Protocol.AnswerKeys.Version).asLong()

  /**
   * Opens epoch e (from 1, in order) before its tasks start and returns the
   * synchronous round of its first batch: the server's rounds then wait for
   * every worker of the fit to register for the epoch.
   */
  def openEpoch(e: Int): Long = command(C.Cmd -> Protocol.CmdEpoch, C.Epoch -> e).path(Protocol.AnswerKeys.Round).asLong()

  /** The parameter server's stats record (the control command stats answers with Go's ps.Stats as JSON). */
  def stats(): ServerStats = ServerStats.fromJson(command(C.Cmd -> Protocol.CmdStats).path(Protocol.AnswerKeys.Stats))

  /**
   * Asks for the server's stats and waits at most timeoutMs for the answer
   * (besides the wait for a command in flight): the server is alive and
   * answering. A failure says what happened, the process' state included.
   */
  def ping(timeoutMs: Long): Unit = synchronized {
    if (stopped) return
    val started = System.nanoTime()
    try {
      stdin.write(mapper.writeValueAsBytes(java.util.Map.of(C.Cmd, Protocol.CmdStats)))
      stdin.write('\n')
      stdin.flush()
    } catch {
      case NonFatal(e) => throw new GophasException(s"the parameter server (gophas driver, pid ${proc.pid}) cannot be asked: ${e.getMessage}", e)
    }
    lines.poll(timeoutMs, TimeUnit.MILLISECONDS) match {
      case Right(l) if l != null => ()
      case _ =>
        throw new GophasException(s"the parameter server (gophas driver, pid ${proc.pid}, at $address) has not answered for " +
          s"${TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - started)} ms${processState.map(s => s" (process state: $s)").getOrElse("")}")
    }
  }

  /** The process' state from /proc (Linux), such as "T (stopped)". */
  private def processState: Option[String] =
    try {
      val stat = new String(java.nio.file.Files.readAllBytes(java.nio.file.Paths.get(s"/proc/${proc.pid}/stat")), StandardCharsets.UTF_8)
      stat.substring(stat.lastIndexOf(')') + 2).take(1) match {
        case "T" => Some("T, stopped: sent SIGSTOP?")
        case "t" => Some("t, stopped by a debugger")
        case "Z" => Some("Z, exited")
        case "D" => Some("D, waiting on I/O")
        case _ => None
      }
    } catch { case NonFatal(_) => None }

  /** Drops blobs (old optimizer states) from the model store. */
  def forget(hashes: Seq[String]): Unit =
    if (hashes.nonEmpty) command(C.Cmd -> Protocol.CmdForget, C.Hashes -> hashes.asJava)

  /** Writes blobs of the model store (workers' optimizer states) into dir, each as a file named by its hash. */
  def exportBlobs(hashes: Seq[String], dir: Path): Unit =
    if (hashes.nonEmpty) command(C.Cmd -> Protocol.CmdExport, C.Hashes -> hashes.asJava, C.Dir -> dir.toString)

  /** Puts files into the model store; returns their hashes, in order. */
  def importFiles(files: Seq[Path]): Seq[String] =
    if (files.isEmpty) Nil
    else command(C.Cmd -> Protocol.CmdImport, C.Files -> files.map(_.toString).asJava)
      .path(Protocol.AnswerKeys.Hashes).elements().asScala.map(_.asText()).toSeq

  /** Sets the global step (the count of training batches a schedule reads): a resumed fit continues its count. */
  def setSteps(steps: Long): Unit = command(C.Cmd -> Protocol.CmdSteps, C.Steps -> steps)

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

  /** Why the process is gone, when it exited without being stopped; None while it runs or after stop. */
  def exitFailure: Option[String] =
    if (stopped || proc.isAlive) None
    else {
      stderr.join(1000)
      val err = stderr.lastError.map(e => s": $e").getOrElse("")
      Some(s"the parameter server process (gophas driver, pid ${proc.pid}, at $address) exited with status ${proc.exitValue()}$err " +
        "while the fit was using it")
    }
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
      (if (scale) Seq("--scale") else Nil) ++ Seq(s"--tls=$tls")
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
    logInfo(s"gophas driver serving at ${ps.address} ($mode, $frequency, $workers workers${if (scale) ", deltas scaled by 1/workers" else ""}${if (tls) ", TLS" else ", plaintext: spark.gophas.tls is false"})")
    ps
  }
}
