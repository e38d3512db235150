package gokernel

import "fmt"

// batchLoss is a loss over a batch of rows×m outputs out and targets y: it
// returns Σ over the rows of the per-sample loss and, when g is not nil,
// sets g = scale·∂(Σ loss)/∂out. Each loss of lossTable is one; they see
// only arrays, so they apply to any output of any model.
type batchLoss func(out, y []float32, rows, m int, g []float32, scale float64) float64

// rowLoss is a per-sample loss: L of one output row p and target row y and,
// when g is not nil, g = scale·∂L/∂p.
type rowLoss func(p, y, g []float32, scale float64) float64

// batch applies f to every row.
func (f rowLoss) batch(out, y []float32, rows, m int, g []float32, scale float64) float64 {
	var total float64
	for r := 0; r < rows; r++ {
		var gr []float32
		if g != nil {
			gr = g[r*m : (r+1)*m]
		}
		total += f(out[r*m:(r+1)*m], y[r*m:(r+1)*m], gr, scale)
	}
	return total
}

// lossDef is one Keras loss of lossTable: its names, the arguments its
// class config takes (beyond name, reduction and dtype), and the function
// for given arguments.
type lossDef struct {
	name    string   // Keras' function name, what Spec.Loss reports
	class   string   // Keras' class name
	aliases []string // other names Keras (3, or 2) takes for it
	// labels is what a row's label must be (Spec.LabelKind): "" for Value;
	// Categorical (one-hot rows, or class indexes one-hot encoded) for the
	// categorical focal and hinge losses; Binary for the binary focal loss.
	labels  LabelKind
	logits  bool // from_logits
	smooth  bool // label_smoothing
	axis    bool // axis (-1 only)
	focal   bool // alpha (default 0.25), gamma (default 2)
	balance bool // apply_class_balancing
	make    func(l *lossSpec) batchLoss
}

// lossTable lists the losses beyond the cross-entropies and the squared,
// absolute and Huber errors of loss.go; kind len(lossNames)+i is entry i.
var lossTable = []*lossDef{
	&mapeLoss,
	&msleLoss,
	&logCoshLoss,
	&poissonLoss,
	&kldLoss,
	&hingeLoss,
	&squaredHingeLoss,
	&categoricalHingeLoss,
	&cosineLoss,
	&categoricalFocalLoss,
	&binaryFocalLoss,
}

// tableLoss finds a loss of lossTable by function, class or alias name.
func tableLoss(name string) (*lossDef, lossKind) {
	for i, d := range lossTable {
		if name == d.name || name == d.class {
			return d, lossKind(len(lossNames) + i)
		}
		for _, a := range d.aliases {
			if name == a {
				return d, lossKind(len(lossNames) + i)
			}
		}
	}
	return nil, 0
}

// setDefaults gives l the default arguments of d and its function.
func (d *lossDef) setDefaults(l *lossSpec) error {
	if d.focal {
		l.alpha, l.gamma = 0.25, 2
	}
	l.fn = d.make(l)
	return nil
}

// parseArgs reads the arguments of d's class config into l.
func (d *lossDef) parseArgs(cfg *obj, l *lossSpec) error {
	d.setDefaults(l)
	var err error
	if d.logits {
		if l.fromLogits, err = cfg.boolean("from_logits", false); err != nil {
			return err
		}
	}
	if d.smooth {
		if l.smoothing, err = smoothing(cfg); err != nil {
			return err
		}
	}
	if d.axis {
		if err := cfg.mustBe("axis", "-1"); err != nil {
			return err
		}
	}
	if d.focal {
		if l.alpha, err = cfg.num("alpha", 0.25); err != nil {
			return err
		}
		if l.gamma, err = cfg.num("gamma", 2); err != nil {
			return err
		}
		if l.gamma < 0 {
			return cfg.errf("gamma %v must not be negative", l.gamma)
		}
	}
	if d.balance {
		if l.balance, err = cfg.boolean("apply_class_balancing", false); err != nil {
			return err
		}
	}
	l.fn = d.make(l)
	if l.fn == nil {
		return fmt.Errorf("gokernel: loss %s: no function", d.name)
	}
	return nil
}
