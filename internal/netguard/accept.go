package netguard

import (
	"errors"
	"net"
	"time"
)

// Accept backoff bounds, as net/http's Server uses: a listener that fails
// (EMFILE when descriptors run out, ECONNABORTED) is retried after 5 ms,
// doubling to at most 1 s, and the delay resets after the next success.
const (
	MinAcceptDelay = 5 * time.Millisecond
	MaxAcceptDelay = time.Second
)

// Backoff is the delay sequence between failed Accepts.
type Backoff struct{ d time.Duration }

// Next is the delay to wait after another failure.
func (b *Backoff) Next() time.Duration {
	if b.d == 0 {
		b.d = MinAcceptDelay
	} else {
		b.d *= 2
	}
	if b.d > MaxAcceptDelay {
		b.d = MaxAcceptDelay
	}
	return b.d
}

// Reset starts the sequence over after an Accept succeeded.
func (b *Backoff) Reset() { b.d = 0 }

// AcceptLoop accepts from ln and hands each connection to handle until
// closing is closed or ln is closed. Every other error (descriptors
// exhausted, a connection aborted before accept) is reported to onErr and
// retried after a backoff: the listener must outlive any flood, and a
// member whose Raft port stopped accepting would never heal by itself.
// handle must not block; it runs on the loop's goroutine.
func AcceptLoop(ln net.Listener, closing <-chan struct{}, onErr func(err error, retryIn time.Duration), handle func(net.Conn)) {
	var b Backoff
	for {
		c, err := ln.Accept()
		if err == nil {
			b.Reset()
			handle(c)
			continue
		}
		select {
		case <-closing:
			return
		default:
		}
		if errors.Is(err, net.ErrClosed) {
			return
		}
		d := b.Next()
		if onErr != nil {
			onErr(err, d)
		}
		t := time.NewTimer(d)
		select {
		case <-closing:
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// HostOf is the client address a connection counts against: its IP
// without the port (the whole address when it has no port).
func HostOf(a net.Addr) string {
	if a == nil {
		return ""
	}
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	h, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return h
}
