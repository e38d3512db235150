package ps

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sync"
	"unsafe"

	"github.com/klauspost/compress/zstd"
)

// Encoding is how an update's float32 values travel on the wire. The values
// match pspb.Encoding.
type Encoding int32

const (
	// Dense sends every value as a little-endian float32.
	Dense Encoding = 0
	// BF16 sends every value as the upper 16 bits of its float32 (bfloat16),
	// rounded to nearest even: half the bytes, about 3 significant digits.
	BF16 Encoding = 1
	// Sparse sends only selected values as (index delta, float32) pairs over
	// the concatenation of all tensors; the rest count as zero. Only updates
	// (pushes) may be sparse.
	Sparse Encoding = 2
)

func (e Encoding) String() string {
	switch e {
	case Dense:
		return "dense"
	case BF16:
		return "bf16"
	case Sparse:
		return "sparse"
	}
	return fmt.Sprintf("Encoding(%d)", int32(e))
}

// Compression is the byte-level compression of a payload. The values match
// pspb.Compression.
type Compression int32

const (
	// NoCompression sends the payload as it is.
	NoCompression Compression = 0
	// Zstd compresses the whole payload with zstd (fastest level).
	Zstd Compression = 1
)

// errCorrupt reports a payload that does not decode.
var errCorrupt = errors.New("ps: corrupt payload")

// littleEndian is true when float32 slices can be copied to the wire as
// bytes; every platform Gophas ships for is little-endian.
var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// f32Bytes views f as its bytes.
func f32Bytes(f []float32) []byte {
	if len(f) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&f[0])), len(f)*4)
}

// appendDense appends xs as little-endian float32.
func appendDense(dst []byte, xs []float32) []byte {
	if littleEndian {
		return append(dst, f32Bytes(xs)...)
	}
	for _, x := range xs {
		dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(x))
	}
	return dst
}

// readDense fills dst from little-endian float32 bytes; len(src) must be
// 4*len(dst).
func readDense(dst []float32, src []byte) {
	if littleEndian {
		copy(f32Bytes(dst), src)
		return
	}
	for i := range dst {
		dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
	}
}

// toBF16 rounds x to bfloat16, nearest even; NaN stays NaN.
func toBF16(x float32) uint16 {
	b := math.Float32bits(x)
	if b&0x7fffffff > 0x7f800000 { // NaN: keep it quiet and NaN
		return uint16(b>>16) | 0x40
	}
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}

// fromBF16 widens a bfloat16 to float32 exactly.
func fromBF16(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// appendBF16 appends xs as little-endian bfloat16.
func appendBF16(dst []byte, xs []float32) []byte {
	for _, x := range xs {
		dst = binary.LittleEndian.AppendUint16(dst, toBF16(x))
	}
	return dst
}

// appendSparse appends the pairs (idx[i], val[i]); idx is strictly
// increasing over the concatenation of all tensors. Layout: uint32 count,
// count uint32 index deltas (the first is absolute), count float32 values.
func appendSparse(dst []byte, idx []uint32, val []float32) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(idx)))
	prev := uint32(0)
	for _, i := range idx {
		dst = binary.LittleEndian.AppendUint32(dst, i-prev)
		prev = i
	}
	return appendDense(dst, val)
}

// payloadSize is the decoded byte size of n values in encoding enc, or -1
// when it depends on the payload (sparse).
func payloadSize(enc Encoding, n int) int {
	switch enc {
	case Dense:
		return 4 * n
	case BF16:
		return 2 * n
	}
	return -1
}

// decodeValues decodes payload into dst, one slice per tensor with the
// lengths already set. Sparse payloads zero dst first.
func decodeValues(enc Encoding, payload []byte, dst [][]float32) error {
	total := 0
	for _, d := range dst {
		total += len(d)
	}
	switch enc {
	case Dense, BF16:
		if want := payloadSize(enc, total); len(payload) != want {
			return fmt.Errorf("%w: %s payload has %d bytes, want %d", errCorrupt, enc, len(payload), want)
		}
		off := 0
		for _, d := range dst {
			if enc == Dense {
				readDense(d, payload[off:off+4*len(d)])
				off += 4 * len(d)
				continue
			}
			for i := range d {
				d[i] = fromBF16(binary.LittleEndian.Uint16(payload[off:]))
				off += 2
			}
		}
		return nil
	case Sparse:
		if len(payload) < 4 {
			return fmt.Errorf("%w: sparse payload of %d bytes has no count", errCorrupt, len(payload))
		}
		n := int(binary.LittleEndian.Uint32(payload))
		if n > total || len(payload) != 4+8*n {
			return fmt.Errorf("%w: sparse payload of %d bytes cannot hold %d of %d values", errCorrupt, len(payload), n, total)
		}
		for _, d := range dst {
			clear(d)
		}
		deltas, vals := payload[4:4+4*n], payload[4+4*n:]
		t, base := 0, 0 // tensor holding the current index, and its offset
		idx := uint64(0)
		for k := range n {
			dlt := uint64(binary.LittleEndian.Uint32(deltas[4*k:]))
			if k > 0 && dlt == 0 {
				return fmt.Errorf("%w: sparse index %d repeats", errCorrupt, k)
			}
			idx += dlt
			if idx >= uint64(total) {
				return fmt.Errorf("%w: sparse index %d out of range %d", errCorrupt, idx, total)
			}
			for int(idx) >= base+len(dst[t]) {
				base += len(dst[t])
				t++
			}
			dst[t][int(idx)-base] = math.Float32frombits(binary.LittleEndian.Uint32(vals[4*k:]))
		}
		return nil
	}
	return fmt.Errorf("%w: unknown encoding %d", errCorrupt, int32(enc))
}

var zenc, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))

// zdecs holds streaming zstd decoders (synchronous, one goroutine each).
var zdecs = sync.Pool{New: func() any {
	d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(MaxPayload))
	if err != nil {
		panic(err) // only bad options fail
	}
	return d
}}

// compress applies c to payload.
func compress(c Compression, payload []byte) ([]byte, error) {
	switch c {
	case NoCompression:
		return payload, nil
	case Zstd:
		return zenc.EncodeAll(payload, make([]byte, 0, len(payload)/2)), nil
	}
	return nil, fmt.Errorf("ps: unknown compression %d", int32(c))
}

// decompress undoes c; rawSize is the size the sender declared and limit
// the most the receiver can expect (the size of the tensors in the header,
// or of the largest blob it takes). A declared size above limit is refused
// before anything is allocated, and zstd output is read no further than the
// declared size, so a small payload cannot make the receiver allocate more
// than it really decompresses to, nor more than limit.
func decompress(c Compression, payload []byte, rawSize, limit uint64) ([]byte, error) {
	switch c {
	case NoCompression:
		if uint64(len(payload)) != rawSize {
			return nil, fmt.Errorf("%w: %d bytes, declared %d", errCorrupt, len(payload), rawSize)
		}
		return payload, nil
	case Zstd:
		if rawSize > limit || rawSize > MaxPayload {
			return nil, fmt.Errorf("%w: declared size %d exceeds the %d bytes expected", errCorrupt, rawSize, min(limit, MaxPayload))
		}
		return unzstd(payload, rawSize)
	}
	return nil, fmt.Errorf("%w: unknown compression %d", errCorrupt, int32(c))
}

// unzstd decompresses payload, which must hold exactly rawSize bytes. The
// output buffer starts at most 16 times the payload and doubles as data
// arrives, never beyond rawSize.
func unzstd(payload []byte, rawSize uint64) ([]byte, error) {
	d := zdecs.Get().(*zstd.Decoder)
	defer func() {
		_ = d.Reset(nil)
		zdecs.Put(d)
	}()
	if err := d.Reset(bytes.NewReader(payload)); err != nil {
		return nil, fmt.Errorf("%w: zstd: %w", errCorrupt, err)
	}
	// Dense, bf16 and sparse updates compress far less than 16:1, so they
	// take one allocation; a payload claiming more grows as it proves it.
	out := make([]byte, 0, min(rawSize, 16*uint64(len(payload))+64<<10))
	for {
		if len(out) == cap(out) {
			if uint64(len(out)) == rawSize {
				var one [1]byte
				n, err := io.ReadFull(d, one[:])
				if n > 0 {
					return nil, fmt.Errorf("%w: zstd gives more than the declared %d bytes", errCorrupt, rawSize)
				}
				if !errors.Is(err, io.EOF) {
					return nil, fmt.Errorf("%w: zstd: %w", errCorrupt, err)
				}
				return out, nil
			}
			out = slices.Grow(out, int(min(rawSize-uint64(len(out)), uint64(len(out)))))
			out = out[:len(out):min(uint64(cap(out)), rawSize)]
		}
		n, err := d.Read(out[len(out):cap(out)])
		out = out[:len(out)+n]
		if errors.Is(err, io.EOF) {
			if uint64(len(out)) != rawSize {
				return nil, fmt.Errorf("%w: zstd gave %d bytes, declared %d", errCorrupt, len(out), rawSize)
			}
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%w: zstd: %w", errCorrupt, err)
		}
	}
}

// MaxPayload bounds one pull, push or model blob (2 GiB less one byte): a
// corrupt size field cannot make the server allocate without bound.
const MaxPayload = math.MaxInt32
