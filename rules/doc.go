// Package rules is the Spark worker's distributed training rules as a pure
// state machine: given what the parameter server said at registration, the
// version of the weights pulled and the batch index, it decides whether the
// worker skips, pulls, trains, pushes (and with which step) or waits for a
// synchronous round. It does no I/O: the train worker of the pipe executes
// its actions against the parameter server (package ps) and the kernel's
// training loop, and the table test plays every mode × frequency × fresh,
// retried or late case without a network, the way etcd's raft tests its
// core.
//
// The rules, by mode and frequency:
//
//	asynchronous/hogwild, epoch   train every batch; push once at the end
//	                              with step epoch<<32
//	asynchronous/hogwild, batch   per batch b: pull, train from the pulled
//	                              weights, push with step epoch<<32 | b+1
//	synchronous, epoch            train every batch; push once at the end
//	                              to the epoch's round
//	synchronous, batch            batch b belongs to round Round+b: pull
//	                              until the weights are that round's, train
//	                              from them, push, wait for the round to
//	                              close
//
// A retried task (a second registration in the epoch) skips what its first
// attempt had applied: asynchronous batches up to the last applied step, an
// epoch whose push was applied, synchronous rounds that closed. A first
// attempt that finds its synchronous round closed cannot join it and fails
// the task with ErrCannotJoin: the driver opens each epoch and a round
// closes only when every worker of the epoch has pushed or is done, so that
// never happens silently.
package rules
