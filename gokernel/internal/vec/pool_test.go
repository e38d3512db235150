package vec

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// poolRows draws two input rows of 2·outW positions of ch channels, with
// ties (so the first maximum must win) and, with specials, zeros, NaN and
// infinities.
func poolRows(rng *rand.Rand, outW, ch int, specials bool) (r0, r1 []float32) {
	n := 2 * outW * ch
	r0, r1 = draw(rng, n, specials), draw(rng, n, specials)
	for i := range r0 {
		switch rng.IntN(8) {
		case 0:
			r1[i] = r0[i]
		case 1:
			r0[i], r1[i] = 1, 1
		}
	}
	return r0, r1
}

func TestMaxPool2(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 1))
	for _, ch := range []int{1, 3, 8, 16, 32, 40, 64} {
		for _, outW := range []int{1, 2, 13} {
			for _, specials := range []bool{false, true} {
				t.Run(fmt.Sprintf("ch=%d/outW=%d/specials=%v", ch, outW, specials), func(t *testing.T) {
					r0, r1 := poolRows(rng, outW, ch, specials)
					nb := outW * ArgBytes(ch)
					got, want := make([]float32, outW*ch), make([]float32, outW*ch)
					gotArg, wantArg := make([]byte, nb), make([]byte, nb)
					for i := range gotArg {
						gotArg[i], wantArg[i] = 0xa5, 0x5a // stale codes are overwritten
					}
					MaxPool2(got, gotArg, r0, r1, outW, ch)
					MaxPool2Ref(want, wantArg, r0, r1, outW, ch)
					sameSlices(t, "y", got, want)
					for i := range wantArg {
						if gotArg[i] != wantArg[i] {
							t.Fatalf("arg[%d]: got %08b; want %08b", i, gotArg[i], wantArg[i])
						}
					}
					noArg := make([]float32, outW*ch)
					MaxPool2(noArg, nil, r0, r1, outW, ch)
					sameSlices(t, "y without codes", noArg, want)

					dy := draw(rng, outW*ch, specials)
					gd0, gd1 := draw(rng, 2*outW*ch, false), draw(rng, 2*outW*ch, false) // stale values are overwritten
					wd0, wd1 := make([]float32, 2*outW*ch), make([]float32, 2*outW*ch)
					MaxPool2Back(gd0, gd1, dy, gotArg, outW, ch)
					MaxPool2BackRef(wd0, wd1, dy, wantArg, outW, ch)
					sameSlices(t, "dx0", gd0, wd0)
					sameSlices(t, "dx1", gd1, wd1)
				})
			}
		}
	}
}

// TestMaxPool2Ref checks the reference against the definition: y is the
// first maximal tap in the order a, b, d, e, and the backward pass sends
// dy there.
func TestMaxPool2Ref(t *testing.T) {
	// One position, three channels: the maximum at b, a tie of a and e
	// (a wins), and the maximum at e.
	r0 := []float32{1, 5, 0, 2, 1, 0}
	r1 := []float32{0, 0, 0, 1, 5, 7}
	y, arg := make([]float32, 3), make([]byte, ArgBytes(3))
	MaxPool2Ref(y, arg, r0, r1, 1, 3)
	sameSlices(t, "y", y, []float32{2, 5, 7})
	// codes 1, 0, 3: low bits 0b101, high bits 0b100.
	if arg[0] != 0b101 || arg[1] != 0b100 {
		t.Fatalf("codes: got %03b %03b; want 101 100", arg[0], arg[1])
	}
	dx0, dx1 := make([]float32, 6), make([]float32, 6)
	MaxPool2BackRef(dx0, dx1, []float32{10, 20, 30}, arg, 1, 3)
	sameSlices(t, "dx0", dx0, []float32{0, 20, 0, 10, 0, 0})
	sameSlices(t, "dx1", dx1, []float32{0, 0, 0, 0, 0, 30})
}
