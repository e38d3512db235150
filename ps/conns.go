package ps

import (
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// conns wraps the server's listener and keeps every connection it accepted
// until the connection closes, so that:
//
//   - no more than max connections are open at once: at the cap, a new
//     connection evicts the oldest one that has not made an authenticated
//     call, or is closed at once when every open one has;
//   - a connection that makes no authenticated call within authTimeout of
//     being accepted (a stray client, or a socket opened only to hold a file
//     descriptor) is closed;
//   - a forced stop closes all of them, including those still in the TLS or
//     HTTP/2 handshake, which gRPC's own Stop waits for.
//
// Closures for these reasons are logged through a rate limit.
type conns struct {
	net.Listener
	max         int
	authTimeout time.Duration
	log         *slog.Logger
	limit       *logLimiter

	mu     sync.Mutex
	open   map[string]*conn // by remote address
	closed bool

	evicted atomic.Uint64 // closed at the cap or after authTimeout
}

// conn is one accepted connection.
type conn struct {
	net.Conn
	owner  *conns
	key    string
	opened time.Time
	authed atomic.Bool
	timer  *time.Timer
	once   sync.Once
}

func newConns(lis net.Listener, max int, authTimeout time.Duration, log *slog.Logger, limit *logLimiter) *conns {
	return &conns{Listener: lis, max: max, authTimeout: authTimeout, log: log, limit: limit, open: map[string]*conn{}}
}

// Accept returns the next connection, closing what the cap and the
// authentication timeout require.
func (l *conns) Accept() (net.Conn, error) {
	for {
		raw, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		c := &conn{Conn: raw, owner: l, key: raw.RemoteAddr().String(), opened: time.Now()}
		var victim *conn
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			raw.Close()
			continue
		}
		if len(l.open) >= l.max {
			for _, o := range l.open {
				if !o.authed.Load() && (victim == nil || o.opened.Before(victim.opened)) {
					victim = o
				}
			}
			if victim == nil {
				n := len(l.open)
				l.mu.Unlock()
				raw.Close()
				l.evicted.Add(1)
				l.warn("ps: connection refused: every one of the open connections has authenticated", "peer", c.key, "open", n, "max", l.max)
				continue
			}
			delete(l.open, victim.key)
		}
		l.open[c.key] = c
		l.mu.Unlock()
		if victim != nil {
			l.evicted.Add(1)
			l.warn("ps: connection closed: the connection cap is reached and it made no authenticated call",
				"peer", victim.key, "age", time.Since(victim.opened).Round(time.Millisecond), "max", l.max)
			victim.Close()
		}
		c.timer = time.AfterFunc(l.authTimeout, func() {
			if !c.authed.Load() {
				l.evicted.Add(1)
				l.warn("ps: connection closed: no authenticated call", "peer", c.key, "within", l.authTimeout)
				c.Close()
			}
		})
		return c, nil
	}
}

// authenticated marks the connection from addr (a peer address) as having
// made an authenticated call.
func (l *conns) authenticated(addr string) {
	l.mu.Lock()
	c := l.open[addr]
	l.mu.Unlock()
	if c != nil && !c.authed.Swap(true) && c.timer != nil {
		c.timer.Stop()
	}
}

// count returns the number of open connections.
func (l *conns) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.open)
}

// closeAll closes the listener and every open connection, and refuses
// those accepted later.
func (l *conns) closeAll() {
	l.mu.Lock()
	l.closed = true
	all := make([]*conn, 0, len(l.open))
	for _, c := range l.open {
		all = append(all, c)
	}
	l.mu.Unlock()
	l.Listener.Close()
	for _, c := range all {
		c.Close()
	}
}

func (l *conns) warn(msg string, args ...any) {
	if ok, dropped := l.limit.allow(); ok {
		if dropped > 0 {
			args = append(args, "not_logged_before", dropped)
		}
		l.log.Warn(msg, args...)
	}
}

// Close closes the connection and forgets it.
func (c *conn) Close() error {
	c.once.Do(func() {
		if c.timer != nil {
			c.timer.Stop()
		}
		l := c.owner
		l.mu.Lock()
		if l.open[c.key] == c {
			delete(l.open, c.key)
		}
		l.mu.Unlock()
	})
	return c.Conn.Close()
}

// logLimiter lets through at most burst log lines per interval and counts
// the others, so that a flood of refused calls or connections cannot flood
// the log.
type logLimiter struct {
	interval time.Duration
	burst    int

	mu      sync.Mutex
	start   time.Time
	n       int
	dropped uint64
}

func newLogLimiter(burst int, interval time.Duration) *logLimiter {
	return &logLimiter{interval: interval, burst: burst}
}

// allow reports whether a line may be logged now and, when it may, how many
// were dropped since the last one let through.
func (l *logLimiter) allow() (ok bool, dropped uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if now.Sub(l.start) >= l.interval {
		l.start, l.n = now, 0
	}
	if l.n >= l.burst {
		l.dropped++
		return false, 0
	}
	l.n++
	dropped, l.dropped = l.dropped, 0
	return true, dropped
}

// pending returns the lines dropped since the last one let through.
func (l *logLimiter) pending() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.dropped
}
