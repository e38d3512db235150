package io.gophas.spark

import java.io.{BufferedReader, FilterInputStream, FilterOutputStream, InputStream, InputStreamReader, OutputStream}
import java.nio.ByteBuffer
import java.nio.charset.StandardCharsets
import java.nio.file.Path
import java.util.concurrent.TimeUnit
import java.util.concurrent.atomic.{AtomicLong, AtomicReference}

import scala.util.control.NonFatal

import com.fasterxml.jackson.databind.ObjectMapper
import org.apache.spark.TaskContext
import org.apache.spark.internal.Logging

/**
 * WorkerRunner runs one `gophas worker` process for one task, the way Spark's
 * PythonRunner runs a Python worker: a writer thread feeds the child's stdin
 * (the header, then the caller's Arrow stream), the task thread reads the
 * child's stdout through the caller's reader, a thread forwards stderr to the
 * executor log, and a watchdog kills the child when the task is interrupted
 * or the pipe makes no progress for `ioTimeoutMs` in either direction. The
 * task's completion listener kills whatever is left and joins the threads.
 *
 * Any failure surfaces as a [[GophasException]] carrying the worker's last
 * stderr line (the Go error text) and the tail of its stderr.
 */
private[spark] final class WorkerRunner(
    binary: Path,
    header: java.util.Map[String, Any],
    ioTimeoutMs: Long,
    context: TaskContext) extends Logging {

  private val partition = if (context != null) context.partitionId() else -1
  private val name = s"gophas worker (partition $partition)"
  private val lastProgress = new AtomicLong(System.nanoTime())
  private val killReason = new AtomicReference[String](null)
  private val writerError = new AtomicReference[Throwable](null)
  @volatile private var finished = false
  private var proc: Process = _
  private var writer: Thread = _
  private var stderr: StderrTail = _
  private var watchdog: Thread = _

  /**
   * Starts the worker and returns what `read` makes of its stdout. `feed`
   * writes the Arrow stream after the header, on the writer thread.
   */
  def run[T](feed: OutputStream => Unit, read: InputStream => Iterator[T]): Iterator[T] = {
    val pb = new ProcessBuilder(binary.toString, "worker")
    if (context != null) pb.environment().put("GOMAXPROCS", math.max(1, context.cpus()).toString)
    proc = try pb.start() catch {
      case NonFatal(e) => throw new GophasException(s"cannot start $binary worker: ${e.getMessage}", e)
    }
    // A log line counts as progress: a training worker computes for a while
    // between reading its input and writing its answer, and logs as it goes.
    stderr = new StderrTail(proc.getErrorStream, name, onLine = () => lastProgress.set(System.nanoTime()))
    stderr.start()
    if (context != null) context.addTaskCompletionListener[Unit](_ => close())

    writer = new Thread(s"$name stdin writer") {
      override def run(): Unit = {
        val out = new ProgressOutputStream(proc.getOutputStream)
        try {
          if (context != null) SparkLine.get.setTaskContext(context)
          val json = new ObjectMapper().writeValueAsBytes(header)
          if (json.length > Protocol.MaxHeaderBytes) throw new GophasException(s"task header is ${json.length} bytes, over ${Protocol.MaxHeaderBytes}")
          out.write(ByteBuffer.allocate(4).putInt(json.length).array())
          out.write(json)
          feed(out)
          out.close()
        } catch {
          // Anything, a LinkageError from a Spark internal included: a writer
          // that dies silently leaves the worker waiting for input and the
          // task waiting for output (Spark's PythonRunner does the same).
          case t: Throwable =>
            writerFailed(t)
            try out.close() catch { case NonFatal(_) => }
            t match {
              case fatal: VirtualMachineError => throw fatal
              case _ =>
            }
        }
      }
    }
    writer.setDaemon(true)
    writer.start()

    watchdog = new Thread(s"$name watchdog") {
      override def run(): Unit = {
        while (!finished && proc.isAlive) {
          try Thread.sleep(100) catch { case _: InterruptedException => return }
          if (context != null && context.isInterrupted()) kill("was killed because its task was interrupted")
          else {
            val idleMs = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - lastProgress.get())
            if (idleMs > ioTimeoutMs) kill(s"made no progress for ${idleMs / 1000.0} s (spark.gophas.ioTimeout is ${ioTimeoutMs} ms): " +
              (if (writer.isAlive) "it stopped reading its input" else "it stopped writing its output or its log"))
          }
        }
      }
    }
    watchdog.setDaemon(true)
    watchdog.start()

    val results = try read(new ProgressInputStream(proc.getInputStream)) catch {
      case NonFatal(e) => throw failure(e)
    }
    new Iterator[T] {
      private var done = false
      override def hasNext: Boolean = {
        if (done) return false
        val more = try results.hasNext catch { case NonFatal(e) => throw failure(e) }
        if (!more) { done = true; finish() }
        more
      }
      override def next(): T = try results.next() catch { case NonFatal(e) => throw failure(e) }
    }
  }

  /**
   * The writer thread failed: the task fails now, with t as its cause. A
   * write that failed because the worker had exited (a broken pipe) leaves
   * the story to the worker's exit status and error line; any other failure
   * kills the worker, so the task thread's read ends at once.
   */
  private def writerFailed(t: Throwable): Unit = {
    writerError.compareAndSet(null, t)
    if (finished) return
    val workerGone = t.isInstanceOf[java.io.IOException] && proc.waitFor(1, TimeUnit.SECONDS)
    if (!workerGone) kill(s"was stopped because its stdin writer failed: $t")
  }

  private def kill(reason: String): Unit = {
    if (killReason.compareAndSet(null, reason)) {
      logWarning(s"$name $reason")
      proc.destroyForcibly()
    }
  }

  /** After the last result: the worker must exit 0 and the writer must have finished cleanly. */
  private def finish(): Unit = {
    if (!proc.waitFor(ioTimeoutMs, TimeUnit.MILLISECONDS)) kill(s"did not exit within ${ioTimeoutMs} ms after its output ended")
    proc.waitFor()
    writer.join(ioTimeoutMs)
    stderr.join(ioTimeoutMs)
    if (killReason.get != null || proc.exitValue() != 0) throw failure(null)
    Option(writerError.get).foreach(e => throw failure(e))
    close()
  }

  /** The exception for a failed task: the worker's own words first. */
  private def failure(cause: Throwable): GophasException = cause match {
    case g: GophasException if killReason.get == null && (proc == null || !proc.isAlive && proc.exitValue() == 0) => g
    case _ =>
      // Give a crashing worker a moment to finish its stderr before we read it.
      if (proc.isAlive && !proc.waitFor(5, TimeUnit.SECONDS)) kill("was still running after its output failed")
      proc.waitFor(5, TimeUnit.SECONDS)
      stderr.join(5000)
      val why = Option(killReason.get).map(r => s"$name $r")
        .orElse(if (!proc.isAlive && proc.exitValue() != 0) Some(s"$name failed with exit status ${proc.exitValue()}: ${stderr.lastError.getOrElse("(no error line)")}") else None)
        .orElse(Option(cause).map(c => s"$name pipe failed: ${c.getMessage}"))
        .getOrElse(s"$name failed")
      // The error line is already in `why`; the other lines give its context.
      val tail = stderr.tail.filterNot(l => stderr.lastError.exists(e => l == Protocol.ErrorPrefix + e))
      val msg = if (tail.isEmpty) why else why + "\nworker stderr (last lines):\n  " + tail.mkString("\n  ")
      close()
      new GophasException(msg, Option(writerError.get).orElse(Option(cause)).orNull)
  }

  /** Kills the worker if still alive and joins the threads; safe to call twice. */
  def close(): Unit = synchronized {
    if (finished) return
    finished = true
    if (proc != null) {
      if (proc.isAlive) proc.destroyForcibly()
      proc.waitFor(10, TimeUnit.SECONDS)
      if (writer != null) { writer.interrupt(); writer.join(10000) }
      if (stderr != null) stderr.join(10000)
      if (watchdog != null) watchdog.interrupt()
    }
  }

  private final class ProgressOutputStream(out: OutputStream) extends FilterOutputStream(out) {
    override def write(b: Array[Byte], off: Int, len: Int): Unit = {
      out.write(b, off, len)
      lastProgress.set(System.nanoTime())
    }
  }

  private final class ProgressInputStream(in: InputStream) extends FilterInputStream(in) {
    override def read(b: Array[Byte], off: Int, len: Int): Int = {
      val n = in.read(b, off, len)
      lastProgress.set(System.nanoTime())
      n
    }
    override def read(): Int = {
      val n = in.read()
      lastProgress.set(System.nanoTime())
      n
    }
  }
}

/** Forwards a worker's stderr to the log (DEBUG, errors at ERROR) and keeps its last lines. */
private[spark] final class StderrTail(in: InputStream, name: String, keep: Int = 20, onLine: () => Unit = () => ())
    extends Thread(s"$name stderr") with Logging {
  private val lines = new java.util.ArrayDeque[String]()
  @volatile private var error: Option[String] = None
  setDaemon(true)

  override def run(): Unit = {
    val r = new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8))
    try {
      var line = r.readLine()
      while (line != null) {
        // The worker's error line goes to the executor log as an error (it
        // also ends up in the task's exception); the rest at DEBUG.
        if (line.startsWith(Protocol.ErrorPrefix)) logError(s"$name: $line") else logDebug(s"$name: $line")
        onLine()
        lines.synchronized {
          lines.addLast(line)
          if (lines.size > keep) lines.removeFirst()
        }
        if (line.startsWith(Protocol.ErrorPrefix)) error = Some(line.stripPrefix(Protocol.ErrorPrefix))
        line = r.readLine()
      }
    } catch {
      case NonFatal(_) => // the process is gone; what we have is what there is
    }
  }

  /** The worker's error line (after the `gophas: ` prefix), if it wrote one. */
  def lastError: Option[String] = error

  def tail: Seq[String] = lines.synchronized { lines.toArray(Array.empty[String]).toSeq }
}
