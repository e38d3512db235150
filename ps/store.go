package ps

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
)

// DefaultMaxBlobs bounds the blobs a Store holds (WithMaxBlobs). A fit keeps
// a spec, its weights and one optimizer state per worker, and forgets each
// state when the next epoch replaces it.
const DefaultMaxBlobs = 1 << 16

// ErrStoreFull reports a Put that would take the store past its limits.
var ErrStoreFull = errors.New("ps: the model store is full")

// StoreOption configures a Store.
type StoreOption func(*Store)

// WithMaxBlobs bounds the number of blobs held. Default DefaultMaxBlobs.
func WithMaxBlobs(n int) StoreOption { return func(s *Store) { s.maxBlobs = n } }

// WithMaxStoreBytes bounds the bytes of all blobs held together. Default 0:
// no bound beside the blob count.
func WithMaxStoreBytes(n int64) StoreOption { return func(s *Store) { s.maxBytes = n } }

// Store keeps model blobs (specs, weights files) by the hex SHA-256 of their
// bytes, so a worker that already holds a hash never fetches it again.
type Store struct {
	maxBlobs int
	maxBytes int64

	mu    sync.RWMutex
	blobs map[string]blob
	bytes int64
}

type blob struct {
	kind string
	data []byte
}

// NewStore returns an empty Store.
func NewStore(opts ...StoreOption) *Store {
	s := &Store{maxBlobs: DefaultMaxBlobs, blobs: map[string]blob{}}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Hash returns the hex SHA-256 of data, the key Store uses.
func Hash(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// Put stores data (not copied: the caller must not modify it) under its hash
// and returns the hash. kind says what it is ("spec", "weights", ...). A new
// blob that would take the store past its limits is refused with
// ErrStoreFull; a blob already held is not new.
func (s *Store) Put(kind string, data []byte) (string, error) {
	h := Hash(data)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.blobs[h]; ok {
		return h, nil
	}
	if len(s.blobs) >= s.maxBlobs {
		return "", fmt.Errorf("%w: it holds %d blobs, its limit; the driver forgets a worker's optimizer state when the next epoch replaces it", ErrStoreFull, len(s.blobs))
	}
	if s.maxBytes > 0 && s.bytes+int64(len(data)) > s.maxBytes {
		return "", fmt.Errorf("%w: a %s blob of %d bytes would take it from %d to more than its %d bytes", ErrStoreFull, kind, len(data), s.bytes, s.maxBytes)
	}
	s.blobs[h] = blob{kind: kind, data: data}
	s.bytes += int64(len(data))
	return h, nil
}

// Get returns the blob stored under hash.
func (s *Store) Get(hash string) (kind string, data []byte, ok bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	b, ok := s.blobs[hash]
	return b.kind, b.data, ok
}

// Len returns the number of blobs held and their bytes.
func (s *Store) Len() (blobs int, bytes int64) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.blobs), s.bytes
}

// Delete removes the blobs stored under hashes and returns how many there
// were; an unknown hash is not an error.
func (s *Store) Delete(hashes ...string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, h := range hashes {
		if b, ok := s.blobs[h]; ok {
			delete(s.blobs, h)
			s.bytes -= int64(len(b.data))
			n++
		}
	}
	return n
}
