package io.gophas.spark.callbacks

import io.gophas.spark.Callback

/**
 * Keras' BackupAndRestore: a fit with it writes a checkpoint to
 * `backupDir` (any Hadoop URI) at the end of every epoch (the network, the
 * optimizer states of the server and of every worker, the epoch, the history
 * and the callbacks' state, atomically), and a fit started again with the
 * same directory after a failure (the driver JVM killed, say) continues from
 * the last complete epoch. With `deleteCheckpoint` (the default, as in Keras)
 * the directory is removed when the fit completes. The same as the
 * configuration `spark.gophas.checkpointDir`. Checkpoints are written every
 * epoch (Keras' `save_freq="epoch"`).
 */
class BackupAndRestore(val backupDir: String, val deleteCheckpoint: Boolean = true) extends Callback {
  require(backupDir != null && backupDir.nonEmpty, "Empty `backup_dir` argument passed")
}
