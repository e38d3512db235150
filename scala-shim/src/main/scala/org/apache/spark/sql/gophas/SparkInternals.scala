package org.apache.spark.sql.gophas

import org.apache.spark.SparkContext

/** The one scheduler fact the shim needs that Spark keeps `private[spark]`. */
object SparkInternals {

  /**
   * How many tasks of the default resource profile the cluster can run at
   * once right now: the slots a barrier stage may use.
   */
  def taskSlots(sc: SparkContext): Int =
    sc.maxNumConcurrentTasks(sc.resourceProfileManager.defaultResourceProfile)
}
