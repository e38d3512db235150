package ps

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/gophas/gophas/ps/pspb"
)

const testToken = "0123456789abcdef0123456789abcdef"

// serve starts a Server for p on an ephemeral loopback port.
func serve(t testing.TB, p *Params, opts ...ServerOption) (*Server, string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	opts = append([]ServerOption{WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))}, opts...)
	s, err := NewServer(p, testToken, opts...)
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(lis)
	t.Cleanup(func() { s.Stop(5 * time.Second) })
	return s, lis.Addr().String()
}

func dial(t testing.TB, addr, token string, opts ...ClientOption) *Client {
	t.Helper()
	opts = append([]ClientOption{WithCallTimeout(10 * time.Second), WithBackoff(10*time.Millisecond, 100*time.Millisecond)}, opts...)
	c, err := Dial(addr, token, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestServerRefusesWrongOrMissingToken(t *testing.T) {
	_, addr := serve(t, newParams(t, model2()))
	ctx := testCtx(t)
	bad := dial(t, addr, strings.Repeat("f", 32))
	if _, err := bad.Register(ctx, "w", 0); status.Code(errors.Unwrap(err)) != codes.Unauthenticated && !strings.Contains(err.Error(), "Unauthenticated") {
		t.Errorf("Register with wrong token = %v; want Unauthenticated", err)
	}
	if _, _, _, err := bad.Pull(ctx, 0); err == nil || !strings.Contains(err.Error(), "token") {
		t.Errorf("Pull (a stream) with wrong token = %v; want refused, naming the token", err)
	}
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, err = pspb.NewParameterServerClient(conn).Stats(ctx, &pspb.StatsRequest{})
	if got := status.Code(err); got != codes.Unauthenticated {
		t.Errorf("Stats without token: code %v; want Unauthenticated", got)
	}
	good := dial(t, addr, testToken)
	st, err := good.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Unauthenticated != 3 || len(st.Workers) != 0 {
		t.Errorf("stats = %+v; want 3 unauthenticated calls and no worker registered", st)
	}
}

func TestServerPushPull(t *testing.T) {
	tests := []struct {
		name string
		opts []ClientOption
		tol  float32
	}{
		{"dense", nil, 0},
		{"dense zstd", []ClientOption{WithCompression(Zstd)}, 0},
		{"bf16", []ClientOption{WithPushEncoding(BF16), WithPullEncoding(BF16)}, 0.02},
		{"bf16 zstd", []ClientOption{WithPushEncoding(BF16), WithPullEncoding(BF16), WithCompression(Zstd)}, 0.02},
		{"top-k all", []ClientOption{WithTopK(1)}, 0},
		{"threshold", []ClientOption{WithThreshold(0.5), WithCompression(Zstd)}, 0},
		{"small chunks", []ClientOption{WithClientChunkSize(3)}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, addr := serve(t, newParams(t, model2()), WithChunkSize(5))
			ctx := testCtx(t)
			c := dial(t, addr, testToken, tt.opts...)
			info, err := c.Register(ctx, "w0", 0)
			if err != nil || info.Version != 1 || info.Mode != Asynchronous {
				t.Fatalf("Register = %+v, %v; want version 1, asynchronous", info, err)
			}
			ws, v, mod, err := c.Pull(ctx, 0)
			if err != nil || !mod || v != 1 {
				t.Fatalf("Pull(0) = version %d modified %v, %v; want version 1", v, mod, err)
			}
			if got, want := flat(ws), flat(model2()); !slices.Equal(got, want) {
				t.Errorf("pulled %v; want %v", got, want)
			}
			if _, _, mod, err := c.Pull(ctx, 1); err != nil || mod {
				t.Errorf("Pull(1) at version 1: modified %v, %v; want not modified", mod, err)
			}
			res, err := c.Push(ctx, 1, Delta, infos(model2()), [][]float32{{1, 0.25, -1, 3}, {0.5, 2}})
			if err != nil || res.Version != 2 {
				t.Fatalf("Push = %+v, %v; want version 2", res, err)
			}
			ws, _, _, err = c.Pull(ctx, 1)
			if err != nil {
				t.Fatal(err)
			}
			want := []float32{2, 2.25, 2, 7, 0.5, 2}
			if strings.HasPrefix(tt.name, "threshold") {
				want = []float32{2, 2, 2, 7, 0.5, 2} // 0.25 stays in the residual
			}
			for i, got := range flat(ws) {
				if d := got - want[i]; d > tt.tol*abs32(want[i]) || -d > tt.tol*abs32(want[i]) {
					t.Errorf("after push: weight %d = %v; want %v", i, got, want[i])
				}
			}
		})
	}
}

func TestTopKKeepsResidual(t *testing.T) {
	p := newParams(t, []NamedTensor{{Name: "w", Shape: []int{4}, Data: make([]float32, 4)}})
	_, addr := serve(t, p)
	ctx := testCtx(t)
	c := dial(t, addr, testToken, WithTopK(0.5), WithCompression(Zstd))
	if _, err := c.Register(ctx, "w", 0); err != nil {
		t.Fatal(err)
	}
	shapes := infos(p.weights)
	for step, u := range [][]float32{{1, -5, 0.5, 3}, {1, 0, 0.5, 0}} {
		if _, err := c.Push(ctx, uint64(step+1), Delta, shapes, [][]float32{u}); err != nil {
			t.Fatal(err)
		}
	}
	ws, _ := p.Weights()
	// Push 1 sends -5 and 3 and keeps {1, 0.5}; push 2 has {2, 0, 1, 0}
	// and sends 2 and 1.
	if got, want := ws[0].Data, []float32{2, -5, 1, 3}; !slices.Equal(got, want) {
		t.Errorf("weights after two top-50%% pushes = %v; want %v", got, want)
	}
	if got, want := c.residual[0], []float32{0, 0, 0, 0}; !slices.Equal(got, want) {
		t.Errorf("residual = %v; want %v", got, want)
	}
}

func TestServerRefusesBadPush(t *testing.T) {
	p := newParams(t, model2())
	_, addr := serve(t, p)
	ctx := testCtx(t)
	c := dial(t, addr, testToken)
	if _, err := c.Register(ctx, "w0", 0); err != nil {
		t.Fatal(err)
	}
	nan := float32(0)
	nan = nan / nan
	_, err := c.Push(ctx, 1, Delta, infos(model2()), [][]float32{{1, nan, 1, 1}, {1, 1}})
	if !strings.Contains(err.Error(), "InvalidArgument") || !strings.Contains(err.Error(), "NaN") {
		t.Errorf("NaN push = %v; want InvalidArgument naming NaN", err)
	}
	wrong := []TensorInfo{{Name: "dense/kernel", Shape: []int{4}}, {Name: "dense/bias", Shape: []int{2}}}
	_, err = c.Push(ctx, 2, Delta, wrong, [][]float32{{1, 1, 1, 1}, {1, 1}})
	if !strings.Contains(err.Error(), "InvalidArgument") || !strings.Contains(err.Error(), "shape") {
		t.Errorf("push of shape [4] for [2 2] = %v; want InvalidArgument naming the shape", err)
	}
	ws, v := p.Weights()
	if !slices.Equal(flat(ws), flat(model2())) || v != 1 {
		t.Errorf("weights = %v version %d; want untouched", flat(ws), v)
	}
	st, _ := c.Stats(ctx)
	if w := st.Workers[0]; w.Refused != 2 || w.NonFinite != 1 || w.Applied != 0 {
		t.Errorf("stats = %+v; want 2 refused, 1 non-finite", w)
	}
	// The step of a refused push is still free.
	if r, err := c.Push(ctx, 1, Delta, infos(model2()), [][]float32{{1, 1, 1, 1}, {1, 1}}); err != nil || r.Duplicate {
		t.Errorf("valid push after refusals = %+v, %v; want applied", r, err)
	}
	if r, err := c.Push(ctx, 1, Delta, infos(model2()), [][]float32{{1, 1, 1, 1}, {1, 1}}); err != nil || !r.Duplicate {
		t.Errorf("repeated push = %+v, %v; want duplicate", r, err)
	}
}

func TestServerStalledRoundFailsInTime(t *testing.T) {
	p := newParams(t, model2(), WithMode(Synchronous), WithRoundTimeout(300*time.Millisecond))
	_, addr := serve(t, p)
	ctx := testCtx(t)
	clients := make([]*Client, 3)
	for i, n := range []string{"part-0", "part-1", "part-2"} {
		clients[i] = dial(t, addr, testToken)
		if _, err := clients[i].Register(ctx, n, 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := clients[1].Push(ctx, 1, Delta, infos(model2()), [][]float32{{1, 1, 1, 1}, {1, 1}}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := clients[1].WaitRound(ctx, 1)
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("WaitRound returned after %v; want about 300ms", el)
	}
	if err == nil || !strings.Contains(err.Error(), "Aborted") || !strings.Contains(err.Error(), "missing workers [part-0, part-2]") {
		t.Errorf("WaitRound = %v; want Aborted naming [part-0, part-2]", err)
	}
	st, _ := clients[0].Stats(ctx)
	if st.Mode != Synchronous || st.Round != 1 {
		t.Errorf("stats mode %q round %d; want synchronous round 1", st.Mode, st.Round)
	}
}

func TestServerSynchronousRoundOverGRPC(t *testing.T) {
	p := newParams(t, model2(), WithMode(Synchronous), WithWorkers(4), WithRoundTimeout(10*time.Second))
	_, addr := serve(t, p)
	ctx := testCtx(t)
	var wg sync.WaitGroup
	got := make([][]float32, 4)
	for i := range 4 {
		wg.Go(func() {
			c := dial(t, addr, testToken)
			if _, err := c.Register(ctx, string(rune('a'+i)), 0); err != nil {
				t.Error(err)
				return
			}
			ws, v, _, err := c.Pull(ctx, 0)
			if err != nil {
				t.Error(err)
				return
			}
			d := float32(i + 1)
			if _, err := c.Push(ctx, v, Delta, infos(ws), [][]float32{{d, d, d, d}, {d, d}}); err != nil {
				t.Error(err)
				return
			}
			if _, err := c.WaitRound(ctx, v); err != nil {
				t.Error(err)
				return
			}
			ws, _, _, err = c.Pull(ctx, v)
			if err != nil {
				t.Error(err)
				return
			}
			got[i] = flat(ws)
		})
	}
	wg.Wait()
	want := []float32{3.5, 4.5, 5.5, 6.5, 2.5, 2.5} // mean delta 2.5
	for i := range got {
		if !slices.Equal(got[i], want) {
			t.Errorf("worker %d pulled %v; want %v", i, got[i], want)
		}
	}
}

func TestClientUnreachableSaysWhatToCheck(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	c := dial(t, addr, testToken, WithRetries(2), WithCallTimeout(2*time.Second))
	start := time.Now()
	_, err = c.Register(testCtx(t), "w", 0)
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("Register to a closed port took %v", el)
	}
	for _, want := range []string{addr, "3 attempt", "Unavailable", "spark.gophas.driverHost", "loopback"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v; want it to contain %q", err, want)
		}
	}
}

func TestTLSPinnedFingerprint(t *testing.T) {
	cert, fp, err := NewCertificate("127.0.0.1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	_, addr := serve(t, newParams(t, model2()), WithCertificate(cert))
	ctx := testCtx(t)
	if _, err := dial(t, addr, testToken, WithFingerprint(fp)).Register(ctx, "w", 0); err != nil {
		t.Errorf("Register over TLS with the right fingerprint: %v", err)
	}
	_, other, _ := NewCertificate("127.0.0.1", time.Hour)
	_, err = dial(t, addr, testToken, WithFingerprint(other), WithRetries(0)).Register(ctx, "w", 0)
	if err == nil || !strings.Contains(err.Error(), "fingerprint") {
		t.Errorf("Register with a wrong fingerprint = %v; want refused naming the fingerprint", err)
	}
	_, err = dial(t, addr, testToken, WithRetries(0)).Register(ctx, "w", 0)
	if err == nil {
		t.Error("plaintext Register to a TLS server succeeded; want failure")
	}
}

func TestFetchModelOncePerCache(t *testing.T) {
	s, addr := serve(t, newParams(t, model2()))
	ctx := testCtx(t)
	blob := bytes.Repeat([]byte("model spec "), 100_000)
	hash, err := dial(t, addr, testToken, WithCompression(Zstd)).PutModel(ctx, "spec", blob)
	if err != nil || hash != Hash(blob) {
		t.Fatalf("PutModel = %q, %v; want %q", hash, err, Hash(blob))
	}
	dir := t.TempDir()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			path, err := dial(t, addr, testToken, WithCacheDir(dir)).FetchModel(ctx, hash)
			if err != nil {
				t.Error(err)
				return
			}
			if got, _ := os.ReadFile(path); !bytes.Equal(got, blob) {
				t.Errorf("cached blob differs (%d bytes; want %d)", len(got), len(blob))
			}
		})
	}
	wg.Wait()
	if got := s.modelFetches.Load(); got != 1 {
		t.Errorf("4 tasks sharing a cache fetched %d times; want 1", got)
	}
	// A corrupt cached file is fetched again.
	if err := os.WriteFile(filepath.Join(dir, hash), []byte("junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := dial(t, addr, testToken, WithCacheDir(dir)).FetchModel(ctx, hash); err != nil || s.modelFetches.Load() != 2 {
		t.Errorf("FetchModel over a corrupt cache: %v, %d fetches; want a second fetch", err, s.modelFetches.Load())
	}
	missing := strings.Repeat("0", 64)
	if _, err := dial(t, addr, testToken, WithCacheDir(dir)).FetchModel(ctx, missing); err == nil || !strings.Contains(err.Error(), "NotFound") {
		t.Errorf("FetchModel(unknown hash) = %v; want NotFound", err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp") {
			t.Errorf("temporary file %s left in the cache", e.Name())
		}
	}
}

func TestShutdownRPC(t *testing.T) {
	called := make(chan struct{})
	_, addr := serve(t, newParams(t, model2()), WithShutdown(func() { close(called) }))
	if err := dial(t, addr, testToken).Shutdown(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-called:
	case <-time.After(5 * time.Second):
		t.Error("Shutdown RPC did not call the shutdown function within 5s")
	}
}

// TestRegisterReportsLastStep checks that a worker registering again (a
// retried task) learns the last step the server applied for it.
func TestRegisterReportsLastStep(t *testing.T) {
	_, addr := serve(t, newParams(t, model2()))
	ctx := testCtx(t)
	c := dial(t, addr, testToken)
	info, err := c.Register(ctx, "w0", 0)
	if err != nil || info.HasPushed || info.LastStep != 0 {
		t.Fatalf("first Register = %+v, %v; want no step pushed", info, err)
	}
	step := uint64(3)<<32 | 7
	if _, err := c.Push(ctx, step, Delta, infos(model2()), [][]float32{{1, 1, 1, 1}, {1, 1}}); err != nil {
		t.Fatal(err)
	}
	info, err = c.Register(ctx, "w0", 0)
	if err != nil || !info.HasPushed || info.LastStep != step || info.Version != 2 {
		t.Errorf("second Register = %+v, %v; want last step %d, version 2", info, err, step)
	}
}

func TestStoreDelete(t *testing.T) {
	s := NewStore()
	a, _ := s.Put("spec", []byte("a"))
	b, _ := s.Put("optimizer", []byte("b"))
	if n := s.Delete(a, "nope", a); n != 1 {
		t.Errorf("Delete(a, nope, a) = %d; want 1", n)
	}
	if _, _, ok := s.Get(a); ok {
		t.Error("blob a still stored after Delete")
	}
	if _, data, ok := s.Get(b); !ok || string(data) != "b" {
		t.Errorf("blob b = %q, %v; want kept", data, ok)
	}
}

// TestStoreBounded: past its blob count (or byte) limit the store refuses
// new blobs, still takes ones it holds, and takes new ones again once some
// are deleted; over gRPC the refusal is ResourceExhausted.
func TestStoreBounded(t *testing.T) {
	s := NewStore(WithMaxBlobs(3), WithMaxStoreBytes(10))
	var hashes []string
	for _, b := range []string{"a", "b", "c"} {
		h, err := s.Put("optimizer", []byte(b))
		if err != nil {
			t.Fatal(err)
		}
		hashes = append(hashes, h)
	}
	if _, err := s.Put("optimizer", []byte("d")); !errors.Is(err, ErrStoreFull) || !strings.Contains(err.Error(), "3 blobs") {
		t.Errorf("fourth blob = %v; want ErrStoreFull naming 3 blobs", err)
	}
	if h, err := s.Put("optimizer", []byte("a")); err != nil || h != hashes[0] {
		t.Errorf("a blob already held = %q, %v; want taken", h, err)
	}
	s.Delete(hashes[0])
	if _, err := s.Put("optimizer", []byte("0123456789")); !errors.Is(err, ErrStoreFull) || !strings.Contains(err.Error(), "10 bytes") {
		t.Errorf("a blob past the byte limit = %v; want ErrStoreFull naming 10 bytes", err)
	}
	if _, err := s.Put("optimizer", []byte("d")); err != nil {
		t.Errorf("a blob after a delete: %v", err)
	}
	if n, b := s.Len(); n != 3 || b != 3 {
		t.Errorf("Len = %d blobs, %d bytes; want 3, 3", n, b)
	}

	_, addr := serve(t, newParams(t, model2()), WithStore(NewStore(WithMaxBlobs(1))))
	ctx := testCtx(t)
	c := dial(t, addr, testToken)
	if _, err := c.PutModel(ctx, "spec", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutModel(ctx, "spec", []byte("y")); err == nil || !strings.Contains(err.Error(), "ResourceExhausted") {
		t.Errorf("PutModel past the limit = %v; want ResourceExhausted", err)
	}
}
