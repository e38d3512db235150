package ps

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// benchModel is one tensor of n float32 values.
func benchModel(n int) []NamedTensor {
	r := rand.New(rand.NewPCG(1, 2))
	d := make([]float32, n)
	for i := range d {
		d[i] = float32(r.NormFloat64()) * 0.05
	}
	return []NamedTensor{{Name: "w", Shape: []int{n}, Data: d}}
}

var benchSizes = []struct {
	name string
	n    int
}{{"100k", 100_000}, {"1M", 1_000_000}, {"10M", 10_000_000}}

func BenchmarkPull(b *testing.B) {
	for _, sz := range benchSizes {
		b.Run("params="+sz.name, func(b *testing.B) {
			_, addr := serve(b, newParams(b, benchModel(sz.n)))
			c := dial(b, addr, testToken)
			ctx := context.Background()
			if _, err := c.Register(ctx, "w", 0); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(4 * sz.n))
			for b.Loop() {
				if _, _, _, err := c.Pull(ctx, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkPush(b *testing.B) {
	for _, sz := range benchSizes {
		b.Run("params="+sz.name, func(b *testing.B) {
			m := benchModel(sz.n)
			_, addr := serve(b, newParams(b, m))
			c := dial(b, addr, testToken)
			ctx := context.Background()
			if _, err := c.Register(ctx, "w", 0); err != nil {
				b.Fatal(err)
			}
			update := [][]float32{benchModel(sz.n)[0].Data}
			shapes := infos(m)
			b.SetBytes(int64(4 * sz.n))
			step := uint64(0)
			for b.Loop() {
				step++
				if _, err := c.Push(ctx, step, Delta, shapes, update); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSyncRound measures one synchronous round of a 10k-parameter model:
// every worker pushes, waits for the round, and pulls the new weights.
func BenchmarkSyncRound(b *testing.B) {
	for _, workers := range []int{2, 8, 32} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			m := benchModel(10_000)
			p := newParams(b, m, WithMode(Synchronous), WithWorkers(workers), WithRoundTimeout(time.Minute))
			_, addr := serve(b, p)
			ctx := context.Background()
			clients := make([]*Client, workers)
			for i := range clients {
				clients[i] = dial(b, addr, testToken)
				if _, err := clients[i].Register(ctx, fmt.Sprint("w", i), 0); err != nil {
					b.Fatal(err)
				}
			}
			update := [][]float32{benchModel(10_000)[0].Data}
			shapes := infos(m)
			for b.Loop() {
				v := p.Version()
				var wg sync.WaitGroup
				for _, c := range clients {
					wg.Go(func() {
						if _, err := c.Push(ctx, v, Delta, shapes, update); err != nil {
							b.Error(err)
							return
						}
						if _, err := c.WaitRound(ctx, v); err != nil {
							b.Error(err)
							return
						}
						if _, _, _, err := c.Pull(ctx, v); err != nil {
							b.Error(err)
						}
					})
				}
				wg.Wait()
			}
		})
	}
}

// BenchmarkAsyncPushes measures asynchronous pushes of a 100k-parameter
// model from 8 concurrent clients.
func BenchmarkAsyncPushes(b *testing.B) {
	const clients, n = 8, 100_000
	m := benchModel(n)
	_, addr := serve(b, newParams(b, m, WithMode(Asynchronous)))
	ctx := context.Background()
	cs := make([]*Client, clients)
	for i := range cs {
		cs[i] = dial(b, addr, testToken)
		if _, err := cs[i].Register(ctx, fmt.Sprint("w", i), 0); err != nil {
			b.Fatal(err)
		}
	}
	update := [][]float32{benchModel(n)[0].Data}
	shapes := infos(m)
	step := uint64(0)
	start := time.Now()
	for b.Loop() {
		step++
		var wg sync.WaitGroup
		for _, c := range cs {
			wg.Go(func() {
				if _, err := c.Push(ctx, step, Delta, shapes, update); err != nil {
					b.Error(err)
				}
			})
		}
		wg.Wait()
	}
	b.ReportMetric(float64(clients*b.N)/time.Since(start).Seconds(), "pushes/s")
}

// BenchmarkTransfer pushes a 1M-parameter delta in each wire format;
// wire-B/op is the payload that crossed the network.
func BenchmarkTransfer(b *testing.B) {
	const n = 1_000_000
	formats := []struct {
		name string
		opts []ClientOption
	}{
		{"dense", nil},
		{"zstd", []ClientOption{WithCompression(Zstd)}},
		{"bf16", []ClientOption{WithPushEncoding(BF16)}},
		{"bf16+zstd", []ClientOption{WithPushEncoding(BF16), WithCompression(Zstd)}},
		{"topk1%", []ClientOption{WithTopK(0.01)}},
		{"topk1%+zstd", []ClientOption{WithTopK(0.01), WithCompression(Zstd)}},
	}
	for _, f := range formats {
		b.Run("enc="+f.name, func(b *testing.B) {
			m := benchModel(n)
			_, addr := serve(b, newParams(b, m))
			c := dial(b, addr, testToken, f.opts...)
			ctx := context.Background()
			if _, err := c.Register(ctx, "w", 0); err != nil {
				b.Fatal(err)
			}
			update := [][]float32{benchModel(n)[0].Data}
			shapes := infos(m)
			b.SetBytes(4 * n)
			step := uint64(0)
			for b.Loop() {
				step++
				if _, err := c.Push(ctx, step, Delta, shapes, update); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(c.pushedBytes.Load())/float64(b.N), "wire-B/op")
		})
	}
}

// BenchmarkApply measures Params.Push alone (no network) of a 1M-parameter
// delta: the finite-sum check before the write, then the write.
func BenchmarkApply(b *testing.B) {
	const n = 1_000_000
	for _, mode := range []Mode{Asynchronous, Hogwild} {
		b.Run(string(mode), func(b *testing.B) {
			p := newParams(b, benchModel(n), WithMode(mode))
			mustRegister(b, p, "w")
			update := [][]float32{make([]float32, n)}
			for i := range update[0] {
				update[0][i] = 1e-6
			}
			b.SetBytes(4 * n)
			step := uint64(0)
			for b.Loop() {
				step++
				if _, err := p.Push("w", step, Delta, update); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
