package ps

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// syncBuffer is a log destination safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) lines(substr string) int {
	n := 0
	for _, l := range strings.Split(s.String(), "\n") {
		if strings.Contains(l, substr) {
			n++
		}
	}
	return n
}

func logTo(w io.Writer) ServerOption { return WithLogger(slog.New(slog.NewTextHandler(w, nil))) }

// idleConns opens n TCP connections to addr that never send a byte.
func idleConns(t *testing.T, addr string, n int) []net.Conn {
	t.Helper()
	cs := make([]net.Conn, 0, n)
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("idle connection %d: %v", len(cs), err)
		}
		cs = append(cs, c)
	}
	t.Cleanup(func() {
		for _, c := range cs {
			c.Close()
		}
	})
	return cs
}

// closedByServer reports whether the server closed c (a read sees EOF or a
// reset rather than timing out).
func closedByServer(c net.Conn, wait time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 4096)
	for {
		_, err := c.Read(buf)
		if err == nil {
			continue // the server's HTTP/2 settings, then its GOAWAY
		}
		var ne net.Error
		return !(errors.As(err, &ne) && ne.Timeout())
	}
}

// panicky is an optimizer with a bug: it panics on its first Apply.
type panicky struct{ calls int }

func (o *panicky) Apply(params, grads [][]float32) error {
	if o.calls++; o.calls == 1 {
		var none []float32
		_ = none[len(params)] // index out of range
	}
	return nil
}
func (o *panicky) State() []NamedTensor           { return nil }
func (o *panicky) SetState(s []NamedTensor) error { return nil }

// TestServerSurvivesPanickingCall: a call that panics fails with Internal
// naming the panic, the panic is logged with its stack, every lock it held
// is released, and the server goes on serving the same and other clients.
func TestServerSurvivesPanickingCall(t *testing.T) {
	var log syncBuffer
	p := newParams(t, model2(), WithOptimizer(&panicky{}))
	_, addr := serve(t, p, logTo(&log))
	ctx := testCtx(t)
	c := dial(t, addr, testToken)
	if _, err := c.Register(ctx, "w", 0); err != nil {
		t.Fatal(err)
	}
	_, err := c.Push(ctx, 1, Gradient, infos(model2()), [][]float32{{1, 1, 1, 1}, {1, 1}})
	if status.Code(errors.Unwrap(err)) != codes.Internal && !strings.Contains(err.Error(), "Internal") || !strings.Contains(err.Error(), "panic: runtime error: index out of range") {
		t.Fatalf("push whose optimizer panics = %v; want Internal naming the panic", err)
	}
	if !strings.Contains(log.String(), "panic in a call") || !strings.Contains(log.String(), "goroutine") {
		t.Errorf("log has no panic line with its stack:\n%s", log.String())
	}
	// Same client, same server: the locks the panicking push held are free.
	done := make(chan error, 1)
	go func() {
		if _, err := c.Push(ctx, 2, Delta, infos(model2()), [][]float32{{1, 1, 1, 1}, {1, 1}}); err != nil {
			done <- err
			return
		}
		_, _, _, err := c.Pull(ctx, 0)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("calls after the panic: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("calls after the panic hang: a lock stayed held")
	}
	if _, v := p.Weights(); v != 2 {
		t.Errorf("version %d after the delta push; want 2", v)
	}
	other := dial(t, addr, testToken)
	if _, err := other.Stats(ctx); err != nil {
		t.Errorf("another client after the panic: %v", err)
	}
}

// TestUnaryRecover: a unary handler's panic becomes an Internal error.
func TestUnaryRecover(t *testing.T) {
	var log syncBuffer
	s, err := NewServer(newParams(t, model2()), testToken, logTo(&log))
	if err != nil {
		t.Fatal(err)
	}
	info := &grpc.UnaryServerInfo{FullMethod: "/gophas.ps.ParameterServer/Stats"}
	resp, err := s.unaryRecover(context.Background(), nil, info, func(context.Context, any) (any, error) { panic("boom") })
	if resp != nil || status.Code(err) != codes.Internal || !strings.Contains(err.Error(), "boom") || !strings.Contains(err.Error(), "Stats") {
		t.Errorf("panicking unary call = %v, %v; want nil, Internal naming the method and the panic", resp, err)
	}
	if s.panics.Load() != 1 {
		t.Errorf("panics counted: %d; want 1", s.panics.Load())
	}
}

// TestServerUnknownKindIsInvalidArgument: a push of a kind the server does
// not know is the client's error.
func TestServerUnknownKindIsInvalidArgument(t *testing.T) {
	_, addr := serve(t, newParams(t, model2()))
	ctx := testCtx(t)
	c := dial(t, addr, testToken)
	if _, err := c.Register(ctx, "w", 0); err != nil {
		t.Fatal(err)
	}
	_, err := c.Push(ctx, 1, Kind(9), infos(model2()), [][]float32{{1, 1, 1, 1}, {1, 1}})
	if err == nil || !strings.Contains(err.Error(), "InvalidArgument") || !strings.Contains(err.Error(), "kind 9") {
		t.Errorf("push of kind 9 = %v; want InvalidArgument naming kind 9", err)
	}
	_, err = c.Push(ctx, 1<<63, Delta, infos(model2()), [][]float32{{1, 1, 1, 1}, {1, 1}})
	if err == nil || !strings.Contains(err.Error(), "InvalidArgument") || !strings.Contains(err.Error(), "step") {
		t.Errorf("push at step 2^63 = %v; want InvalidArgument naming the step", err)
	}
}

// TestRefusalLogIsRateLimited: 300 calls with a wrong token are all
// refused and counted, but logged at most 20 times per 10 s.
func TestRefusalLogIsRateLimited(t *testing.T) {
	var log syncBuffer
	s, addr := serve(t, newParams(t, model2()), logTo(&log))
	ctx := testCtx(t)
	bad := dial(t, addr, strings.Repeat("f", 32), WithRetries(0))
	for range 300 {
		if _, err := bad.Stats(ctx); err == nil {
			t.Fatal("call with a wrong token succeeded")
		}
	}
	if got := s.unauthenticated.Load(); got != 300 {
		t.Errorf("unauthenticated = %d; want 300", got)
	}
	if n := log.lines("refused call"); n < 1 || n > 20 {
		t.Errorf("%d log lines for 300 refused calls; want 1 to 20", n)
	}
	s.Stop(time.Second)
	if !strings.Contains(log.String(), "not logged") || !strings.Contains(log.String(), "count=280") {
		t.Errorf("no summary of the 280 refused calls not logged:\n%s", log.String())
	}
}

// TestIdleUnauthenticatedConnectionsClosed: connections that never send a
// byte, or make only calls with a wrong token, are closed after the
// authentication timeout and logged; an authenticated one stays.
func TestIdleUnauthenticatedConnectionsClosed(t *testing.T) {
	var log syncBuffer
	s, addr := serve(t, newParams(t, model2()), logTo(&log), WithAuthTimeout(300*time.Millisecond))
	ctx := testCtx(t)
	good := dial(t, addr, testToken)
	if _, err := good.Register(ctx, "w", 0); err != nil {
		t.Fatal(err)
	}
	idle := idleConns(t, addr, 20)
	bad := dial(t, addr, strings.Repeat("f", 32), WithRetries(0))
	if _, err := bad.Stats(ctx); err == nil {
		t.Fatal("call with a wrong token succeeded")
	}
	for i, c := range idle {
		if !closedByServer(c, 5*time.Second) {
			t.Fatalf("idle connection %d still open after 5 s; want closed after 300 ms", i)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.Connections() > 1 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := s.Connections(); n != 1 {
		t.Errorf("%d connections open; want 1 (the authenticated client)", n)
	}
	if n := log.lines("no authenticated call"); n < 1 {
		t.Errorf("closing idle connections was not logged:\n%s", log.String())
	}
	time.Sleep(500 * time.Millisecond) // past the timeout: the good client's connection stays
	if _, _, _, err := good.Pull(ctx, 0); err != nil {
		t.Errorf("authenticated client after the timeout: %v", err)
	}
}

// TestConnectionCapEvictsUnauthenticated: with the cap reached by idle
// sockets, a worker still gets in (the oldest idle one is closed for it);
// with the cap reached by authenticated clients, a new connection is
// refused.
func TestConnectionCapEvictsUnauthenticated(t *testing.T) {
	var log syncBuffer
	s, addr := serve(t, newParams(t, model2()), logTo(&log), WithMaxConnections(8), WithAuthTimeout(time.Minute))
	ctx := testCtx(t)
	idle := idleConns(t, addr, 500)
	var clients []*Client
	for i := range 8 {
		c := dial(t, addr, testToken)
		if _, err := c.Register(ctx, "w"+string(rune('0'+i)), 0); err != nil {
			t.Fatalf("worker %d with 500 idle sockets open: %v", i, err)
		}
		clients = append(clients, c)
	}
	if n := s.Connections(); n != 8 {
		t.Errorf("%d connections open; want the cap, 8", n)
	}
	// The server has closed each evicted socket by now, but the FIN may
	// still be on its way: wait for it up to a shared deadline (an open
	// socket takes the rest of it; closed ones answer at once).
	open, deadline := 0, time.Now().Add(5*time.Second)
	for _, c := range idle {
		if !closedByServer(c, max(time.Millisecond, time.Until(deadline))) {
			open++
		}
	}
	if open != 0 {
		t.Errorf("%d idle sockets still open; want every one evicted", open)
	}
	late := dial(t, addr, testToken, WithRetries(0))
	if _, err := late.Stats(ctx); err == nil || !strings.Contains(err.Error(), "Unavailable") {
		t.Errorf("a ninth authenticated client = %v; want Unavailable (every open connection has authenticated)", err)
	}
	var evicted uint64
	for _, l := range s.conns {
		evicted += l.evicted.Load()
	}
	if evicted != 501 {
		t.Errorf("%d connections evicted or refused; want 500 idle sockets and the ninth client", evicted)
	}
	if n := log.lines("ps: connection"); n < 1 || n > 20 {
		t.Errorf("%d log lines for 501 evictions and refusals; want 1 to 20 (rate-limited)", n)
	}
	for _, c := range clients {
		if _, err := c.Stats(ctx); err != nil {
			t.Errorf("an admitted worker after the cap: %v", err)
		}
	}
}

// TestServerSettingsAndKeepaliveEnforced reads the server's HTTP/2
// settings (at most 64 calls in flight per connection) and floods it with
// pings: the server answers with GOAWAY ENHANCE_YOUR_CALM (too many pings).
func TestServerSettingsAndKeepaliveEnforced(t *testing.T) {
	_, addr := serve(t, newParams(t, model2()), WithAuthTimeout(time.Minute))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	var maxStreams uint32
	sawSettings := false
	pings := make(chan struct{})
	go func() {
		defer close(pings)
		for i := range 50 {
			if fr.WritePing(false, [8]byte{byte(i)}) != nil {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	defer func() { <-pings }()
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("no GOAWAY after a ping flood: %v", err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				sawSettings = true
				maxStreams, _ = f.Value(http2.SettingMaxConcurrentStreams)
			}
		case *http2.GoAwayFrame:
			if !sawSettings || maxStreams != DefaultMaxStreams {
				t.Errorf("server settings: max concurrent streams %d (settings seen: %v); want %d", maxStreams, sawSettings, DefaultMaxStreams)
			}
			if f.ErrCode != http2.ErrCodeEnhanceYourCalm || !strings.Contains(string(f.DebugData()), "too_many_pings") {
				t.Errorf("GOAWAY %v %q; want ENHANCE_YOUR_CALM too_many_pings", f.ErrCode, f.DebugData())
			}
			return
		}
	}
}

// TestStopIsBounded: with connections that never finished their handshake
// and a call that never ends, Stop returns soon after its drain timeout
// (gRPC's own stop waits for handshakes up to its connection timeout).
func TestStopIsBounded(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := newParams(t, model2(), WithMode(Synchronous), WithRoundTimeout(time.Hour))
	s, err := NewServer(p, testToken, logTo(io.Discard), WithAuthTimeout(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(lis) }()
	addr := lis.Addr().String()
	idleConns(t, addr, 10)
	c := dial(t, addr, testToken)
	ctx := testCtx(t)
	if _, err := c.Register(ctx, "a", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Register(ctx, "b", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Register("b", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Push(ctx, 1, Delta, infos(model2()), [][]float32{{1, 1, 1, 1}, {1, 1}}); err != nil {
		t.Fatal(err)
	}
	go c.WaitRound(ctx, 1) // waits for b, which never pushes
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	s.Stop(300 * time.Millisecond)
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("Stop(300ms) took %v; want well under 3 s", el)
	}
	select {
	case <-served:
	case <-time.After(5 * time.Second):
		t.Error("Serve did not return after Stop")
	}
}

// TestConcurrentPushersAndSetWeights: 32 asynchronous clients push over
// gRPC while another replaces the weights (same shapes) with a constant
// again and again. Nothing is refused or lost, and no push is torn: at the
// end every value is the last constant plus the pushes applied since, which
// the versions count.
func TestConcurrentPushersAndSetWeights(t *testing.T) {
	const pushers, pushes, size = 32, 25, 10_000
	ws := []NamedTensor{{Name: "w", Shape: []int{size}, Data: make([]float32, size)}}
	p := newParams(t, ws)
	_, addr := serve(t, p)
	ctx := testCtx(t)
	one := [][]float32{make([]float32, size)}
	for i := range one[0] {
		one[0][i] = 1
	}
	var wg sync.WaitGroup
	for w := range pushers {
		c := dial(t, addr, testToken)
		name := "w" + strconv.Itoa(w)
		if _, err := c.Register(ctx, name, 0); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			for step := uint64(1); step <= pushes; step++ {
				if r, err := c.Push(ctx, step, Delta, infos(ws), one); err != nil || r.Duplicate {
					t.Errorf("%s push %d: %+v, %v", name, step, r, err)
					return
				}
			}
		})
	}
	setter := dial(t, addr, testToken)
	var last float32
	var lastVersion uint64
	sets := 0
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
			sets++
			last = float32(sets * 1000)
			c := []NamedTensor{{Name: "w", Shape: []int{size}, Data: make([]float32, size)}}
			for i := range c[0].Data {
				c[0].Data[i] = last
			}
			v, err := setter.SetWeights(ctx, c, false)
			if err != nil {
				t.Fatal(err)
			}
			lastVersion = v
			time.Sleep(5 * time.Millisecond)
		}
	}
	got, v := p.Weights()
	want := last + float32(v-lastVersion)
	for i, x := range got[0].Data {
		if x != want {
			t.Fatalf("value %d = %v; want %v (constant %v of SetWeights %d at version %d, then %d pushes): a push was lost or torn",
				i, x, want, last, sets, lastVersion, v-lastVersion)
		}
	}
	if total := uint64(1 + sets + pushers*pushes); v != total {
		t.Errorf("version %d; want %d (1 + %d sets + %d pushes)", v, total, sets, pushers*pushes)
	}
	st := p.Stats()
	for _, w := range st.Workers {
		if w.Applied != pushes || w.Refused != 0 {
			t.Errorf("%s: %+v; want %d applied, none refused", w.Worker, w, pushes)
		}
	}
	t.Logf("%d pushes from %d clients, %d SetWeights in between", pushers*pushes, pushers, sets)
}
