//go:build !unix

package ps

func defaultMaxConnections() int { return DefaultMaxConnections }
