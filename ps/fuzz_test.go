package ps

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	"github.com/gophas/gophas/ps/pspb"
)

// splitChunks reads a stream of uvarint-length-prefixed Chunk messages, the
// fuzz input format for FuzzAssemble.
func splitChunks(data []byte) []*pspb.Chunk {
	var out []*pspb.Chunk
	for len(data) > 0 {
		n, k := binary.Uvarint(data)
		if k <= 0 || n > uint64(len(data)-k) {
			break
		}
		c := &pspb.Chunk{}
		if proto.Unmarshal(data[k:k+int(n)], c) != nil {
			break
		}
		out = append(out, c)
		data = data[k+int(n):]
	}
	return out
}

// sliceStream is a chunkStream over chunks. Into a chunkInto it marshals
// each chunk with chunkCodec and decodes it in pieces of 5 bytes, as gRPC
// might hand over its receive buffers.
type sliceStream struct {
	chunks []*pspb.Chunk
	next   int
}

func (s *sliceStream) RecvMsg(m any) error {
	if s.next == len(s.chunks) {
		return io.EOF
	}
	c := s.chunks[s.next]
	s.next++
	switch m := m.(type) {
	case *pspb.Chunk:
		proto.Reset(m)
		proto.Merge(m, c)
		return nil
	case *chunkInto:
		bs, err := chunkCodec{}.Marshal(c)
		if err != nil {
			return err
		}
		flat := bs.Materialize()
		var pieces mem.BufferSlice
		for len(flat) > 0 {
			n := min(5, len(flat))
			pieces = append(pieces, mem.SliceBuffer(flat[:n]))
			flat = flat[n:]
		}
		return chunkCodec{}.Unmarshal(pieces, m)
	}
	return fmt.Errorf("sliceStream: cannot receive into %T", m)
}

func joinChunks(cs []*pspb.Chunk) []byte {
	var out []byte
	for _, c := range cs {
		b, _ := proto.Marshal(c)
		out = binary.AppendUvarint(out, uint64(len(b)))
		out = append(out, b...)
	}
	return out
}

// FuzzAssemble feeds arbitrary chunk sequences to the reassembler: it must
// not panic, and whatever it accepts has exactly the declared size.
func FuzzAssemble(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		chunks := splitChunks(data)
		for _, fast := range []bool{false, true} {
			h, ts, err := receiveWeights(&sliceStream{chunks: chunks}, fast)
			if err != nil || h.GetNotModified() {
				continue
			}
			for _, tn := range ts {
				if numel(tn.Shape) != len(tn.Data) {
					t.Fatalf("pulled tensor %q shape %v with %d values (fast %v)", tn.Name, tn.Shape, len(tn.Data), fast)
				}
			}
		}
		a := assembler{max: 1 << 20}
		for _, c := range chunks {
			if a.add(c) != nil {
				return
			}
		}
		h, payload, err := a.done()
		if err != nil {
			return
		}
		if uint64(len(payload)) != h.GetPayloadSize() {
			t.Fatalf("accepted %d bytes; header declared %d", len(payload), h.GetPayloadSize())
		}
		// What was accepted survives a round trip through sendChunks.
		var sent []*pspb.Chunk
		if err := sendChunks(proto.Clone(h).(*pspb.Header), payload, 7, func(c *pspb.Chunk) error { sent = append(sent, c); return nil }); err != nil {
			t.Fatal(err)
		}
		b := assembler{max: 1 << 20}
		for _, c := range sent {
			if err := b.add(c); err != nil {
				t.Fatalf("re-sent chunk refused: %v", err)
			}
		}
		if _, again, err := b.done(); err != nil || !bytes.Equal(again, payload) {
			t.Fatalf("round trip: %v, payload changed", err)
		}
	})
}

// FuzzDecodeUpdate decodes an arbitrary header and payload as a push to
// model2 and as pulled weights: no panic, and decoded tensors match their
// shapes.
func FuzzDecodeUpdate(f *testing.F) {
	ref := infos(model2())
	f.Fuzz(func(t *testing.T, header, payload []byte) {
		h := &pspb.Header{}
		if proto.Unmarshal(header, h) != nil || h.GetRawSize() > 1<<20 {
			return
		}
		for _, r := range [][]TensorInfo{ref, nil} {
			ts, err := decodeTensors(h, payload, r)
			if err != nil {
				continue
			}
			for _, tn := range ts {
				if numel(tn.Shape) != len(tn.Data) {
					t.Fatalf("tensor %q shape %v with %d values", tn.Name, tn.Shape, len(tn.Data))
				}
			}
			if r != nil {
				if err := sameShapes(ts, r); err != nil {
					t.Fatalf("accepted a push of the wrong shape: %v", err)
				}
			}
		}
	})
}

// TestWriteFuzzSeeds regenerates testdata/fuzz seeds with
// GOPHAS_WRITE_SEEDS=1; otherwise it checks that they are there.
func TestWriteFuzzSeeds(t *testing.T) {
	var dense, bf, sp []byte
	for _, tn := range model2() {
		dense = appendDense(dense, tn.Data)
		bf = appendBF16(bf, tn.Data)
	}
	sp = appendSparse(nil, []uint32{1, 5}, []float32{0.5, -2})
	z, _ := compress(Zstd, dense)
	hdr := func(enc Encoding, comp Compression, raw int) *pspb.Header {
		return &pspb.Header{Worker: "w0", Step: 3, Encoding: pspb.Encoding(enc), Compression: pspb.Compression(comp), Tensors: tensorHeader(infos(model2())), RawSize: uint64(raw)}
	}
	updates := map[string][2][]byte{}
	for name, u := range map[string]struct {
		h       *pspb.Header
		payload []byte
	}{
		"dense":      {hdr(Dense, NoCompression, len(dense)), dense},
		"bf16":       {hdr(BF16, NoCompression, len(bf)), bf},
		"sparse":     {hdr(Sparse, NoCompression, len(sp)), sp},
		"dense-zstd": {hdr(Dense, Zstd, len(dense)), z},
	} {
		b, _ := proto.Marshal(u.h)
		updates[name] = [2][]byte{b, u.payload}
	}
	streams := map[string][]byte{}
	for name, size := range map[string]int{"one-chunk": 100, "three-chunks": 3, "empty": 1 << 10} {
		payload := dense
		if name == "empty" {
			payload = nil
		}
		var cs []*pspb.Chunk
		_ = sendChunks(hdr(Dense, NoCompression, len(payload)), payload, size, func(c *pspb.Chunk) error { cs = append(cs, c); return nil })
		streams[name] = joinChunks(cs)
	}
	write := os.Getenv("GOPHAS_WRITE_SEEDS") == "1"
	check := func(path, content string) {
		if write {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			return
		}
		if got, err := os.ReadFile(path); err != nil || string(got) != content {
			t.Errorf("seed %s missing or stale (%v): run GOPHAS_WRITE_SEEDS=1 go test -run TestWriteFuzzSeeds ./ps/", path, err)
		}
	}
	for name, b := range streams {
		check(filepath.Join("testdata", "fuzz", "FuzzAssemble", name), fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b))
	}
	for name, hp := range updates {
		check(filepath.Join("testdata", "fuzz", "FuzzDecodeUpdate", name), fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n[]byte(%q)\n", hp[0], hp[1]))
	}
}
