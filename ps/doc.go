// Package ps is the Gophas parameter server and model store.
//
// Params holds a model's weights and applies workers' pushes by the rules of
// a Mode: Synchronous (round r closes when every registered worker has
// pushed for r; the pushes are averaged into version r+1), Asynchronous (each
// push applied alone under a lock) or Hogwild (no lock). Every push carries
// (worker, step), so a retried Spark task never applies an update twice. A
// push is checked against the weights it is applied to, under the same
// lock, so SetWeights may replace them at any time; one of the wrong shape,
// holding NaN or Inf, or whose sum with the weights would not be finite is
// refused, counted, and changes nothing. Each weight tensor has a Role
// (SetWeightsRoles): trainable weights merge by the mode's rule, moving
// statistics (BatchNormalization's) always by the mean of the workers'
// contributions, and frozen weights are not pushed and never change (see
// Role for the rule). Params is plain Go and needs no network.
//
// Server adapts Params and a Store (model blobs by SHA-256) to the gRPC
// service in ps/pspb: weights stream in 1 MiB chunks, every call must carry
// the job's token, and TLS uses a per-job certificate that clients pin by
// fingerprint. A panic in a call fails that call only; connections are
// capped, must authenticate within seconds, and are kept alive or dropped;
// Stop is bounded; refusals are logged through a rate limit; the Store holds
// a bounded number of blobs. Client is the worker's side: deadlines and retries on every
// call, bf16, top-k or threshold sparsification with a residual, zstd, and an
// on-disk model cache shared by the tasks of an executor. The client's calls
// use the gRPC content-subtype "gophas": protobuf on the wire, but chunk
// payloads are neither copied into nor out of protobuf messages (wire.go).
// With WithOptimizer the server applies gradient pushes itself, and its
// optimizer's state can be read and set over gRPC like the weights.
package ps
