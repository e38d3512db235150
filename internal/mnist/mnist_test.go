package mnist

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gophas/gophas/internal/fixture"
)

func TestLoad(t *testing.T) {
	dir, err := fixture.MNISTDir()
	if err != nil {
		t.Fatal(err)
	}
	train, test, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if train.N != 60000 || test.N != 10000 {
		t.Fatalf("got %d train, %d test images; want 60000, 10000", train.N, test.N)
	}
	// The first training image is a 5 and the first test image a 7.
	if got := train.Labels[0]; got != 5 {
		t.Errorf("train label 0: got %d; want 5", got)
	}
	if got := test.Labels[0]; got != 7 {
		t.Errorf("test label 0: got %d; want 7", got)
	}
	var counts [Classes]int
	for _, l := range train.Labels {
		counts[l]++
	}
	// The training set has 5923 zeros and 6742 ones.
	if counts[0] != 5923 || counts[1] != 6742 {
		t.Errorf("label counts: got %v", counts)
	}
	for i, p := range train.Images[:Width*100] {
		if p < 0 || p > 1 {
			t.Fatalf("pixel %d = %v, outside [0,1]", i, p)
		}
	}
	s := test.Slice(10, 20)
	if s.N != 10 || len(s.Images) != 10*Width || s.Labels[0] != test.Labels[10] {
		t.Errorf("Slice(10, 20) = N %d, %d pixels, label %d", s.N, len(s.Images), s.Labels[0])
	}
	oh := s.OneHot()
	for i, l := range s.Labels {
		for c := 0; c < Classes; c++ {
			want := float32(0)
			if c == int(l) {
				want = 1
			}
			if oh[i*Classes+c] != want {
				t.Fatalf("OneHot row %d col %d: got %v; want %v", i, c, oh[i*Classes+c], want)
			}
		}
	}
}

func writeIDX(t *testing.T, path string, magic uint32, dims []uint32, body []byte) {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	binary.Write(zw, binary.BigEndian, magic)
	for _, d := range dims {
		binary.Write(zw, binary.BigEndian, d)
	}
	zw.Write(body)
	zw.Close()
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoadSetErrors(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "img.gz")
	lab := filepath.Join(dir, "lab.gz")
	writeIDX(t, img, 0x0803, []uint32{2, 28, 28}, make([]byte, 2*Width))
	tests := []struct {
		name  string
		magic uint32
		dims  []uint32
		body  []byte
		want  string
	}{
		{"bad magic", 0x0802, []uint32{2}, []byte{1, 2}, "magic number"},
		{"count mismatch", 0x0801, []uint32{3}, []byte{1, 2, 3}, "want [2]"},
		{"not a digit", 0x0801, []uint32{2}, []byte{1, 12}, "label 12 of row 1"},
		{"truncated", 0x0801, []uint32{2}, []byte{1}, "reading 2 labels"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			writeIDX(t, lab, tt.magic, tt.dims, tt.body)
			_, err := LoadSet(img, lab)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got error %v; want one containing %q", err, tt.want)
			}
		})
	}
	if _, err := LoadSet(filepath.Join(dir, "missing.gz"), lab); err == nil || !strings.HasPrefix(err.Error(), "mnist: ") {
		t.Fatalf("missing file: got %v", err)
	}
}
