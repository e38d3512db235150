package org.apache.spark.sql.gophas

import org.apache.spark.{SparkContext, TaskContext}

/** The scheduler facts the shim needs that Spark keeps `private[spark]`. */
object SparkInternals {

  /**
   * Makes context the current thread's task, as Spark's PythonRunner does for
   * its writer thread: the cached blocks that thread reads are then locked
   * and released in the task's name, and its reads count in the task's metrics.
   */
  def setTaskContext(context: TaskContext): Unit = TaskContext.setTaskContext(context)

  /**
   * How many tasks of the default resource profile the cluster can run at
   * once right now: the slots a barrier stage may use.
   */
  def taskSlots(sc: SparkContext): Int =
    sc.maxNumConcurrentTasks(sc.resourceProfileManager.defaultResourceProfile)
}
