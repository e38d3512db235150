// Package driver is the driver process, `gophas driver`: it serves the
// parameter server and model store of package ps on the Spark driver's
// host, prints one ready line, answers the control channel on stdin (load,
// save, epoch, stats, forget; defined in package protocol) until stdin
// closes or a client calls Shutdown, then drains and exits; it dies with its
// parent, so it never outlives the Spark application.
package driver
