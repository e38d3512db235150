package ps

import (
	"crypto/sha256"
	"encoding/hex"
	"sync"
)

// Store keeps model blobs (specs, weights files) by the hex SHA-256 of their
// bytes, so a worker that already holds a hash never fetches it again.
type Store struct {
	mu    sync.RWMutex
	blobs map[string]blob
}

type blob struct {
	kind string
	data []byte
}

// NewStore returns an empty Store.
func NewStore() *Store { return &Store{blobs: map[string]blob{}} }

// Hash returns the hex SHA-256 of data, the key Store uses.
func Hash(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// Put stores data (not copied: the caller must not modify it) under its hash
// and returns the hash. kind says what it is ("spec", "weights", ...).
func (s *Store) Put(kind string, data []byte) string {
	h := Hash(data)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.blobs[h]; !ok {
		s.blobs[h] = blob{kind: kind, data: data}
	}
	return h
}

// Get returns the blob stored under hash.
func (s *Store) Get(hash string) (kind string, data []byte, ok bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	b, ok := s.blobs[hash]
	return b.kind, b.data, ok
}

// Delete removes the blobs stored under hashes and returns how many there
// were; an unknown hash is not an error.
func (s *Store) Delete(hashes ...string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, h := range hashes {
		if _, ok := s.blobs[h]; ok {
			delete(s.blobs, h)
			n++
		}
	}
	return n
}
