package pipe

import (
	"fmt"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// limitedAllocator fails (by panicking, which Work turns into an error) an
// allocation that would take the bytes outstanding past limit: arrow-go
// sizes decompression buffers by lengths read from the input.
type limitedAllocator struct {
	mem   memory.Allocator
	limit int64
	used  atomic.Int64
}

// errMemoryLimit is the panic value of a refused allocation.
type errMemoryLimit struct{ size, used, limit int64 }

func (e errMemoryLimit) Error() string {
	return fmt.Sprintf("memory limit: allocating %d bytes with %d in use exceeds %d", e.size, e.used, e.limit)
}

func (a *limitedAllocator) Allocate(size int) []byte {
	if u := a.used.Add(int64(size)); size < 0 || u > a.limit {
		a.used.Add(-int64(size))
		panic(errMemoryLimit{int64(size), u - int64(size), a.limit})
	}
	return a.mem.Allocate(size)
}

func (a *limitedAllocator) Reallocate(size int, b []byte) []byte {
	d := int64(size) - int64(len(b))
	if u := a.used.Add(d); size < 0 || u > a.limit {
		a.used.Add(-d)
		panic(errMemoryLimit{int64(size), u - d, a.limit})
	}
	return a.mem.Reallocate(size, b)
}

func (a *limitedAllocator) Free(b []byte) {
	a.used.Add(-int64(len(b)))
	a.mem.Free(b)
}
