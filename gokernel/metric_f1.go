package gokernel

import "math"

// f1Metric is F1Score. An output is predicted positive when it is above the
// threshold or, without one, when it is its sample's largest (and not
// 0); the target's value counts as given (0 or 1 for one-hot targets). Per
// class j (or over every class at once with average "micro"):
//
//	precision = tp/(tp + fp + ε),  recall = tp/(tp + fn + ε)
//	f1 = 2·precision·recall/(precision + recall + ε)
//	macro, micro  the mean over the classes;  weighted  Σ f1_j·w_j/(Σ w + ε), w_j = Σ y_j
//
// State: tp, fp, fn and Σy per class (one of each for micro). average None
// (one value per class) is not supported.
var f1Metric = metricDef{
	name: "f1_score", class: "F1Score",
	make: func(cfg *obj) (rowMetric, metricState, error) {
		f := f1{threshold: math.NaN()}
		avg, err := cfgStr(cfg, "average", "")
		if err != nil {
			return nil, nil, err
		}
		switch avg {
		case "micro", "macro", "weighted":
			f.average = avg
		case "":
			return nil, nil, metricError(cfg, "F1Score average None gives one value per class, which a History key cannot hold: use average \"macro\", \"micro\" or \"weighted\"")
		default:
			return nil, nil, metricError(cfg, "average %q is not supported (micro, macro and weighted are)", avg)
		}
		if cfg != nil && !isNull(cfg.get("threshold")) {
			if f.threshold, err = cfg.num("threshold", 0); err != nil {
				return nil, nil, err
			}
		}
		if err := cfgMustBe(cfg, "beta", "1", "1.0"); err != nil {
			return nil, nil, err
		}
		return nil, f, nil
	},
}

type f1 struct {
	average   string
	threshold float64 // NaN: the sample's maximum
}

func (f f1) classes(m int) int {
	if f.average == "micro" {
		return 1
	}
	return m
}

func (f f1) size(m int) int { return 4 * f.classes(m) }

func (f f1) add(s []float64, out, y []float32, rows, m int) {
	c := f.classes(m)
	tp, fp, fn, w := s[:c], s[c:2*c], s[2*c:3*c], s[3*c:4*c]
	for r := 0; r < rows; r++ {
		p, t := out[r*m:(r+1)*m], y[r*m:(r+1)*m]
		mx := p[0]
		for _, v := range p {
			mx = max(mx, v)
		}
		for j, v := range p {
			var pred float64
			if math.IsNaN(f.threshold) {
				if v >= mx && math.Abs(float64(v)) > 1e-9 {
					pred = 1
				}
			} else if float64(v) > f.threshold {
				pred = 1
			}
			k := j
			if c == 1 {
				k = 0
			}
			tv := float64(t[j])
			tp[k] += pred * tv
			fp[k] += pred * (1 - tv)
			fn[k] += (1 - pred) * tv
			w[k] += tv
		}
	}
}

func (f f1) result(s []float64, m int) float64 {
	c := f.classes(m)
	tp, fp, fn, w := s[:c], s[c:2*c], s[2*c:3*c], s[3*c:4*c]
	var total, wsum float64
	for k := range c {
		prec := tp[k] / (tp[k] + fp[k] + epsilon)
		rec := tp[k] / (tp[k] + fn[k] + epsilon)
		score := 2 * prec * rec / (prec + rec + epsilon)
		if f.average == "weighted" {
			total += score * w[k]
			wsum += w[k]
		} else {
			total += score
		}
	}
	if f.average == "weighted" {
		return total / (wsum + epsilon)
	}
	return total / float64(c)
}
