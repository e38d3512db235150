package gokernel

import "math"

// activityReg is Keras' ActivityRegularization: y = x, and the loss gains
// a penalty on the batch's values, divided by the batch size as Keras 3
// divides every activity regularizer's penalty:
//
//	P = (l1·Σ|x| + l2·Σx²) / rows
//	dx = dy + (l1·sign(x) + 2·l2·x) / rows
//
// in training and inference alike (Keras adds it to evaluate's loss too).
type activityReg struct {
	l1, l2 float64
}

func parseActivityReg(c *obj) (Layer, error) {
	l := &activityReg{}
	var err error
	if l.l1, err = c.num("l1", 0); err != nil {
		return nil, err
	}
	if l.l2, err = c.num("l2", 0); err != nil {
		return nil, err
	}
	if l.l1 < 0 || l.l2 < 0 {
		return nil, c.errf("l1 %v and l2 %v must not be negative", l.l1, l.l2)
	}
	return l, nil
}

func (l *activityReg) outputShapes(in [][]int) ([][]int, error) {
	s, err := oneInput(in)
	return [][]int{s}, err
}

func (l *activityReg) weights([][]int) []weightSpec { return nil }

func (l *activityReg) forward(c *call) { c.y[0] = c.x[0] }

func (l *activityReg) addedLoss(c *call) float64 {
	var a, b float64
	for _, v := range c.x[0][:c.n(0)] {
		a += math.Abs(float64(v))
		b += float64(v) * float64(v)
	}
	return (l.l1*a + l.l2*b) / float64(c.rows)
}

func (l *activityReg) backward(c *call) {
	dx := c.dx[0]
	if dx == nil {
		return
	}
	l1, l2 := float32(l.l1/float64(c.rows)), float32(2*l.l2/float64(c.rows))
	for i, v := range c.x[0][:len(dx)] {
		d := c.dy[0][i] + l2*v
		if v > 0 {
			d += l1
		} else if v < 0 {
			d -= l1
		}
		dx[i] = d
	}
}

// outputMasks: ActivityRegularization passes its input's mask on (Keras' supports_masking).
func (l *activityReg) outputMasks([]bool) []int { return passMask(1) }
