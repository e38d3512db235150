package ps

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/gophas/gophas/ps/pspb"
)

type clientConfig struct {
	fingerprint  string
	callTimeout  time.Duration
	roundTimeout time.Duration
	retries      int
	backoff      time.Duration
	maxBackoff   time.Duration
	pushEnc      Encoding
	pullEnc      Encoding
	compression  Compression
	topK         float64
	threshold    float32
	cacheDir     string
	chunkSize    int
}

// ClientOption configures a Client.
type ClientOption func(*clientConfig)

// WithFingerprint speaks TLS and accepts only the server certificate with
// this hex SHA-256 fingerprint (from the driver's ready line). Default:
// plaintext.
func WithFingerprint(hexSHA256 string) ClientOption {
	return func(c *clientConfig) { c.fingerprint = strings.ToLower(hexSHA256) }
}

// WithCallTimeout bounds each attempt of each call. Default 30 seconds.
func WithCallTimeout(d time.Duration) ClientOption {
	return func(c *clientConfig) { c.callTimeout = d }
}

// WithRoundWait bounds WaitRound, which blocks for a whole synchronous round.
// Default 10 minutes (the server's round timeout normally answers first).
func WithRoundWait(d time.Duration) ClientOption { return func(c *clientConfig) { c.roundTimeout = d } }

// WithRetries sets how many times a call that failed transiently
// (Unavailable; DeadlineExceeded on an idempotent call) is tried again.
// Default 5.
func WithRetries(n int) ClientOption { return func(c *clientConfig) { c.retries = n } }

// WithBackoff sets the wait before the first retry and its cap; the wait
// doubles each retry, with jitter. Default 100 ms, capped at 5 s.
func WithBackoff(first, max time.Duration) ClientOption {
	return func(c *clientConfig) { c.backoff, c.maxBackoff = first, max }
}

// WithPushEncoding sets how pushed values travel: Dense or BF16. Default
// Dense. WithTopK or WithThreshold make pushes Sparse.
func WithPushEncoding(e Encoding) ClientOption { return func(c *clientConfig) { c.pushEnc = e } }

// WithPullEncoding sets how pulled weights travel: Dense or BF16. Default
// Dense.
func WithPullEncoding(e Encoding) ClientOption { return func(c *clientConfig) { c.pullEnc = e } }

// WithCompression compresses pushes, pulls and model blobs. Default
// NoCompression: zstd costs more than it saves for dense float32 on a fast
// network; it pays for sparse and bf16 payloads.
func WithCompression(comp Compression) ClientOption {
	return func(c *clientConfig) { c.compression = comp }
}

// WithTopK pushes only the fraction (0, 1] of values largest in magnitude;
// the rest stay in a residual the client adds to the next push, so nothing
// is lost, only delayed. Default 0: off.
func WithTopK(fraction float64) ClientOption { return func(c *clientConfig) { c.topK = fraction } }

// WithThreshold pushes only values whose magnitude (with the residual) is at
// least t, keeping the rest as WithTopK does. Default 0: off.
func WithThreshold(t float32) ClientOption { return func(c *clientConfig) { c.threshold = t } }

// WithCacheDir sets where FetchModel keeps model blobs, shared by every task
// on an executor. Default: os.TempDir()/gophas-models.
func WithCacheDir(dir string) ClientOption { return func(c *clientConfig) { c.cacheDir = dir } }

// WithClientChunkSize sets the payload bytes per streamed message. Default
// DefaultChunkSize (1 MiB).
func WithClientChunkSize(n int) ClientOption { return func(c *clientConfig) { c.chunkSize = n } }

// Client talks to a parameter server for one worker. Its methods are safe for
// concurrent use, except that Push keeps the sparsification residual and so
// must not run concurrently with itself.
type Client struct {
	addr string
	cfg  clientConfig
	conn *grpc.ClientConn
	api  pspb.ParameterServerClient
	md   metadata.MD

	mu     sync.Mutex
	worker string

	residual [][]float32 // values not yet pushed (sparse pushes)
	scratch  []float32

	pushedBytes atomic.Uint64 // payload bytes of pushes, for benchmarks
}

// Dial returns a Client for the server at addr (host:port) that presents
// token. It does not connect until the first call.
// windowSize is the HTTP/2 flow-control window of both ends: large enough
// that a weights stream of 1 MiB chunks never waits for a window update on
// a fast network (a fixed window turns off gRPC's BDP estimation, which
// grows windows only after several round trips).
const windowSize = 16 << 20

func Dial(addr, token string, opts ...ClientOption) (*Client, error) {
	cfg := clientConfig{
		callTimeout: 30 * time.Second, roundTimeout: 10 * time.Minute,
		retries: 5, backoff: 100 * time.Millisecond, maxBackoff: 5 * time.Second,
		cacheDir: filepath.Join(os.TempDir(), "gophas-models"), chunkSize: DefaultChunkSize,
	}
	for _, o := range opts {
		o(&cfg)
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, fmt.Errorf("ps: driver address %q is not host:port: %w", addr, err)
	}
	if cfg.callTimeout <= 0 || cfg.retries < 0 || cfg.backoff <= 0 || cfg.chunkSize <= 0 {
		return nil, errors.New("ps: call timeout, backoff and chunk size must be positive, retries not negative")
	}
	if cfg.topK < 0 || cfg.topK > 1 || cfg.threshold < 0 {
		return nil, fmt.Errorf("ps: top-k fraction %v outside [0, 1] or threshold %v negative", cfg.topK, cfg.threshold)
	}
	creds := insecure.NewCredentials()
	if cfg.fingerprint != "" {
		creds = credentials.NewTLS(pinnedTLS(cfg.fingerprint))
	}
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(creds),
		grpc.WithInitialWindowSize(windowSize), grpc.WithInitialConnWindowSize(windowSize),
		grpc.WithWriteBufferSize(1<<20), grpc.WithReadBufferSize(1<<20),
		grpc.WithDefaultCallOptions(grpc.CallContentSubtype(codecName)), experimental.WithBufferPool(dirtyPool))
	if err != nil {
		return nil, fmt.Errorf("ps: dial %s: %w", addr, err)
	}
	return &Client{addr: addr, cfg: cfg, conn: conn, api: pspb.NewParameterServerClient(conn), md: metadata.Pairs(authKey, "Bearer "+token)}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Addr returns the server address the client calls.
func (c *Client) Addr() string { return c.addr }

// call runs fn with a deadline per attempt, retrying transient failures with
// exponential backoff, and explains the final failure.
func (c *Client) call(ctx context.Context, name string, idempotent bool, timeout time.Duration, fn func(context.Context) error) error {
	ctx = metadata.NewOutgoingContext(ctx, c.md)
	wait := c.cfg.backoff
	var err error
	attempts := 0
	for attempts <= c.cfg.retries {
		attempts++
		actx, cancel := context.WithTimeout(ctx, timeout)
		err = fn(actx)
		cancel()
		if err == nil {
			return nil
		}
		code := status.Code(err)
		transient := code == codes.Unavailable || (idempotent && code == codes.DeadlineExceeded)
		if !transient || ctx.Err() != nil || attempts > c.cfg.retries {
			break
		}
		t := time.NewTimer(wait/2 + rand.N(wait/2+1))
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
		wait = min(2*wait, c.cfg.maxBackoff)
	}
	return c.explain(name, attempts, err)
}

// explain turns a failed call into an error naming the address, the cause
// and what to check.
func (c *Client) explain(name string, attempts int, err error) error {
	hint := ""
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded:
		hint = "; check that spark.driver.host / spark.gophas.driverHost is reachable from the executors, that no firewall blocks the port, and that the driver process is still running"
		if host, _, _ := net.SplitHostPort(c.addr); isLoopback(host) {
			hint += fmt.Sprintf(" (%s is a loopback address: executors on other hosts cannot reach it)", host)
		}
		if c.cfg.fingerprint != "" && strings.Contains(err.Error(), "fingerprint") {
			hint = "; the server's certificate is not the one in the driver's ready line: check that the worker was given this job's tlsFingerprint"
		}
	case codes.Unauthenticated:
		hint = "; check that the worker was given this job's token (the driver's ready line) and talks to this job's driver"
	}
	return fmt.Errorf("ps: %s to driver %s failed after %d attempt(s): %w%s", name, c.addr, attempts, err, hint)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// RegisterInfo is what the server says at registration.
type RegisterInfo struct {
	Version   uint64
	Mode      Mode
	Frequency Frequency
	// Epoch is the epoch the driver has opened (0 for none); Rejoin says
	// the worker registered for it before: a retried task.
	Epoch  int
	Rejoin bool
	// LastStep is the worker's last applied step (synchronous: its last
	// round), meaningful when HasPushed: a retried task skips the steps up
	// to it.
	LastStep  uint64
	HasPushed bool
	// EpochStep is the global step (the training batches of the pushes
	// applied, see Params.PushBatches) when the driver opened the epoch,
	// and Workers the workers the job runs (0: not set): the worker of
	// index p takes global steps EpochStep+p, +Workers, ... (see
	// gokernel.Optimizer.SetStep).
	EpochStep uint64
	Workers   int
}

// Register records this client as worker (a stable name such as the Spark
// partition index, the same when Spark retries the task) for epoch (from
// 1; 0 for none).
func (c *Client) Register(ctx context.Context, worker string, epoch int) (RegisterInfo, error) {
	var resp *pspb.RegisterResponse
	err := c.call(ctx, "register", true, c.cfg.callTimeout, func(ctx context.Context) (err error) {
		resp, err = c.api.Register(ctx, &pspb.RegisterRequest{Worker: worker, Protocol: ProtocolVersion, Epoch: int32(epoch)})
		return err
	})
	if err != nil {
		return RegisterInfo{}, err
	}
	c.mu.Lock()
	c.worker = worker
	c.mu.Unlock()
	return RegisterInfo{Version: resp.GetVersion(), Mode: Mode(resp.GetMode()), Frequency: Frequency(resp.GetFrequency()),
		Epoch: int(resp.GetEpoch()), Rejoin: resp.GetRejoin(), LastStep: resp.GetLastStep(), HasPushed: resp.GetHasPushed(),
		EpochStep: resp.GetEpochStep(), Workers: int(resp.GetWorkers())}, nil
}

func (c *Client) name() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.worker
}

// SetWeights offers ws as the model's weights; with ifAbsent the server
// keeps weights it already has. It returns the version in force.
func (c *Client) SetWeights(ctx context.Context, ws []NamedTensor, ifAbsent bool) (uint64, error) {
	if err := checkTensors(ws); err != nil {
		return 0, err
	}
	var raw []byte
	for _, t := range ws {
		raw = appendDense(raw, t.Data)
	}
	payload, err := compress(c.cfg.compression, raw)
	if err != nil {
		return 0, err
	}
	var resp *pspb.SetWeightsResponse
	err = c.call(ctx, "set weights", true, c.cfg.callTimeout, func(ctx context.Context) error {
		st, err := c.api.SetWeights(ctx)
		if err != nil {
			return err
		}
		h := &pspb.Header{Worker: c.name(), Tensors: tensorHeader(infos(ws)), IfAbsent: ifAbsent, RawSize: uint64(len(raw)), Compression: pspb.Compression(c.cfg.compression)}
		if err := sendChunks(h, payload, c.cfg.chunkSize, st.Send); err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		resp, err = st.CloseAndRecv()
		return err
	})
	return resp.GetVersion(), err
}

// Pull returns the weights if the server has a version newer than
// newerThan; otherwise modified is false and ws nil.
func (c *Client) Pull(ctx context.Context, newerThan uint64) (ws []NamedTensor, version uint64, modified bool, err error) {
	err = c.call(ctx, "pull", true, c.cfg.callTimeout, func(ctx context.Context) error {
		st, err := c.api.Pull(ctx, &pspb.PullRequest{Worker: c.name(), NewerThan: newerThan, Encoding: pspb.Encoding(c.cfg.pullEnc), Compression: pspb.Compression(c.cfg.compression)})
		if err != nil {
			return err
		}
		h, got, err := receiveWeights(st, true)
		if err != nil {
			return err
		}
		version, ws, modified = h.GetVersion(), got, !h.GetNotModified()
		return nil
	})
	return ws, version, modified, err
}

// Push sends update (one slice per weight tensor, in order) as step of this
// worker. Retrying is safe: the server ignores a step it has applied. Dense
// uncompressed values are sent from update itself, which must not change
// while Push runs.
func (c *Client) Push(ctx context.Context, step uint64, kind Kind, shapes []TensorInfo, update [][]float32) (PushResult, error) {
	return c.PushBatches(ctx, step, 0, kind, shapes, update)
}

// PushBatches is Push for an update that holds batches training batches:
// once applied, the server's global step counts them (Stats.Steps).
func (c *Client) PushBatches(ctx context.Context, step, batches uint64, kind Kind, shapes []TensorInfo, update [][]float32) (PushResult, error) {
	if len(shapes) != len(update) {
		return PushResult{}, fmt.Errorf("%w: %d shapes for %d tensors", ErrShape, len(shapes), len(update))
	}
	for i, t := range shapes {
		if numel(t.Shape) != len(update[i]) {
			return PushResult{}, fmt.Errorf("%w: tensor %q shape %v for %d values", ErrShape, t.Name, t.Shape, len(update[i]))
		}
	}
	enc := c.cfg.pushEnc
	// segments returns the payload to send: dense uncompressed values go as
	// views of update itself (the server has them all before Push returns).
	var segments func() [][]byte
	rawSize := 0
	if c.cfg.topK == 0 && c.cfg.threshold == 0 && enc == Dense && c.cfg.compression == NoCompression && littleEndian {
		segments = func() [][]byte {
			segs := make([][]byte, len(update))
			for i, u := range update {
				segs[i] = f32Bytes(u)
			}
			return segs
		}
		for _, u := range update {
			rawSize += 4 * len(u)
		}
		c.pushedBytes.Add(uint64(rawSize))
	} else {
		var raw []byte
		if c.cfg.topK > 0 || c.cfg.threshold > 0 {
			enc = Sparse
			raw = c.sparsify(update)
		} else {
			for _, u := range update {
				if enc == BF16 {
					raw = appendBF16(raw, u)
				} else {
					raw = appendDense(raw, u)
				}
			}
		}
		payload, err := compress(c.cfg.compression, raw)
		if err != nil {
			return PushResult{}, err
		}
		rawSize = len(raw)
		c.pushedBytes.Add(uint64(len(payload)))
		segments = func() [][]byte { return [][]byte{payload} }
	}
	var resp *pspb.PushResponse
	err := c.call(ctx, "push", true, c.cfg.callTimeout, func(ctx context.Context) error {
		st, err := c.api.Push(ctx)
		if err != nil {
			return err
		}
		h := &pspb.Header{Worker: c.name(), Step: step, Batches: batches, Kind: pspb.Kind(kind), Encoding: pspb.Encoding(enc), Compression: pspb.Compression(c.cfg.compression), Tensors: tensorHeader(shapes), RawSize: uint64(rawSize)}
		if err := sendSegments(h, segments(), c.cfg.chunkSize, st.Send); err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		resp, err = st.CloseAndRecv()
		return err
	})
	if err != nil {
		return PushResult{}, err
	}
	return PushResult{Version: resp.GetVersion(), Duplicate: resp.GetDuplicate()}, nil
}

// OptimizerState returns the state of the server's optimizer (the one that
// applies gradient pushes: WithOptimizer) and the weights version it goes
// with. It fails with FailedPrecondition when the server has none.
func (c *Client) OptimizerState(ctx context.Context) (state []NamedTensor, version uint64, err error) {
	err = c.call(ctx, "get optimizer state", true, c.cfg.callTimeout, func(ctx context.Context) error {
		st, err := c.api.GetOptimizerState(ctx, &pspb.GetOptimizerStateRequest{Compression: pspb.Compression(c.cfg.compression)})
		if err != nil {
			return err
		}
		h, payload, err := receive(st, true, MaxPayload)
		if err != nil {
			return err
		}
		got, err := decodeTensors(h, payload, nil)
		if err != nil {
			return err
		}
		state, version = got, h.GetVersion()
		return nil
	})
	return state, version, err
}

// SetOptimizerState replaces the state of the server's optimizer with state
// (as OptimizerState returns it) and returns the weights version in force.
func (c *Client) SetOptimizerState(ctx context.Context, state []NamedTensor) (uint64, error) {
	if err := checkTensors(state); err != nil {
		return 0, err
	}
	var raw []byte
	for _, t := range state {
		raw = appendDense(raw, t.Data)
	}
	payload, err := compress(c.cfg.compression, raw)
	if err != nil {
		return 0, err
	}
	var resp *pspb.SetOptimizerStateResponse
	err = c.call(ctx, "set optimizer state", true, c.cfg.callTimeout, func(ctx context.Context) error {
		st, err := c.api.SetOptimizerState(ctx)
		if err != nil {
			return err
		}
		h := &pspb.Header{Worker: c.name(), Tensors: tensorHeader(infos(state)), RawSize: uint64(len(raw)), Compression: pspb.Compression(c.cfg.compression)}
		if err := sendChunks(h, payload, c.cfg.chunkSize, st.Send); err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		resp, err = st.CloseAndRecv()
		return err
	})
	return resp.GetVersion(), err
}

// WaitRound blocks until synchronous round r closes and returns the new
// version; the server fails it, naming the missing workers, when the round
// stalls.
func (c *Client) WaitRound(ctx context.Context, r uint64) (uint64, error) {
	var resp *pspb.WaitRoundResponse
	err := c.call(ctx, "wait for round", true, c.cfg.roundTimeout, func(ctx context.Context) (err error) {
		resp, err = c.api.WaitRound(ctx, &pspb.WaitRoundRequest{Worker: c.name(), Round: r})
		return err
	})
	return resp.GetVersion(), err
}

// Done tells the server this worker has pushed its last update.
func (c *Client) Done(ctx context.Context) error {
	return c.call(ctx, "done", true, c.cfg.callTimeout, func(ctx context.Context) error {
		_, err := c.api.Done(ctx, &pspb.DoneRequest{Worker: c.name()})
		return err
	})
}

// ServerStats is what Stats reports.
type ServerStats struct {
	Stats
	Unauthenticated uint64 // calls refused for a wrong or missing token
}

// Stats returns the server's mode, version and per-worker counters.
func (c *Client) Stats(ctx context.Context) (ServerStats, error) {
	var resp *pspb.StatsResponse
	err := c.call(ctx, "stats", true, c.cfg.callTimeout, func(ctx context.Context) (err error) {
		resp, err = c.api.Stats(ctx, &pspb.StatsRequest{})
		return err
	})
	if err != nil {
		return ServerStats{}, err
	}
	st, unauth := statsFromProto(resp)
	return ServerStats{Stats: st, Unauthenticated: unauth}, nil
}

// Shutdown asks the driver to drain and exit. It is not retried.
func (c *Client) Shutdown(ctx context.Context) error {
	ctx = metadata.NewOutgoingContext(ctx, c.md)
	ctx, cancel := context.WithTimeout(ctx, c.cfg.callTimeout)
	defer cancel()
	if _, err := c.api.Shutdown(ctx, &pspb.ShutdownRequest{}); err != nil {
		return c.explain("shutdown", 1, err)
	}
	return nil
}

// PutModel stores blob on the driver and returns its hex SHA-256.
func (c *Client) PutModel(ctx context.Context, kind string, blob []byte) (string, error) {
	hash := Hash(blob)
	payload, err := compress(c.cfg.compression, blob)
	if err != nil {
		return "", err
	}
	var resp *pspb.PutModelResponse
	err = c.call(ctx, "put model", true, c.cfg.callTimeout, func(ctx context.Context) error {
		st, err := c.api.PutModel(ctx)
		if err != nil {
			return err
		}
		h := &pspb.Header{BlobKind: kind, Sha256: hash, RawSize: uint64(len(blob)), Compression: pspb.Compression(c.cfg.compression)}
		if err := sendChunks(h, payload, c.cfg.chunkSize, st.Send); err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		resp, err = st.CloseAndRecv()
		return err
	})
	return resp.GetSha256(), err
}

// FetchModel returns the path of the blob with hex SHA-256 hash in the cache
// directory, downloading it first if it is not there. The file is written
// under a temporary name, verified, and renamed into place, and an exclusive
// lock file makes concurrent tasks on one executor download it once.
func (c *Client) FetchModel(ctx context.Context, hash string) (string, error) {
	if len(hash) != 64 || strings.Trim(strings.ToLower(hash), "0123456789abcdef") != "" {
		return "", fmt.Errorf("ps: %q is not a hex SHA-256", hash)
	}
	hash = strings.ToLower(hash)
	if err := os.MkdirAll(c.cfg.cacheDir, 0o755); err != nil {
		return "", fmt.Errorf("ps: model cache: %w", err)
	}
	path := filepath.Join(c.cfg.cacheDir, hash)
	unlock, err := lockFile(ctx, path+".lock")
	if err != nil {
		return "", err
	}
	defer unlock()
	if ok, err := fileHasHash(path, hash); err != nil || ok {
		return path, err
	}
	err = c.call(ctx, "get model", true, c.cfg.callTimeout, func(ctx context.Context) error {
		st, err := c.api.GetModel(ctx, &pspb.GetModelRequest{Sha256: hash})
		if err != nil {
			return err
		}
		tmp, err := os.CreateTemp(c.cfg.cacheDir, hash+".tmp*")
		if err != nil {
			return fmt.Errorf("ps: model cache: %w", err)
		}
		defer os.Remove(tmp.Name()) // fails harmlessly after the rename
		defer tmp.Close()
		sum := sha256.New()
		w := io.MultiWriter(tmp, sum)
		var want, got uint64
		for {
			ch, err := st.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return err
			}
			if h := ch.GetHeader(); h != nil {
				want = h.GetPayloadSize()
			}
			got += uint64(len(ch.GetData()))
			if _, err := w.Write(ch.GetData()); err != nil {
				return fmt.Errorf("ps: model cache: %w", err)
			}
		}
		if h := hex.EncodeToString(sum.Sum(nil)); h != hash || got != want {
			return fmt.Errorf("ps: model blob %s arrived with hash %s (%d of %d bytes)", hash, h, got, want)
		}
		if err := tmp.Sync(); err != nil {
			return fmt.Errorf("ps: model cache: %w", err)
		}
		if err := tmp.Close(); err != nil {
			return fmt.Errorf("ps: model cache: %w", err)
		}
		if err := os.Rename(tmp.Name(), path); err != nil {
			return fmt.Errorf("ps: model cache: %w", err)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return path, nil
}

// fileHasHash reports whether path exists with the given hex SHA-256; a file
// that does not match is removed.
func fileHasHash(path, hash string) (bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("ps: model cache: %w", err)
	}
	defer f.Close()
	sum := sha256.New()
	if _, err := io.Copy(sum, f); err != nil {
		return false, fmt.Errorf("ps: model cache: %w", err)
	}
	if hex.EncodeToString(sum.Sum(nil)) == hash {
		return true, nil
	}
	return false, os.Remove(path)
}
