package ps

import (
	"errors"
	"math"
	"slices"
	"testing"
)

func TestBF16(t *testing.T) {
	tests := []struct {
		in   float32
		want float32
	}{
		{1, 1},
		{-2.5, -2.5},
		{0, 0},
		{1.00390625, 1},        // exactly half way: round to even
		{1.01171875, 1.015625}, // half way, odd below: round up
		{3.14159265, 3.140625},
		{float32(math.Inf(1)), float32(math.Inf(1))},
	}
	for _, tt := range tests {
		if got := fromBF16(toBF16(tt.in)); got != tt.want {
			t.Errorf("bf16(%v) = %v; want %v", tt.in, got, tt.want)
		}
	}
	if got := fromBF16(toBF16(float32(math.NaN()))); !math.IsNaN(float64(got)) {
		t.Errorf("bf16(NaN) = %v; want NaN", got)
	}
}

func TestDecodeValuesRoundTrip(t *testing.T) {
	src := [][]float32{{1, -2, 0, 4.5}, {}, {0, 0, 7}}
	sizes := func() [][]float32 { return [][]float32{make([]float32, 4), nil, make([]float32, 3)} }
	var dense, bf []byte
	for _, s := range src {
		dense = appendDense(dense, s)
		bf = appendBF16(bf, s)
	}
	sparse := appendSparse(nil, []uint32{0, 1, 3, 6}, []float32{1, -2, 4.5, 7})
	for _, tt := range []struct {
		name    string
		enc     Encoding
		payload []byte
	}{{"dense", Dense, dense}, {"bf16", BF16, bf}, {"sparse", Sparse, sparse}} {
		for _, comp := range []Compression{NoCompression, Zstd} {
			wire, err := compress(comp, tt.payload)
			if err != nil {
				t.Fatal(err)
			}
			raw, err := decompress(comp, wire, uint64(len(tt.payload)), uint64(len(tt.payload)))
			if err != nil {
				t.Fatalf("%s/%d: decompress: %v", tt.name, comp, err)
			}
			dst := sizes()
			if err := decodeValues(tt.enc, raw, dst); err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			for i := range src {
				if !slices.Equal(dst[i], src[i]) {
					t.Errorf("%s/%d: tensor %d = %v; want %v", tt.name, comp, i, dst[i], src[i])
				}
			}
		}
	}
}

func TestDecodeValuesRefusesCorrupt(t *testing.T) {
	tests := []struct {
		name    string
		enc     Encoding
		payload []byte
	}{
		{"dense short", Dense, make([]byte, 27)},
		{"bf16 long", BF16, make([]byte, 16)},
		{"sparse no count", Sparse, []byte{1}},
		{"sparse count too big", Sparse, appendSparse(nil, []uint32{0, 1, 2, 3, 4, 5, 6, 7}, make([]float32, 8))},
		{"sparse index out of range", Sparse, appendSparse(nil, []uint32{7}, []float32{1})},
		{"sparse repeated index", Sparse, appendSparse(nil, []uint32{2, 2}, []float32{1, 1})},
		{"unknown encoding", Encoding(9), nil},
	}
	for _, tt := range tests {
		err := decodeValues(tt.enc, tt.payload, [][]float32{make([]float32, 4), make([]float32, 3)})
		if !errors.Is(err, errCorrupt) {
			t.Errorf("%s: decodeValues = %v; want errCorrupt", tt.name, err)
		}
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	p := newParams(t, model2())
	for _, enc := range []Encoding{Dense, BF16} {
		for _, comp := range []Compression{NoCompression, Zstd} {
			s, err := p.Snapshot(enc, comp)
			if err != nil {
				t.Fatal(err)
			}
			if again, _ := p.Snapshot(enc, comp); again != s {
				t.Errorf("%v/%d: second Snapshot of one version was rebuilt; want it shared", enc, comp)
			}
			ts, err := DecodeSnapshot(s)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := flat(ts), flat(model2()); !slices.Equal(got, want) || ts[0].Name != "dense/kernel" {
				t.Errorf("%v/%d: decoded %v; want %v", enc, comp, got, want)
			}
		}
	}
}

func TestFirstNonFinite(t *testing.T) {
	vals := []float32{0, -0, 1, -1, math.MaxFloat32, -math.MaxFloat32, math.SmallestNonzeroFloat32,
		float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), math.Float32frombits(0xffc00001), math.Float32frombits(0x7f800001)}
	for _, v := range vals {
		want := -1
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			want = 2
		}
		if got := firstNonFinite([]float32{1, 2, v, 3}); got != want {
			t.Errorf("firstNonFinite([1 2 %v 3]) = %d; want %d", v, got, want)
		}
	}
}
