package ps

import (
	"bytes"
	"context"
	"errors"
	"io"
	"runtime"
	"slices"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/gophas/gophas/gokernel"
	"github.com/gophas/gophas/ps/pspb"
)

// collect is a chunkReceiver that records what it is given.
type collect struct {
	hdrs []*pspb.Header
	data []byte
}

func (c *collect) begin(h *pspb.Header) error { c.hdrs = append(c.hdrs, h); return nil }
func (c *collect) write(p []byte) error       { c.data = append(c.data, p...); return nil }

func TestChunkCodecIsProtobuf(t *testing.T) {
	hdr := &pspb.Header{Worker: "w0", Step: 7, Tensors: tensorHeader(infos(model2())), RawSize: 24, PayloadSize: 24}
	data := bytes.Repeat([]byte{1, 2, 3}, 300)
	for _, tt := range []struct {
		name string
		c    *pspb.Chunk
	}{
		{"header and data", &pspb.Chunk{Header: hdr, Data: data}},
		{"header only", &pspb.Chunk{Header: hdr}},
		{"data only", &pspb.Chunk{Data: data}},
		{"empty", &pspb.Chunk{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			bs, err := chunkCodec{}.Marshal(tt.c)
			if err != nil {
				t.Fatal(err)
			}
			got := bs.Materialize()
			want, err := proto.Marshal(tt.c)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("chunkCodec wrote %x; protobuf writes %x", got, want)
			}
			if len(tt.c.Data) > 0 && &bs[len(bs)-1].ReadOnlyData()[0] != &tt.c.Data[0] {
				t.Errorf("chunkCodec copied the data; want it referenced")
			}
			for _, piece := range []int{1, 3, 64, 1 << 20} {
				var in mem.BufferSlice
				for b := want; len(b) > 0; {
					n := min(piece, len(b))
					in = append(in, mem.SliceBuffer(b[:n]))
					b = b[n:]
				}
				var c collect
				if err := (chunkCodec{}).Unmarshal(in, &chunkInto{r: &c}); err != nil {
					t.Fatalf("pieces of %d: %v", piece, err)
				}
				if len(c.hdrs) != 1 || !proto.Equal(c.hdrs[0], tt.c.GetHeader()) && (c.hdrs[0] != nil || tt.c.GetHeader() != nil) || !bytes.Equal(c.data, tt.c.Data) {
					t.Errorf("pieces of %d: decoded headers %v and %d bytes; want %v and %d bytes", piece, c.hdrs, len(c.data), tt.c.GetHeader(), len(tt.c.Data))
				}
			}
			var back pspb.Chunk
			if err := (chunkCodec{}).Unmarshal(mem.BufferSlice{mem.SliceBuffer(want)}, &back); err != nil || !proto.Equal(&back, tt.c) {
				t.Errorf("Unmarshal into a Chunk = %v, %v; want %v", &back, err, tt.c)
			}
		})
	}
}

func TestChunkCodecRefusesOddChunks(t *testing.T) {
	hb, _ := proto.Marshal(&pspb.Header{Worker: "w"})
	field := func(num int, b []byte) []byte {
		out := []byte{byte(num<<3 | 2), byte(len(b))}
		return append(out, b...)
	}
	for _, tt := range []struct {
		name string
		wire []byte
	}{
		{"data before header", append(field(2, []byte{1, 2}), field(1, hb)...)},
		{"two headers", append(field(1, hb), field(1, hb)...)},
		{"two data fields", append(field(2, []byte{1}), field(2, []byte{2})...)},
		{"truncated data", field(2, []byte{1, 2, 3})[:4]},
		{"bad header", field(1, []byte{0xff})},
	} {
		var c collect
		if err := (chunkCodec{}).Unmarshal(mem.BufferSlice{mem.SliceBuffer(tt.wire)}, &chunkInto{r: &c}); !errors.Is(err, errCorrupt) {
			t.Errorf("%s: %v; want errCorrupt", tt.name, err)
		}
	}
}

// TestServerTakesPlainProtobuf calls the server as a client without the
// gophas content-subtype would, such as another language's gRPC stubs.
func TestServerTakesPlainProtobuf(t *testing.T) {
	p := newParams(t, model2())
	_, addr := serve(t, p)
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	api := pspb.NewParameterServerClient(conn)
	ctx := metadata.NewOutgoingContext(testCtx(t), metadata.Pairs(authKey, "Bearer "+testToken))
	if _, err := api.Register(ctx, &pspb.RegisterRequest{Worker: "w0", Protocol: ProtocolVersion}); err != nil {
		t.Fatal(err)
	}
	push, err := api.Push(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var upd []byte
	upd = appendDense(upd, []float32{1, 1, 1, 1})
	upd = appendDense(upd, []float32{2, 2})
	h := &pspb.Header{Worker: "w0", Step: 1, Tensors: tensorHeader(infos(model2())), RawSize: uint64(len(upd))}
	if err := sendChunks(h, upd, 5, push.Send); err != nil {
		t.Fatal(err)
	}
	if res, err := push.CloseAndRecv(); err != nil || res.GetVersion() != 2 {
		t.Fatalf("push = %v, %v; want version 2", res, err)
	}
	pull, err := api.Pull(ctx, &pspb.PullRequest{Worker: "w0"})
	if err != nil {
		t.Fatal(err)
	}
	hdr, ts, err := receiveWeights(pull, false)
	if err != nil || hdr.GetVersion() != 2 {
		t.Fatalf("pull: version %d, %v; want 2", hdr.GetVersion(), err)
	}
	if got, want := flat(ts), []float32{2, 3, 4, 5, 2, 2}; !slices.Equal(got, want) {
		t.Errorf("pulled %v; want %v", got, want)
	}
}

func TestOptimizerStateOverGRPC(t *testing.T) {
	newAdam := func() Optimizer {
		o, err := gokernel.NewOptimizer([]byte(`{"class_name":"Adam","config":{"learning_rate":0.1}}`))
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	ctx := testCtx(t)
	p := newParams(t, model2(), WithOptimizer(newAdam()))
	_, addr := serve(t, p)
	c := dial(t, addr, testToken)
	if _, err := c.Register(ctx, "w0", 0); err != nil {
		t.Fatal(err)
	}
	// Before the first step the state is the iteration count alone.
	st, _, err := c.OptimizerState(ctx)
	if err != nil || len(st) != 1 || st[0].Name != "iteration" || st[0].Data[0] != 0 {
		t.Fatalf("state before any step = %v, %v; want iteration 0 alone", st, err)
	}
	grad := [][]float32{{1, -1, 0.5, 2}, {0.25, -3}}
	for step := uint64(1); step <= 2; step++ {
		if _, err := c.Push(ctx, step, Gradient, infos(model2()), grad); err != nil {
			t.Fatal(err)
		}
	}
	st, v, err := c.OptimizerState(ctx)
	if err != nil || v != 3 {
		t.Fatalf("OptimizerState = version %d, %v; want version 3", v, err)
	}
	want, _, _ := p.OptimizerState()
	if len(st) != len(want) || len(st) != 5 || st[0].Data[0] != 2 {
		t.Fatalf("state has %d tensors (iteration %v); want %d: iteration 2 and 2 moments per weight", len(st), st[0].Data, len(want))
	}
	for i := range st {
		if st[i].Name != want[i].Name || !slices.Equal(st[i].Shape, want[i].Shape) || !slices.Equal(st[i].Data, want[i].Data) {
			t.Errorf("state %d = %+v; server has %+v", i, st[i], want[i])
		}
	}

	// A second server given that state (and the weights) steps as the first.
	q := newParams(t, model2(), WithOptimizer(newAdam()))
	_, addr2 := serve(t, q)
	c2 := dial(t, addr2, testToken, WithCompression(Zstd))
	ws, _, _, err := c.Pull(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c2.SetWeights(ctx, ws, false); err != nil {
		t.Fatal(err)
	}
	if _, err := c2.SetOptimizerState(ctx, st); err != nil {
		t.Fatal(err)
	}
	if _, err := c2.Register(ctx, "w0", 0); err != nil {
		t.Fatal(err)
	}
	for _, cl := range []*Client{c, c2} {
		if _, err := cl.Push(ctx, 3, Gradient, infos(model2()), grad); err != nil {
			t.Fatal(err)
		}
	}
	w1, _ := p.Weights()
	w2, _ := q.Weights()
	if !slices.Equal(flat(w1), flat(w2)) {
		t.Errorf("after a step from the copied state: %v; the original server has %v", flat(w2), flat(w1))
	}

	// Refusals: a state of the wrong size, and a server without optimizer.
	bad := cloneTensors(st)
	bad[1].Data, bad[1].Shape = bad[1].Data[:3], []int{3}
	if _, err := c2.SetOptimizerState(ctx, bad); status.Code(errors.Unwrap(err)) != codes.InvalidArgument {
		t.Errorf("SetOptimizerState of the wrong size = %v; want InvalidArgument", err)
	}
	_, addr3 := serve(t, newParams(t, model2()))
	c3 := dial(t, addr3, testToken)
	if _, _, err := c3.OptimizerState(ctx); status.Code(errors.Unwrap(err)) != codes.FailedPrecondition {
		t.Errorf("OptimizerState without optimizer = %v; want FailedPrecondition", err)
	}
	if _, err := c3.SetOptimizerState(ctx, st); status.Code(errors.Unwrap(err)) != codes.FailedPrecondition {
		t.Errorf("SetOptimizerState without optimizer = %v; want FailedPrecondition", err)
	}
}

// zeros64M is 64 MiB of zeros compressed: a few kilobytes.
func zeros64M(t testing.TB) []byte {
	z, err := compress(Zstd, make([]byte, 64<<20))
	if err != nil {
		t.Fatal(err)
	}
	return z
}

// allocated returns the bytes f allocates.
func allocated(f func()) uint64 {
	var a, b runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&a)
	f()
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc
}

func TestDecompressIsBounded(t *testing.T) {
	bomb := zeros64M(t)
	if len(bomb) > 1<<20 {
		t.Fatalf("64 MiB of zeros compressed to %d bytes", len(bomb))
	}
	unzstd(bomb[:0], 0) // warm the decoder pool
	tests := []struct {
		name       string
		raw, limit uint64
		maxAlloc   uint64
		wantErr    bool
		payload    []byte
	}{
		// The declared size is above what the tensors need: refused before
		// anything is allocated.
		{name: "declared above limit", raw: MaxPayload, limit: 4 << 10, maxAlloc: 64 << 10, wantErr: true, payload: bomb},
		{name: "declared above MaxPayload", raw: 1 << 40, limit: 1 << 50, maxAlloc: 64 << 10, wantErr: true, payload: bomb},
		// Declared within the limit, but the payload holds far more: read
		// no further than declared.
		{name: "holds more than declared", raw: 1 << 20, limit: 1 << 20, maxAlloc: 16 << 20, wantErr: true, payload: bomb},
		// Declared huge, holds little: allocate what it holds.
		{name: "holds less than declared", raw: 1 << 30, limit: 1 << 30, maxAlloc: 16 << 20, wantErr: true, payload: zeros(t, 1<<10)},
		{name: "exact", raw: 64 << 20, limit: 64 << 20, maxAlloc: 512 << 20, payload: bomb},
	}
	for _, tt := range tests {
		var err error
		var out []byte
		n := allocated(func() { out, err = decompress(Zstd, tt.payload, tt.raw, tt.limit) })
		if (err != nil) != tt.wantErr || (err != nil && !errors.Is(err, errCorrupt)) {
			t.Errorf("%s: %v; want error %v (errCorrupt)", tt.name, err, tt.wantErr)
		}
		if err == nil && uint64(len(out)) != tt.raw {
			t.Errorf("%s: %d bytes; want %d", tt.name, len(out), tt.raw)
		}
		if n > tt.maxAlloc {
			t.Errorf("%s: allocated %d bytes; want at most %d", tt.name, n, tt.maxAlloc)
		}
	}
}

func zeros(t testing.TB, n int) []byte {
	z, err := compress(Zstd, make([]byte, n))
	if err != nil {
		t.Fatal(err)
	}
	return z
}

// TestPushDeclaringHugeRawSizeRefused sends a small zstd push whose header
// declares far more raw bytes than the model's tensors hold.
func TestPushDeclaringHugeRawSizeRefused(t *testing.T) {
	p := newParams(t, model2())
	_, addr := serve(t, p)
	c := dial(t, addr, testToken)
	ctx := testCtx(t)
	if _, err := c.Register(ctx, "w0", 0); err != nil {
		t.Fatal(err)
	}
	bomb := zeros64M(t)
	err := c.call(ctx, "push", false, c.cfg.callTimeout, func(ctx context.Context) error {
		st, err := c.api.Push(ctx)
		if err != nil {
			return err
		}
		h := &pspb.Header{Worker: "w0", Step: 1, Compression: pspb.Compression_COMPRESSION_ZSTD, Tensors: tensorHeader(infos(model2())), RawSize: 64 << 20}
		if err := sendChunks(h, bomb, DefaultChunkSize, st.Send); err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		_, err = st.CloseAndRecv()
		return err
	})
	if status.Code(errors.Unwrap(err)) != codes.InvalidArgument {
		t.Errorf("push declaring 64 MiB for 6 values = %v; want InvalidArgument", err)
	}
	if ws, _ := p.Weights(); !slices.Equal(flat(ws), flat(model2())) {
		t.Errorf("weights changed to %v", flat(ws))
	}
}

// FuzzDecompress: whatever is accepted has exactly the declared size, and
// the declared size is within the limit.
func FuzzDecompress(f *testing.F) {
	f.Add(zeros(f, 100), uint64(100), uint64(100))
	f.Add(zeros(f, 100), uint64(1<<30), uint64(1<<31))
	f.Add(zeros(f, 1<<16), uint64(10), uint64(1<<20))
	f.Add([]byte("not zstd"), uint64(8), uint64(8))
	f.Fuzz(func(t *testing.T, payload []byte, raw, limit uint64) {
		limit = min(limit, 1<<26) // keep the fuzzer's memory bounded
		out, err := decompress(Zstd, payload, raw, limit)
		if err != nil {
			return
		}
		if uint64(len(out)) != raw || raw > limit {
			t.Fatalf("accepted %d bytes; declared %d, limit %d", len(out), raw, limit)
		}
	})
}

func TestSendSegments(t *testing.T) {
	segs := [][]byte{{1, 2, 3, 4, 5}, {}, {6}, {7, 8, 9, 10}, {}}
	var want []byte
	starts := map[int]bool{} // payload offsets where a segment starts
	for _, s := range segs {
		starts[len(want)] = true
		want = append(want, s...)
	}
	var got []*pspb.Chunk
	if err := sendSegments(&pspb.Header{}, slices.Clone(segs), 3, func(c *pspb.Chunk) error { got = append(got, c); return nil }); err != nil {
		t.Fatal(err)
	}
	a := assembler{max: 100}
	off := 0
	for i, c := range got {
		if (c.Header != nil) != (i == 0) || len(c.Data) > 3 || (i > 0 && len(c.Data) == 0) {
			t.Errorf("chunk %d: header %v, %d bytes; want the header first only, 1 to 3 bytes", i, c.Header != nil, len(c.Data))
		}
		for k := off + 1; k < off+len(c.Data); k++ {
			if starts[k] {
				t.Errorf("chunk %d crosses a segment boundary at %d", i, k)
			}
		}
		off += len(c.Data)
		if err := a.add(c); err != nil {
			t.Fatal(err)
		}
	}
	if _, payload, err := a.done(); err != nil || !bytes.Equal(payload, want) {
		t.Errorf("reassembled %v, %v; want %v", payload, err, want)
	}
	got = nil
	if err := sendSegments(&pspb.Header{}, [][]byte{{}, {}}, 3, func(c *pspb.Chunk) error { got = append(got, c); return nil }); err != nil || len(got) != 1 || got[0].Header == nil {
		t.Errorf("empty segments: %d chunks, %v; want one chunk with the header", len(got), err)
	}
}
