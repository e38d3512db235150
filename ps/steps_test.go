package ps

import "testing"

// TestGlobalSteps: the global step counts the batches of applied pushes:
// asynchronous ones when applied, a duplicate or refused one not at all,
// synchronous ones when their round closes; Register reports the count at
// the epoch's opening and the workers expected; SetSteps restores a count.
func TestGlobalSteps(t *testing.T) {
	delta := [][]float32{{0.1, 0.1, 0.1, 0.1}, {0, 0}}
	t.Run("asynchronous", func(t *testing.T) {
		p := newParams(t, model2(), WithWorkers(2))
		mustRegister(t, p, "a", "b")
		if _, err := p.OpenEpoch(1); err != nil {
			t.Fatal(err)
		}
		if _, err := p.PushBatches("a", 1<<32|1, 3, Delta, delta); err != nil {
			t.Fatal(err)
		}
		if res, err := p.PushBatches("a", 1<<32|1, 3, Delta, delta); err != nil || !res.Duplicate {
			t.Fatalf("second push of a step: %+v, %v; want a duplicate", res, err)
		}
		if _, err := p.PushBatches("b", 1<<32|1, 2, Delta, [][]float32{{1}, {1}}); err == nil {
			t.Fatal("a push of the wrong shape was applied")
		}
		if _, err := p.Push("b", 1<<32|2, Delta, delta); err != nil {
			t.Fatal(err)
		}
		if got := p.Stats().Steps; got != 3 {
			t.Fatalf("steps %d; want 3 (duplicates, refused pushes and pushes without batches count nothing)", got)
		}
		info, err := p.Register("a", 1)
		if err != nil {
			t.Fatal(err)
		}
		if info.EpochStep != 0 || info.Workers != 2 {
			t.Errorf("Register in epoch 1: EpochStep %d, Workers %d; want 0 and 2", info.EpochStep, info.Workers)
		}
		if _, err := p.OpenEpoch(2); err != nil {
			t.Fatal(err)
		}
		if _, err := p.PushBatches("b", 2<<32, 4, Delta, delta); err != nil {
			t.Fatal(err)
		}
		info, err = p.Register("a", 2)
		if err != nil {
			t.Fatal(err)
		}
		if info.EpochStep != 3 {
			t.Errorf("Register in epoch 2: EpochStep %d; want 3, the count when the epoch opened", info.EpochStep)
		}
		p.SetSteps(100)
		if st := p.Stats().Steps; st != 100 {
			t.Errorf("after SetSteps(100): %d", st)
		}
	})
	t.Run("synchronous", func(t *testing.T) {
		p := newParams(t, model2(), WithMode(Synchronous), WithWorkers(2))
		mustRegister(t, p, "a", "b")
		r := p.Version()
		if _, err := p.PushBatches("a", r, 5, Delta, delta); err != nil {
			t.Fatal(err)
		}
		if got := p.Stats().Steps; got != 0 {
			t.Fatalf("steps %d with the round open; want 0", got)
		}
		if _, err := p.PushBatches("b", r, 4, Delta, delta); err != nil {
			t.Fatal(err)
		}
		if got := p.Stats().Steps; got != 9 {
			t.Fatalf("steps %d after the round closed; want 9", got)
		}
	})
}
