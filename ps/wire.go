package ps

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"strings"
	"sync"

	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/proto" // registers the codec chunkCodec delegates to
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/gophas/gophas/ps/pspb"
)

// codecName is the gRPC content-subtype of the client's calls
// ("application/grpc+gophas"). The bytes on the wire are the protobuf
// encoding of ps.proto's messages, as with the default "proto" subtype; only
// the work on either end differs (see chunkCodec).
const codecName = "gophas"

func init() { encoding.RegisterCodecV2(chunkCodec{}) }

// protoCodec is gRPC's own protobuf codec, for every message but a Chunk.
var protoCodec = encoding.GetCodecV2("proto")

// chunkCodec is gRPC's protobuf codec except for Chunk, whose data field is
// the payload of a weights, update or blob stream:
//
//   - Marshal writes a Chunk as the header's protobuf bytes and the tag and
//     length of the data field, followed by the data slice itself, referenced
//     and not copied (the payloads sent are never modified afterwards). The
//     bytes are those proto.Marshal writes.
//   - Unmarshal into a *chunkInto hands the data to a chunkReceiver as the
//     pieces gRPC received it in, so a pull decodes straight into the
//     destination float32 slice and a push straight into its buffer; into
//     any other message it is the protobuf codec.
type chunkCodec struct{}

func (chunkCodec) Name() string { return codecName }

func (chunkCodec) Marshal(v any) (mem.BufferSlice, error) {
	c, ok := v.(*pspb.Chunk)
	if !ok {
		return protoCodec.Marshal(v)
	}
	var head []byte
	if h := c.GetHeader(); h != nil {
		hb, err := proto.Marshal(h)
		if err != nil {
			return nil, err
		}
		head = protowire.AppendTag(make([]byte, 0, len(hb)+16), 1, protowire.BytesType)
		head = protowire.AppendBytes(head, hb)
	}
	if len(c.Data) == 0 {
		if len(head) == 0 {
			return nil, nil
		}
		return mem.BufferSlice{mem.SliceBuffer(head)}, nil
	}
	head = protowire.AppendTag(head, 2, protowire.BytesType)
	head = protowire.AppendVarint(head, uint64(len(c.Data)))
	return mem.BufferSlice{mem.SliceBuffer(head), mem.SliceBuffer(c.Data)}, nil
}

func (chunkCodec) Unmarshal(data mem.BufferSlice, v any) error {
	t, ok := v.(*chunkInto)
	if !ok {
		return protoCodec.Unmarshal(data, v)
	}
	t.err = decodeChunk(data, t.r)
	return t.err
}

// chunkReceiver takes a Chunk stream one chunk at a time without the
// intermediate copies of protobuf decoding.
type chunkReceiver interface {
	// begin starts a chunk; h is its header, nil when it has none.
	begin(h *pspb.Header) error
	// write takes the next piece of the chunk's data; p is valid only
	// during the call.
	write(p []byte) error
}

// chunkInto is the message RecvMsg decodes into when the call uses
// chunkCodec: the next Chunk goes to r, and err keeps r's error (RecvMsg
// reports it as an Internal status).
type chunkInto struct {
	r   chunkReceiver
	err error
}

// feedChunk gives a decoded Chunk to r.
func feedChunk(c *pspb.Chunk, r chunkReceiver) error {
	if err := r.begin(c.GetHeader()); err != nil {
		return err
	}
	if len(c.GetData()) == 0 {
		return nil
	}
	return r.write(c.GetData())
}

// decodeChunk parses the protobuf bytes of one Chunk held in data. The
// header field must come before the data field, as every protobuf encoder
// writes them (in field order); each appears at most once; other fields are
// skipped.
func decodeChunk(data mem.BufferSlice, r chunkReceiver) error {
	cur := sliceCursor{bufs: data}
	begun, sawData := false, false
	for !cur.atEnd() {
		tag, err := cur.varint()
		if err != nil {
			return err
		}
		num, typ := protowire.Number(tag>>3), protowire.Type(tag&7)
		switch {
		case num == 1 && typ == protowire.BytesType:
			if begun {
				return fmt.Errorf("%w: chunk header after its data or repeated", errCorrupt)
			}
			n, err := cur.varint()
			if err != nil {
				return err
			}
			b, err := cur.bytes(n, 1<<24)
			if err != nil {
				return err
			}
			h := &pspb.Header{}
			if err := proto.Unmarshal(b, h); err != nil {
				return fmt.Errorf("%w: chunk header: %w", errCorrupt, err)
			}
			begun = true
			if err := r.begin(h); err != nil {
				return err
			}
		case num == 2 && typ == protowire.BytesType:
			if sawData {
				return fmt.Errorf("%w: chunk data repeated", errCorrupt)
			}
			sawData = true
			n, err := cur.varint()
			if err != nil {
				return err
			}
			if !begun {
				begun = true
				if err := r.begin(nil); err != nil {
					return err
				}
			}
			if err := cur.each(n, r.write); err != nil {
				return err
			}
		default:
			if err := cur.skip(typ); err != nil {
				return err
			}
		}
	}
	if !begun {
		return r.begin(nil)
	}
	return nil
}

// sliceCursor reads a mem.BufferSlice front to back.
type sliceCursor struct {
	bufs mem.BufferSlice
	i    int // current buffer
	off  int // offset in it
}

func (c *sliceCursor) atEnd() bool {
	for c.i < len(c.bufs) && c.off == c.bufs[c.i].Len() {
		c.i, c.off = c.i+1, 0
	}
	return c.i == len(c.bufs)
}

func (c *sliceCursor) byte() (byte, error) {
	if c.atEnd() {
		return 0, fmt.Errorf("%w: chunk truncated", errCorrupt)
	}
	b := c.bufs[c.i].ReadOnlyData()[c.off]
	c.off++
	return b, nil
}

func (c *sliceCursor) varint() (uint64, error) {
	var x uint64
	for s := uint(0); s < 64; s += 7 {
		b, err := c.byte()
		if err != nil {
			return 0, err
		}
		x |= uint64(b&0x7f) << s
		if b < 0x80 {
			return x, nil
		}
	}
	return 0, fmt.Errorf("%w: chunk varint overflows", errCorrupt)
}

// each calls f on the next n bytes, piece by piece.
func (c *sliceCursor) each(n uint64, f func([]byte) error) error {
	for n > 0 {
		if c.atEnd() {
			return fmt.Errorf("%w: chunk truncated", errCorrupt)
		}
		b := c.bufs[c.i].ReadOnlyData()[c.off:]
		k := len(b)
		if uint64(k) > n {
			k = int(n)
		}
		if err := f(b[:k]); err != nil {
			return err
		}
		c.off += k
		n -= uint64(k)
	}
	return nil
}

// bytes copies the next n bytes, at most max.
func (c *sliceCursor) bytes(n uint64, max int) ([]byte, error) {
	if n > uint64(max) {
		return nil, fmt.Errorf("%w: chunk field of %d bytes", errCorrupt, n)
	}
	out := make([]byte, 0, n)
	err := c.each(n, func(p []byte) error { out = append(out, p...); return nil })
	return out, err
}

func (c *sliceCursor) skip(typ protowire.Type) error {
	switch typ {
	case protowire.VarintType:
		_, err := c.varint()
		return err
	case protowire.Fixed32Type:
		return c.each(4, func([]byte) error { return nil })
	case protowire.Fixed64Type:
		return c.each(8, func([]byte) error { return nil })
	case protowire.BytesType:
		n, err := c.varint()
		if err != nil {
			return err
		}
		return c.each(n, func([]byte) error { return nil })
	}
	return fmt.Errorf("%w: chunk field of wire type %d", errCorrupt, typ)
}

// chunkStream is a gRPC stream of Chunks in either direction.
type chunkStream interface{ RecvMsg(m any) error }

// receiveInto reads s to its end into r. fast says that the call uses
// chunkCodec; otherwise each chunk is decoded as a pspb.Chunk first (a
// client speaking plain "application/grpc").
func receiveInto(s chunkStream, fast bool, r chunkReceiver) error {
	for {
		var err error
		if fast {
			t := chunkInto{r: r}
			if err = s.RecvMsg(&t); t.err != nil {
				return t.err
			}
		} else {
			c := &pspb.Chunk{}
			if err = s.RecvMsg(c); err == nil {
				err = feedChunk(c, r)
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// usesChunkCodec reports whether the incoming call in ctx was made with
// chunkCodec's content-subtype.
func usesChunkCodec(ctx context.Context) bool {
	md, _ := metadata.FromIncomingContext(ctx)
	for _, ct := range md.Get("content-type") {
		if strings.HasSuffix(strings.ToLower(ct), "+"+codecName) {
			return true
		}
	}
	return false
}

// bufferPool is gRPC's buffer pool without the clearing of reused buffers
// (mem.DefaultBufferPool zeroes every buffer it hands out): every buffer
// gRPC takes from a pool is filled before it is read. Buffers of 256 B to
// 4 MiB are pooled in power-of-two classes.
type bufferPool struct {
	classes [maxPoolShift - minPoolShift + 1]sync.Pool // by log2(capacity)
}

const (
	minPoolShift = 8
	maxPoolShift = 22
)

var dirtyPool = &bufferPool{}

func (p *bufferPool) pool(shift int) *sync.Pool {
	if shift < minPoolShift || shift > maxPoolShift {
		return nil
	}
	return &p.classes[shift-minPoolShift]
}

// Get returns a buffer of length n; its bytes are whatever they were.
func (p *bufferPool) Get(n int) *[]byte {
	shift := max(bits.Len(uint(max(n, 1)-1)), minPoolShift)
	if sp := p.pool(shift); sp != nil {
		if b, ok := sp.Get().(*[]byte); ok {
			*b = (*b)[:n]
			return b
		}
		b := make([]byte, n, 1<<shift)
		return &b
	}
	b := make([]byte, n)
	return &b
}

// Put keeps b for a later Get.
func (p *bufferPool) Put(b *[]byte) {
	if sp := p.pool(bits.Len(uint(cap(*b))) - 1); sp != nil {
		sp.Put(b)
	}
}

// statsProto and statsFromProto convert Stats to and from its wire form,
// field for field.
func statsProto(st Stats, unauthenticated uint64) *pspb.StatsResponse {
	out := &pspb.StatsResponse{Mode: string(st.Mode), Frequency: string(st.Frequency), Version: st.Version, Round: st.Round,
		Epoch: int32(st.Epoch), WorkersExpected: uint32(st.WorkersExpected), Steps: st.Steps, Unauthenticated: unauthenticated}
	for _, w := range st.Workers {
		out.Workers = append(out.Workers, &pspb.WorkerStats{Worker: w.Worker, Applied: w.Applied, Refused: w.Refused, Duplicate: w.Duplicate,
			NonFinite: w.NonFinite, Registers: w.Registers, Done: w.Done, Epoch: int32(w.Epoch)})
	}
	return out
}

func statsFromProto(r *pspb.StatsResponse) (Stats, uint64) {
	st := Stats{Mode: Mode(r.GetMode()), Frequency: Frequency(r.GetFrequency()), Version: r.GetVersion(), Round: r.GetRound(),
		Epoch: int(r.GetEpoch()), WorkersExpected: int(r.GetWorkersExpected()), Steps: r.GetSteps()}
	for _, w := range r.GetWorkers() {
		st.Workers = append(st.Workers, WorkerStats{Worker: w.GetWorker(), Applied: w.GetApplied(), Refused: w.GetRefused(), Duplicate: w.GetDuplicate(),
			NonFinite: w.GetNonFinite(), Registers: w.GetRegisters(), Done: w.GetDone(), Epoch: int(w.GetEpoch())})
	}
	return st, r.GetUnauthenticated()
}
