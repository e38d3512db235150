package ps_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/gophas/gophas/ps"
)

// Two workers average their deltas through a synchronous round served over
// loopback gRPC.
func Example() {
	params, _ := ps.NewParams(ps.WithMode(ps.Synchronous), ps.WithWorkers(2))
	params.SetWeights([]ps.NamedTensor{{Name: "w", Shape: []int{2}, Data: []float32{1, 1}}}, false)

	const token = "an example token, random in a job"
	srv, _ := ps.NewServer(params, token, ps.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	lis, _ := net.Listen("tcp", "127.0.0.1:0")
	go srv.Serve(lis)
	defer srv.Stop(time.Second)

	ctx := context.Background()
	done := make(chan []float32)
	for i, delta := range []float32{1, 3} {
		go func() {
			c, _ := ps.Dial(lis.Addr().String(), token)
			defer c.Close()
			c.Register(ctx, fmt.Sprint("partition-", i), 0)
			ws, v, _, _ := c.Pull(ctx, 0)
			c.Push(ctx, v, ps.Delta, []ps.TensorInfo{{Name: "w", Shape: []int{2}}}, [][]float32{{delta, -delta}})
			c.WaitRound(ctx, v)
			ws, _, _, _ = c.Pull(ctx, v)
			done <- ws[0].Data
		}()
	}
	fmt.Println(<-done, <-done, params.Version())
	// Output: [3 -1] [3 -1] 2
}
