package ps

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/gophas/gophas/ps/pspb"
)

// ProtocolVersion is the version of Gophas' contracts: this RPC service and
// the executor pipe (package protocol re-exports it as protocol.ProtocolVersion, the one
// the Scala shim mirrors). It is bumped whenever either changes in a way the
// other side must know about: Register refuses a worker speaking another
// version, `gophas version` reports it, and the shim refuses a binary whose
// version differs from its own.
const ProtocolVersion = 2

// authKey is the metadata key carrying "Bearer <token>".
const authKey = "authorization"

type serverConfig struct {
	cert        *tls.Certificate
	logger      *slog.Logger
	store       *Store
	shutdown    func()
	chunkSize   int
	maxBlob     uint64
	maxConns    int
	maxStreams  uint32
	authTimeout time.Duration
}

// Defaults of the connection limits.
const (
	// DefaultMaxConnections caps the open connections (see
	// WithMaxConnections); it is lowered to half the process' limit of
	// open files when that is smaller.
	DefaultMaxConnections = 4096
	// DefaultMaxStreams caps the calls in flight on one connection; a
	// worker makes one at a time.
	DefaultMaxStreams = 64
	// DefaultAuthTimeout is how long a new connection may go without an
	// authenticated call.
	DefaultAuthTimeout = 10 * time.Second
)

// ServerOption configures a Server.
type ServerOption func(*serverConfig)

// WithCertificate serves TLS with cert. Default: plaintext.
func WithCertificate(cert tls.Certificate) ServerOption {
	return func(c *serverConfig) { c.cert = &cert }
}

// WithLogger sets where refused calls and lifecycle events are logged.
// Default: slog.Default().
func WithLogger(l *slog.Logger) ServerOption { return func(c *serverConfig) { c.logger = l } }

// WithStore serves model blobs from s. Default: a new empty Store.
func WithStore(s *Store) ServerOption { return func(c *serverConfig) { c.store = s } }

// WithShutdown sets what the Shutdown RPC calls (after replying). Default:
// nothing but a log line.
func WithShutdown(f func()) ServerOption { return func(c *serverConfig) { c.shutdown = f } }

// WithChunkSize sets the payload bytes per streamed message. Default
// DefaultChunkSize (1 MiB).
func WithChunkSize(n int) ServerOption { return func(c *serverConfig) { c.chunkSize = n } }

// WithMaxBlobSize bounds the raw size of a model blob PutModel takes, also
// after decompression. Default MaxPayload (2 GiB less one byte).
func WithMaxBlobSize(n uint64) ServerOption { return func(c *serverConfig) { c.maxBlob = n } }

// WithMaxConnections caps the connections open at once. At the cap a new
// connection closes the oldest one that has made no authenticated call, or
// is itself closed when every open one has. Default DefaultMaxConnections,
// or half the process' limit of open files when that is smaller.
func WithMaxConnections(n int) ServerOption { return func(c *serverConfig) { c.maxConns = n } }

// WithMaxStreams caps the calls in flight on one connection (HTTP/2
// MAX_CONCURRENT_STREAMS). Default DefaultMaxStreams.
func WithMaxStreams(n uint32) ServerOption { return func(c *serverConfig) { c.maxStreams = n } }

// WithAuthTimeout sets how long a connection may stay open without making
// an authenticated call (its TLS and HTTP/2 handshakes included) before it
// is closed. Default DefaultAuthTimeout.
func WithAuthTimeout(d time.Duration) ServerOption {
	return func(c *serverConfig) { c.authTimeout = d }
}

// Server adapts Params and a Store to gRPC. Every call must carry the job's
// token; others fail with codes.Unauthenticated and are logged (at most 20
// lines per 10 seconds: the rest are counted, and the count is logged with
// the next line). A panic in a call fails that call with codes.Internal and
// the server goes on serving. Connections are capped and must authenticate
// in time (WithMaxConnections, WithAuthTimeout); idle clients are pinged and
// clients pinging too often are dropped (keepalive).
type Server struct {
	pspb.UnimplementedParameterServerServer
	params *Params
	token  []byte // "Bearer <token>"
	cfg    serverConfig
	grpc   *grpc.Server

	refusals *logLimiter // log lines of refused calls and connections
	panicLog *logLimiter

	mu    sync.Mutex
	conns []*conns // one per Serve

	unauthenticated atomic.Uint64
	panics          atomic.Uint64
	modelFetches    atomic.Uint64
	shutdownOnce    sync.Once
}

// NewServer returns a Server for p that accepts calls carrying token.
func NewServer(p *Params, token string, opts ...ServerOption) (*Server, error) {
	if len(token) < 16 {
		return nil, errors.New("ps: token must have at least 16 characters")
	}
	cfg := serverConfig{logger: slog.Default(), chunkSize: DefaultChunkSize, maxBlob: MaxPayload,
		maxConns: defaultMaxConnections(), maxStreams: DefaultMaxStreams, authTimeout: DefaultAuthTimeout}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.maxConns < 1 || cfg.maxStreams < 1 || cfg.authTimeout <= 0 {
		return nil, fmt.Errorf("ps: connection limits must be positive: %d connections, %d streams, authentication within %v",
			cfg.maxConns, cfg.maxStreams, cfg.authTimeout)
	}
	if cfg.store == nil {
		cfg.store = NewStore()
	}
	if cfg.chunkSize <= 0 || cfg.chunkSize > 3<<20 {
		return nil, fmt.Errorf("ps: chunk size %d outside (0, 3 MiB]", cfg.chunkSize)
	}
	if cfg.maxBlob == 0 || cfg.maxBlob > MaxPayload {
		return nil, fmt.Errorf("ps: blob size limit %d outside (0, %d]", cfg.maxBlob, uint64(MaxPayload))
	}
	s := &Server{params: p, token: []byte("Bearer " + token), cfg: cfg,
		refusals: newLogLimiter(20, 10*time.Second), panicLog: newLogLimiter(20, 10*time.Second)}
	gopts := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(s.unaryRecover, s.unaryAuth),
		grpc.ChainStreamInterceptor(s.streamRecover, s.streamAuth),
		grpc.MaxConcurrentStreams(cfg.maxStreams),
		grpc.ConnectionTimeout(cfg.authTimeout),
		// Clients may ping at most every 10 s, even between calls (gRPC's
		// default refuses pings more often than every 5 minutes); the
		// server pings a connection idle for a minute and drops it when
		// the ping goes unanswered for 20 s (a vanished executor).
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: time.Minute, Timeout: 20 * time.Second}),
		grpc.InitialWindowSize(windowSize),
		grpc.InitialConnWindowSize(windowSize),
		grpc.WriteBufferSize(1 << 20),
		grpc.ReadBufferSize(1 << 20),
		experimental.BufferPool(dirtyPool),
	}
	if cfg.cert != nil {
		gopts = append(gopts, grpc.Creds(credentials.NewTLS(&tls.Config{
			Certificates: []tls.Certificate{*cfg.cert},
			MinVersion:   tls.VersionTLS13,
		})))
	}
	s.grpc = grpc.NewServer(gopts...)
	pspb.RegisterParameterServerServer(s.grpc, s)
	return s, nil
}

// Store returns the model store the server serves.
func (s *Server) Store() *Store { return s.cfg.store }

// Serve accepts connections on lis until Stop.
func (s *Server) Serve(lis net.Listener) error {
	l := newConns(lis, s.cfg.maxConns, s.cfg.authTimeout, s.cfg.logger, s.refusals)
	s.mu.Lock()
	s.conns = append(s.conns, l)
	s.mu.Unlock()
	return s.grpc.Serve(l)
}

// Connections returns the number of connections open now.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, l := range s.conns {
		n += l.count()
	}
	return n
}

// Stop drains calls in flight for up to timeout, then closes every
// connection, those still in their handshake included, and returns within
// a few seconds more.
func (s *Server) Stop(timeout time.Duration) {
	done := make(chan struct{})
	go func() { s.grpc.GracefulStop(); close(done) }()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		s.cfg.logger.Warn("ps: calls still running after the drain deadline; closing every connection", "timeout", timeout)
		go s.grpc.Stop()
		s.mu.Lock()
		ls := append([]*conns(nil), s.conns...)
		s.mu.Unlock()
		for _, l := range ls {
			l.closeAll()
		}
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			s.cfg.logger.Error("ps: the server did not stop 5 s after its connections were closed; returning anyway")
		}
	}
	if n := s.refusals.pending(); n > 0 {
		s.cfg.logger.Warn("ps: refused calls and connections not logged", "count", n)
	}
}

// authorize checks the token in ctx in constant time.
func (s *Server) authorize(ctx context.Context, method string) error {
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get(authKey)
	p, hasPeer := peer.FromContext(ctx)
	if len(vals) == 1 && subtle.ConstantTimeCompare([]byte(vals[0]), s.token) == 1 {
		if hasPeer {
			s.authenticated(p.Addr.String())
		}
		return nil
	}
	s.unauthenticated.Add(1)
	from := "unknown"
	if hasPeer {
		from = p.Addr.String()
	}
	why := "wrong token"
	if len(vals) == 0 {
		why = "no token"
	}
	if ok, dropped := s.refusals.allow(); ok {
		args := []any{"method", method, "peer", from, "reason", why}
		if dropped > 0 {
			args = append(args, "not_logged_before", dropped)
		}
		s.cfg.logger.Warn("ps: refused call", args...)
	}
	return status.Errorf(codes.Unauthenticated, "ps: %s: this is not the job's token", why)
}

// authenticated marks the connection from peer address addr as
// authenticated.
func (s *Server) authenticated(addr string) {
	s.mu.Lock()
	ls := s.conns
	s.mu.Unlock()
	for _, l := range ls {
		l.authenticated(addr)
	}
}

// recovered turns the panic r of a call to method into the call's error.
func (s *Server) recovered(method string, r any) error {
	s.panics.Add(1)
	if ok, dropped := s.panicLog.allow(); ok {
		s.cfg.logger.Error("ps: panic in a call; the call fails and the server goes on serving",
			"method", method, "panic", fmt.Sprint(r), "not_logged_before", dropped, "stack", string(debug.Stack()))
	}
	return status.Errorf(codes.Internal, "ps: %s: internal error (panic: %v); the parameter server goes on serving", method, r)
}

func (s *Server) unaryRecover(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (resp any, err error) {
	defer func() {
		if r := recover(); r != nil {
			resp, err = nil, s.recovered(info.FullMethod, r)
		}
	}()
	return h(ctx, req)
}

func (s *Server) streamRecover(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = s.recovered(info.FullMethod, r)
		}
	}()
	return h(srv, ss)
}

func (s *Server) unaryAuth(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if err := s.authorize(ctx, info.FullMethod); err != nil {
		return nil, err
	}
	return h(ctx, req)
}

func (s *Server) streamAuth(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	if err := s.authorize(ss.Context(), info.FullMethod); err != nil {
		return err
	}
	return h(srv, ss)
}

// statusOf maps a ps error to a gRPC status.
func statusOf(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err // already a status, from the stream
	}
	code := codes.Internal
	switch {
	case errors.Is(err, ErrShape), errors.Is(err, ErrNonFinite), errors.Is(err, ErrOverflow), errors.Is(err, ErrKind),
		errors.Is(err, ErrStep), errors.Is(err, errCorrupt):
		code = codes.InvalidArgument
	case errors.Is(err, ErrNoWeights), errors.Is(err, ErrRoundNotOpen), errors.Is(err, ErrUnknownWorker), errors.Is(err, ErrNoOptimizer),
		errors.Is(err, ErrWrongEpoch):
		code = codes.FailedPrecondition
	case errors.Is(err, ErrRoundTimeout):
		code = codes.Aborted
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	}
	return status.Errorf(code, "%v", err)
}

// Register implements pspb.ParameterServerServer.
func (s *Server) Register(_ context.Context, r *pspb.RegisterRequest) (*pspb.RegisterResponse, error) {
	if r.GetProtocol() != ProtocolVersion {
		return nil, status.Errorf(codes.FailedPrecondition, "ps: worker speaks protocol %d, driver %d: use one gophas binary for both", r.GetProtocol(), ProtocolVersion)
	}
	info, err := s.params.Register(r.GetWorker(), int(r.GetEpoch()))
	if errors.Is(err, ErrWrongEpoch) {
		return nil, statusOf(err)
	}
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "%v", err)
	}
	return &pspb.RegisterResponse{Version: info.Version, Mode: string(info.Mode), Frequency: string(info.Frequency), Protocol: ProtocolVersion,
		LastStep: info.LastStep, HasPushed: info.HasPushed, Epoch: int32(info.Epoch), Rejoin: info.Rejoin,
		EpochStep: info.EpochStep, Workers: uint32(info.Workers)}, nil
}

// SetWeights implements pspb.ParameterServerServer.
func (s *Server) SetWeights(stream grpc.ClientStreamingServer[pspb.Chunk, pspb.SetWeightsResponse]) error {
	h, payload, err := receive(stream, usesChunkCodec(stream.Context()), MaxPayload)
	if err != nil {
		return statusOf(err)
	}
	ts, err := decodeTensors(h, payload, nil)
	if err != nil {
		return statusOf(err)
	}
	v, err := s.params.SetWeights(ts, h.GetIfAbsent())
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "%v", err)
	}
	return stream.SendAndClose(&pspb.SetWeightsResponse{Version: v})
}

// Pull implements pspb.ParameterServerServer.
func (s *Server) Pull(r *pspb.PullRequest, stream grpc.ServerStreamingServer[pspb.Chunk]) error {
	if v := s.params.Version(); v != 0 && v <= r.GetNewerThan() {
		return stream.Send(&pspb.Chunk{Header: &pspb.Header{Version: v, NotModified: true}})
	}
	snap, err := s.params.Snapshot(Encoding(r.GetEncoding()), Compression(r.GetCompression()))
	if err != nil {
		return statusOf(err)
	}
	h := &pspb.Header{
		Version:     snap.Version,
		Encoding:    pspb.Encoding(snap.Encoding),
		Compression: pspb.Compression(snap.Compression),
		Tensors:     tensorHeader(snap.Tensors),
		RawSize:     uint64(snap.RawSize),
	}
	return sendChunks(h, snap.Payload, s.cfg.chunkSize, stream.Send)
}

// Push implements pspb.ParameterServerServer.
func (s *Server) Push(stream grpc.ClientStreamingServer[pspb.Chunk, pspb.PushResponse]) error {
	h, payload, err := receive(stream, usesChunkCodec(stream.Context()), MaxPayload)
	if err != nil {
		return statusOf(err)
	}
	ref := s.params.PushShapes() // the tensors not Frozen (roles.go)
	if ref == nil {
		return statusOf(ErrNoWeights)
	}
	ts, err := decodeTensors(h, payload, ref)
	if err != nil && len(h.GetTensors()) != len(ref) {
		err = fmt.Errorf("%w%s", err, s.params.frozenNoteLocked())
	}
	if err != nil {
		s.params.countRefused(h.GetWorker(), err)
		return statusOf(err)
	}
	update := make([][]float32, len(ts))
	for i := range ts {
		update[i] = ts[i].Data
	}
	res, err := s.params.PushBatches(h.GetWorker(), h.GetStep(), h.GetBatches(), Kind(h.GetKind()), update)
	if err != nil {
		return statusOf(err)
	}
	return stream.SendAndClose(&pspb.PushResponse{Version: res.Version, Duplicate: res.Duplicate})
}

// WaitRound implements pspb.ParameterServerServer.
func (s *Server) WaitRound(ctx context.Context, r *pspb.WaitRoundRequest) (*pspb.WaitRoundResponse, error) {
	v, err := s.params.WaitRound(ctx, r.GetRound())
	if err != nil {
		return nil, statusOf(err)
	}
	return &pspb.WaitRoundResponse{Version: v}, nil
}

// Done implements pspb.ParameterServerServer.
func (s *Server) Done(_ context.Context, r *pspb.DoneRequest) (*pspb.DoneResponse, error) {
	if err := s.params.Done(r.GetWorker()); err != nil {
		return nil, statusOf(err)
	}
	return &pspb.DoneResponse{}, nil
}

// Stats implements pspb.ParameterServerServer.
func (s *Server) Stats(context.Context, *pspb.StatsRequest) (*pspb.StatsResponse, error) {
	st := s.params.Stats()
	return statsProto(st, s.unauthenticated.Load()), nil
}

// Shutdown implements pspb.ParameterServerServer: it replies, then calls the
// WithShutdown function once.
func (s *Server) Shutdown(ctx context.Context, _ *pspb.ShutdownRequest) (*pspb.ShutdownResponse, error) {
	from := "unknown"
	if p, ok := peer.FromContext(ctx); ok {
		from = p.Addr.String()
	}
	s.cfg.logger.Info("ps: shutdown requested", "peer", from)
	if s.cfg.shutdown != nil {
		s.shutdownOnce.Do(func() { go s.cfg.shutdown() })
	}
	return &pspb.ShutdownResponse{}, nil
}

// PutModel implements pspb.ParameterServerServer.
func (s *Server) PutModel(stream grpc.ClientStreamingServer[pspb.Chunk, pspb.PutModelResponse]) error {
	h, payload, err := receive(stream, usesChunkCodec(stream.Context()), s.cfg.maxBlob)
	if err != nil {
		return statusOf(err)
	}
	raw, err := decompress(Compression(h.GetCompression()), payload, h.GetRawSize(), s.cfg.maxBlob)
	if err != nil {
		return statusOf(err)
	}
	if want := h.GetSha256(); want != "" && want != Hash(raw) {
		return status.Errorf(codes.DataLoss, "ps: model blob hash %s, sender said %s", Hash(raw), want)
	}
	hash, err := s.cfg.store.Put(h.GetBlobKind(), raw)
	if err != nil {
		return status.Errorf(codes.ResourceExhausted, "%v", err)
	}
	return stream.SendAndClose(&pspb.PutModelResponse{Sha256: hash})
}

// GetModel implements pspb.ParameterServerServer.
func (s *Server) GetModel(r *pspb.GetModelRequest, stream grpc.ServerStreamingServer[pspb.Chunk]) error {
	kind, data, ok := s.cfg.store.Get(r.GetSha256())
	if !ok {
		return status.Errorf(codes.NotFound, "ps: no model blob %q", r.GetSha256())
	}
	s.modelFetches.Add(1)
	h := &pspb.Header{BlobKind: kind, Sha256: r.GetSha256(), RawSize: uint64(len(data))}
	return sendChunks(h, data, s.cfg.chunkSize, stream.Send)
}

// GetOptimizerState implements pspb.ParameterServerServer.
func (s *Server) GetOptimizerState(r *pspb.GetOptimizerStateRequest, stream grpc.ServerStreamingServer[pspb.Chunk]) error {
	st, v, err := s.params.OptimizerState()
	if err != nil {
		return statusOf(err)
	}
	var raw []byte
	for _, t := range st {
		raw = appendDense(raw, t.Data)
	}
	comp := Compression(r.GetCompression())
	payload, err := compress(comp, raw)
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "%v", err)
	}
	h := &pspb.Header{Version: v, Compression: pspb.Compression(comp), Tensors: tensorHeader(infos(st)), RawSize: uint64(len(raw))}
	return sendChunks(h, payload, s.cfg.chunkSize, stream.Send)
}

// SetOptimizerState implements pspb.ParameterServerServer.
func (s *Server) SetOptimizerState(stream grpc.ClientStreamingServer[pspb.Chunk, pspb.SetOptimizerStateResponse]) error {
	if !s.params.HasOptimizer() {
		return statusOf(ErrNoOptimizer)
	}
	h, payload, err := receive(stream, usesChunkCodec(stream.Context()), MaxPayload)
	if err != nil {
		return statusOf(err)
	}
	st, err := decodeTensors(h, payload, nil)
	if err != nil {
		return statusOf(err)
	}
	v, err := s.params.SetOptimizerState(st)
	if err != nil {
		return statusOf(err)
	}
	return stream.SendAndClose(&pspb.SetOptimizerStateResponse{Version: v})
}
