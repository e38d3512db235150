package rules

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// server plays a parameter server that only this worker pushes to: a pull
// returns its version, a push moves it on by one (asynchronous: applied;
// synchronous: the round closes, the worker being the last to push).
type server struct {
	version uint64
	pushed  []uint64
}

// render writes an action with epoch steps as e<epoch>.<batch>.
func render(a Action) string {
	switch a.Kind {
	case Push, Wait:
		if a.Step >= 1<<32 {
			return fmt.Sprintf("%s:e%d.%d", a.Kind, a.Step>>32, a.Step&(1<<32-1))
		}
	case Fail:
		return "fail"
	}
	return a.String()
}

// play runs a task of n batches through the rules against s and returns
// the trace, one bracket per batch and one for the end, and the first
// failure.
func play(c Config, n int, s *server) (string, error) {
	w := New(c)
	var trace []string
	run := func(label string, a Action) error {
		var acts []string
		for {
			acts = append(acts, render(a))
			switch a.Kind {
			case Pull:
				a = w.Pulled(s.version)
				continue
			case Train:
				a = w.Trained()
				continue
			case Push:
				s.pushed = append(s.pushed, a.Step)
				s.version++
				a = w.Pushed()
				continue
			case Wait:
				if s.version <= a.Step {
					return fmt.Errorf("waiting for round %d at version %d", a.Step, s.version)
				}
			case Fail:
				trace = append(trace, label+"["+strings.Join(acts, " ")+"]")
				return a.Err
			}
			break
		}
		trace = append(trace, label+"["+strings.Join(acts, " ")+"]")
		return nil
	}
	for b := range n {
		if err := run(fmt.Sprint("b", b), w.Begin(b)); err != nil {
			return strings.Join(trace, " "), err
		}
	}
	err := run("end", w.End())
	return strings.Join(trace, " "), err
}

const e2 = 2 << 32 // the step of epoch 2's epoch push

// TestRules plays every mode × frequency × (fresh, retried, late) case, and
// the empty partition, against a one-worker server. Asynchronous and
// hogwild follow the same rules (the server applies their pushes
// differently), so the synchronous flag covers both.
func TestRules(t *testing.T) {
	for _, tt := range []struct {
		name    string
		c       Config
		batches int
		want    string
		err     string // the failure, if any
		skipped string
	}{
		// synchronous, batch: batch b is round 7+b
		{"sync/batch/fresh", Config{Synchronous: true, PerBatch: true, Epoch: 2, Round: 7, Version: 7}, 3,
			"b0[train:reset push:7 wait:7] b1[pull train:reset push:8 wait:8] b2[pull train:reset push:9 wait:9] end[done]", "", ""},
		{"sync/batch/retried", Config{Synchronous: true, PerBatch: true, Epoch: 2, Round: 7, Version: 9, Rejoin: true, HasPushed: true, LastStep: 8}, 3,
			"b0[skip] b1[skip] b2[train:reset push:9 wait:9] end[done]", "", "2 rounds closed without this attempt"},
		{"sync/batch/retried, round open", Config{Synchronous: true, PerBatch: true, Epoch: 2, Round: 7, Version: 7, Rejoin: true, HasPushed: true, LastStep: 7}, 1,
			"b0[train:reset push:7 wait:7] end[done]", "", ""},
		{"sync/batch/late", Config{Synchronous: true, PerBatch: true, Epoch: 2, Round: 7, Version: 9}, 3,
			"b0[fail]", "epoch 2, batch 1: cannot join the round 7: it closed without this worker (the driver is at version 9) and this is not a retried task", ""},
		{"sync/batch/empty", Config{Synchronous: true, PerBatch: true, Epoch: 2, Round: 7, Version: 7}, 0, "end[done]", "", ""},

		// synchronous, epoch: one push to the epoch's round
		{"sync/epoch/fresh", Config{Synchronous: true, Epoch: 2, Round: 7, Version: 7}, 3,
			"b0[train done] b1[train done] b2[train done] end[push:7 done]", "", ""},
		{"sync/epoch/retried", Config{Synchronous: true, Epoch: 2, Round: 7, Version: 8, Rejoin: true, HasPushed: true, LastStep: 7}, 3,
			"b0[skip] b1[skip] b2[skip] end[done]", "", "the epoch was applied by an earlier attempt"},
		{"sync/epoch/retried, round open", Config{Synchronous: true, Epoch: 2, Round: 7, Version: 7, Rejoin: true}, 2,
			"b0[train done] b1[train done] end[push:7 done]", "", ""},
		{"sync/epoch/late", Config{Synchronous: true, Epoch: 2, Round: 7, Version: 8}, 3,
			"b0[fail]", "epoch 2, batch 1: cannot join the round 7", ""},
		{"sync/epoch/empty", Config{Synchronous: true, Epoch: 2, Round: 7, Version: 7}, 0, "end[done]", "", ""},

		// asynchronous or hogwild, batch: pull, train, push epoch<<32 | b+1
		{"async/batch/fresh", Config{PerBatch: true, Epoch: 2, Version: 5, HasPushed: true, LastStep: 1<<32 | 3}, 2,
			"b0[pull train:reset push:e2.1 done] b1[pull train:reset push:e2.2 done] end[done]", "", ""},
		{"async/batch/retried", Config{PerBatch: true, Epoch: 2, Version: 9, Rejoin: true, HasPushed: true, LastStep: e2 | 2}, 3,
			"b0[skip] b1[skip] b2[pull train:reset push:e2.3 done] end[done]", "", "2 batches applied by an earlier attempt"},
		{"async/batch/late", Config{PerBatch: true, Epoch: 2, Version: 500}, 2,
			"b0[pull train:reset push:e2.1 done] b1[pull train:reset push:e2.2 done] end[done]", "", ""},
		{"async/batch/empty", Config{PerBatch: true, Epoch: 2, Version: 5}, 0, "end[done]", "", ""},

		// asynchronous or hogwild, epoch: one push with step epoch<<32
		{"async/epoch/fresh", Config{Epoch: 2, Version: 3, HasPushed: true, LastStep: 1 << 32}, 2,
			"b0[train done] b1[train done] end[push:e2.0 done]", "", ""},
		{"async/epoch/retried", Config{Epoch: 2, Version: 4, Rejoin: true, HasPushed: true, LastStep: e2}, 2,
			"b0[skip] b1[skip] end[done]", "", "the epoch was applied by an earlier attempt"},
		{"async/epoch/retried before its push", Config{Epoch: 2, Version: 3, Rejoin: true, HasPushed: true, LastStep: 1 << 32}, 1,
			"b0[train done] end[push:e2.0 done]", "", ""},
		{"async/epoch/late", Config{Epoch: 2, Version: 300}, 2,
			"b0[train done] b1[train done] end[push:e2.0 done]", "", ""},
		{"async/epoch/empty", Config{Epoch: 2, Version: 3}, 0, "end[done]", "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := &server{version: tt.c.Version}
			got, err := play(tt.c, tt.batches, s)
			if got != tt.want {
				t.Errorf("trace:\n got  %s\n want %s", got, tt.want)
			}
			switch {
			case tt.err == "" && err != nil:
				t.Errorf("error %v; want none", err)
			case tt.err != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.err) || !errors.Is(err, ErrCannotJoin)):
				t.Errorf("error %v; want ErrCannotJoin starting %q", err, tt.err)
			}
			w := New(tt.c)
			for b := range tt.batches {
				if a := w.Begin(b); a.Kind == Pull {
					w.Pulled(tt.c.Version)
				}
			}
			if got := w.Skipped(); got != tt.skipped && tt.err == "" {
				t.Errorf("Skipped() = %q; want %q", got, tt.skipped)
			}
		})
	}
}

// TestRulesDriverBehind: a synchronous batch whose round the driver has not
// opened (the worker is ahead of the server) fails, naming the round.
func TestRulesDriverBehind(t *testing.T) {
	w := New(Config{Synchronous: true, PerBatch: true, Epoch: 1, Round: 4, Version: 4})
	w.Begin(0)
	w.Trained()
	w.Pushed()
	if a := w.Begin(1); a.Kind != Pull {
		t.Fatalf("batch 2: %v; want pull", a)
	}
	a := w.Pulled(4)
	if a.Kind != Fail || a.Err.Error() != "batch 2: round 5 is not open: the driver is at version 4" {
		t.Errorf("pulled version 4 for round 5: %v; want a failure naming the round", a)
	}
}
