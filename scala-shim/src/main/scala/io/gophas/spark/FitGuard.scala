package io.gophas.spark

import java.util.UUID
import java.util.concurrent.{ConcurrentHashMap, ExecutionException, FutureTask, TimeUnit, TimeoutException}
import java.util.concurrent.atomic.{AtomicBoolean, AtomicInteger, AtomicLong, AtomicReference}

import scala.jdk.CollectionConverters._

import org.apache.spark.SparkContext
import org.apache.spark.internal.Logging
import org.apache.spark.scheduler._

/**
 * FitGuard runs the Spark work of one fit so that a failure around it ends
 * the fit with a [[GophasException]] instead of a hang. The work runs on its
 * own thread (which inherits the caller's Spark local properties and a job
 * tag of the fit's own); the caller waits for it and, every second, checks
 * for what would otherwise leave it waiting forever:
 *
 *  - an OutOfMemoryError (or another VirtualMachineError) that killed a
 *    thread of the driver JVM, or any error that killed one of Spark's
 *    scheduler threads (`dag-scheduler-event-loop`, `dispatcher-event-loop-*`),
 *    during the fit: such a thread may have taken a job's task launch with it
 *    (seen: a task too large to serialize in 1 GiB left its stage at 0/2
 *    running forever);
 *  - Spark's DAG scheduler thread no longer alive: no job can start or end;
 *  - the parameter server gone, or not answering a ping (a stats command on
 *    its control channel, every 2 s) within half the stall time, at most a
 *    minute: a worker's own calls would wait for it several times as long;
 *  - a job of the fit with no task running and none starting or ending for
 *    `stallMs` (spark.gophas.ioTimeout): its tasks cannot be launched.
 *
 * On any of them it cancels the fit's jobs (by tag), interrupts the work,
 * and throws, naming the cause; an error of the work itself is rethrown
 * as it is, unless one of those causes is seen when it ends.
 */
private[spark] final class FitGuard(sc: SparkContext, stallMs: Long, server: () => Option[ParameterServer]) extends Logging {
  private val tag = s"gophas-fit-${UUID.randomUUID()}"
  private val fatal = new AtomicReference[String](null)
  private val stages = ConcurrentHashMap.newKeySet[Int]()
  private val jobs = ConcurrentHashMap.newKeySet[Int]()
  private val running = new AtomicInteger()
  private val lastProgress = new AtomicLong(System.nanoTime())
  private val scheduler = FitGuard.findThread("dag-scheduler-event-loop")
  private val serverError = new AtomicReference[String](null)
  @volatile private var doing = "starting"

  /** A thread that pings the parameter server every 2 s until stopped is set. */
  private def pinger(stopped: AtomicBoolean): Thread = {
    val t = new Thread(s"gophas fit server ping ($tag)") {
      override def run(): Unit = {
        val timeout = math.max(1000L, math.min(stallMs / 2, 60000L))
        try {
          while (!stopped.get && serverError.get == null) {
            server().foreach { ps =>
              ps.exitFailure.orElse {
                try { ps.ping(timeout); None } catch { case e: GophasException => Some(e.getMessage) }
              }.foreach(m => if (!stopped.get) serverError.compareAndSet(null, m))
            }
            Thread.sleep(2000)
          }
        } catch { case _: InterruptedException => }
      }
    }
    t.setDaemon(true)
    t
  }

  private val listener = new SparkListener {
    private def ours(props: java.util.Properties): Boolean =
      props != null && Option(props.getProperty("spark.job.tags")).exists(_.split(",").contains(tag))
    private def progress(): Unit = lastProgress.set(System.nanoTime())
    override def onJobStart(e: SparkListenerJobStart): Unit = if (ours(e.properties)) {
      jobs.add(e.jobId)
      e.stageIds.foreach(stages.add(_))
      progress()
    }
    override def onJobEnd(e: SparkListenerJobEnd): Unit = if (jobs.remove(e.jobId)) progress()
    override def onStageSubmitted(e: SparkListenerStageSubmitted): Unit = if (stages.contains(e.stageInfo.stageId)) progress()
    override def onStageCompleted(e: SparkListenerStageCompleted): Unit = if (stages.contains(e.stageInfo.stageId)) progress()
    override def onTaskStart(e: SparkListenerTaskStart): Unit = if (stages.contains(e.stageId)) { running.incrementAndGet(); progress() }
    override def onTaskEnd(e: SparkListenerTaskEnd): Unit = if (stages.contains(e.stageId)) { running.decrementAndGet(); progress() }
  }

  /** Says what the work is doing now, for the message of a failure. */
  def step(what: String): Unit = doing = what

  /**
   * Runs body on a thread of its own and returns its result, watching as the
   * class says. A fit in steps (FitSession) runs each step through the same
   * guard: the server's failure, once seen, fails every later step too.
   */
  def run[T](body: => T): T = {
    FitGuard.register(this)
    sc.addSparkListener(listener)
    sc.addJobTag(tag)
    lastProgress.set(System.nanoTime())
    val stopped = new AtomicBoolean(false)
    val ping = pinger(stopped)
    val task = new FutureTask[T](() => body)
    val worker = new Thread(task, s"gophas fit ($tag)")
    worker.setDaemon(true)
    try {
      worker.start()
      ping.start()
      waitFor(task, worker)
    } finally {
      stopped.set(true)
      ping.interrupt()
      sc.removeJobTag(tag)
      sc.removeSparkListener(listener)
      FitGuard.unregister(this)
    }
  }

  private def waitFor[T](task: FutureTask[T], worker: Thread): T = {
    while (true) {
      try return task.get(1, TimeUnit.SECONDS)
      catch {
        case e: ExecutionException =>
          // The work failed; when the guard also saw why (a dead scheduler
          // thread makes Spark's own calls fail oddly), that is the cause.
          trouble().foreach(why => throw new GophasException(s"the fit failed while $doing: $why", e.getCause))
          throw e.getCause
        case _: TimeoutException =>
        case e: InterruptedException =>
          abandon(worker)
          throw e
      }
      trouble().foreach { why =>
        abandon(worker)
        throw new GophasException(s"the fit failed while $doing: $why")
      }
    }
    throw new IllegalStateException("unreachable")
  }

  /** Why the fit cannot go on, if it cannot. */
  private def trouble(): Option[String] = {
    Option(fatal.get)
      .orElse(scheduler.filter(!_.isAlive).map(t =>
        s"Spark's scheduler thread '${t.getName}' has died, so no job can start or finish; this SparkContext cannot run jobs any more"))
      .orElse(Option(serverError.get))
      .orElse(server().flatMap(_.exitFailure))
      .orElse {
        val idle = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - lastProgress.get)
        if (!jobs.isEmpty && running.get <= 0 && idle > stallMs)
          Some(s"Spark job(s) ${jobs.asScala.toSeq.sorted.mkString(", ")} have had no task running, starting or ending for " +
            s"${idle / 1000} s (${GophasConf.IoTimeout} is ${stallMs / 1000} s): their tasks cannot be launched " +
            "(no free task slot or executor, or the driver lost a scheduler thread; see the driver log)")
        else None
      }
  }

  private def abandon(worker: Thread): Unit = {
    try sc.cancelJobsWithTag(tag) catch { case t: Throwable => logWarning(s"cancelling the fit's jobs: $t") }
    worker.interrupt()
  }

  private def uncaught(t: Thread, e: Throwable): Unit = {
    val schedulerThread = FitGuard.SchedulerThreads.exists(t.getName.startsWith)
    if (e.isInstanceOf[VirtualMachineError] || schedulerThread)
      fatal.compareAndSet(null, s"the driver JVM's thread '${t.getName}' died of $e" +
        (if (e.isInstanceOf[OutOfMemoryError]) " (give the driver more memory: spark.driver.memory, --driver-memory)" else "") +
        "; a job it was scheduling cannot go on")
  }
}

private[spark] object FitGuard {
  /** Spark's threads whose death stops the scheduling of jobs or tasks. */
  private val SchedulerThreads = Seq("dag-scheduler-event-loop", "dispatcher-event-loop")

  private val active = ConcurrentHashMap.newKeySet[FitGuard]()

  /**
   * The JVM's default uncaught-exception handler, wrapped once so that the
   * guards of running fits see every thread's death; the handler that was
   * there (or the JVM's own printing) still runs.
   */
  private lazy val installed: Unit = {
    val previous = Thread.getDefaultUncaughtExceptionHandler
    Thread.setDefaultUncaughtExceptionHandler { (t: Thread, e: Throwable) =>
      active.forEach(_.uncaught(t, e))
      if (previous != null) previous.uncaughtException(t, e)
      else if (!e.getClass.getName.equals("java.lang.ThreadDeath")) {
        System.err.print(s"""Exception in thread "${t.getName}" """)
        e.printStackTrace(System.err)
      }
    }
  }

  private def register(g: FitGuard): Unit = { installed; active.add(g) }
  private def unregister(g: FitGuard): Unit = active.remove(g)

  private def findThread(name: String): Option[Thread] =
    Thread.getAllStackTraces.keySet.asScala.find(_.getName == name)
}
