package httpapi

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/wimms-dev/wimms/internal/netguard"
)

// ListenConfig is how a member's HTTP(S) port guards itself.
type ListenConfig struct {
	Limits Limits
	// TLS, when set, makes the listener serve HTTPS. The handshake runs
	// here, before a connection counts against MaxConns, under its own cap
	// and deadline.
	TLS *tls.Config
	// Name labels metrics and logs ("http").
	Name    string
	Metrics *netguard.Metrics
	Logger  hclog.Logger
}

// Listener is a member's HTTP(S) listener. It never stops accepting while
// open (failed Accepts are retried with a backoff), refuses connections
// beyond its caps by closing them at once, and makes room for new clients
// by closing idle keep-alives. Serve an http.Server on it with its
// ConnState hook set (Attach), or idle connections are never known.
type Listener struct {
	inner   net.Listener
	lim     Limits
	tls     *tls.Config
	name    string
	metrics *netguard.Metrics

	pending  *netguard.Gate
	refusals *netguard.RateLog
	failures *netguard.RateLog
	errs     *netguard.RateLog

	accepted  chan net.Conn
	closing   chan struct{}
	closeOnce sync.Once
	loopDone  chan struct{}

	mu    sync.Mutex
	now   func() time.Time
	conns map[net.Conn]*tracked // key: the conn handed to the server
	perIP map[string]int
}

// tracked is one established connection.
type tracked struct {
	raw       net.Conn // closing it evicts without waiting on a TLS alert
	host      string
	idle      bool
	idleSince time.Time
}

// Listen wraps ln; see Listener.
func Listen(ln net.Listener, cfg ListenConfig) *Listener {
	lim := cfg.Limits.withDefaults()
	if cfg.Name == "" {
		cfg.Name = "http"
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	perHost := lim.MaxPendingHandshakes / 16
	if perHost < 1 {
		perHost = 1
	}
	l := &Listener{
		inner: ln, lim: lim, tls: cfg.TLS, name: cfg.Name, metrics: cfg.Metrics,
		pending:  netguard.NewGate(lim.MaxPendingHandshakes, perHost),
		refusals: netguard.NewRateLog(cfg.Logger, 0),
		failures: netguard.NewRateLog(cfg.Logger, 0),
		errs:     netguard.NewRateLog(cfg.Logger, 0),
		accepted: make(chan net.Conn),
		closing:  make(chan struct{}),
		loopDone: make(chan struct{}),
		now:      time.Now,
		conns:    map[net.Conn]*tracked{},
		perIP:    map[string]int{},
	}
	go l.acceptLoop()
	return l
}

// Attach sets srv's ConnState to the listener's, keeping any hook srv had.
func (l *Listener) Attach(srv *http.Server) {
	prev := srv.ConnState
	srv.ConnState = func(c net.Conn, st http.ConnState) {
		l.ConnState(c, st)
		if prev != nil {
			prev(c, st)
		}
	}
}

func (l *Listener) acceptLoop() {
	defer close(l.loopDone)
	netguard.AcceptLoop(l.inner, l.closing, func(err error, retryIn time.Duration) {
		l.errs.Warn("accepting a connection failed; retrying", "listener", l.name, "error", err, "retry_in", retryIn)
	}, l.handle)
}

// handle runs on the accept loop: plain connections are admitted at once;
// TLS ones get a handshake goroutine if a handshake place is free.
func (l *Listener) handle(c net.Conn) {
	host := netguard.HostOf(c.RemoteAddr())
	// Every connection the server sees sits on a jsonErrorConn, whose
	// Close gives the place back; closing it directly also evicts a TLS
	// connection without waiting to send an alert.
	raw := &jsonErrorConn{Conn: c}
	if l.tls == nil {
		l.admit(raw, raw, host)
		return
	}
	if why := l.pending.Enter(host); why != netguard.Admitted {
		l.metrics.Refused(l.name, "handshake", why)
		l.refusals.Warn("too many unfinished TLS handshakes; closed a new connection at once",
			"listener", l.name, "remote", c.RemoteAddr().String(), "cap", why)
		_ = c.Close()
		return
	}
	go func() {
		defer l.pending.Leave(host)
		tc, err := l.handshake(raw)
		if err != nil {
			l.metrics.HandshakeFailed(l.name)
			answerPlainHTTP(err)
			l.failures.Warn("refused a connection that did not complete TLS",
				"listener", l.name, "remote", c.RemoteAddr().String(), "error", err)
			_ = c.Close()
			return
		}
		l.admit(tc, raw, host)
	}()
}

// handshake completes TLS on raw within HandshakeTimeout. Checks of who
// the client is belong after it, on the verified connection state.
func (l *Listener) handshake(raw net.Conn) (*tls.Conn, error) {
	tc := tls.Server(raw, l.tls)
	ctx, cancel := context.WithTimeout(context.Background(), l.lim.HandshakeTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, err
	}
	return tc, nil
}

// answerPlainHTTP tells a client that spoke plain HTTP to the HTTPS port
// what went wrong, as Go's server does when it runs the handshake itself.
func answerPlainHTTP(err error) {
	var re tls.RecordHeaderError
	if !errors.As(err, &re) || re.Conn == nil {
		return
	}
	hdr := string(re.RecordHeader[:])
	for _, m := range []string{"GET /", "HEAD ", "POST ", "PUT /", "OPTIO", "PATCH", "DELET"} {
		if hdr == m {
			_ = re.Conn.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = io.WriteString(re.Conn, "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
			return
		}
	}
}

// admit counts conn (the server's view of raw) against the caps and hands
// it to the server, or closes it.
func (l *Listener) admit(conn net.Conn, raw *jsonErrorConn, host string) {
	raw.release = func() { l.release(conn) }
	victims, why := l.take(conn, raw, host)
	for _, v := range victims {
		_ = v.Close()
	}
	l.metrics.Evicted(l.name, len(victims))
	if why != netguard.Admitted {
		l.metrics.Refused(l.name, "conn", why)
		l.refusals.Warn("connection cap reached and nothing idle to close; closed a new connection",
			"listener", l.name, "remote", raw.RemoteAddr().String(), "cap", why)
		_ = raw.Close()
		return
	}
	select {
	case l.accepted <- conn:
	case <-l.closing:
		_ = conn.Close()
	}
}

// take reserves a place for conn, closing idle keep-alives to make room:
// at the cap the longest-idle one, and while the member is busy (over
// three quarters of MaxConns) every one idle longer than BusyIdleTimeout.
// It returns the raw connections to close.
func (l *Listener) take(conn, raw net.Conn, host string) (victims []net.Conn, why netguard.Refusal) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.perIP[host] >= l.lim.MaxConnsPerAddress {
		return nil, netguard.RefusedKey
	}
	now := l.now()
	if len(l.conns) >= l.lim.MaxConns*3/4 {
		for k, t := range l.conns {
			if t.idle && now.Sub(t.idleSince) >= l.lim.BusyIdleTimeout {
				victims = append(victims, t.raw)
				l.forgetLocked(k, t)
			}
		}
	}
	if len(l.conns) >= l.lim.MaxConns {
		var oldest net.Conn
		for k, t := range l.conns {
			if t.idle && (oldest == nil || t.idleSince.Before(l.conns[oldest].idleSince)) {
				oldest = k
			}
		}
		if oldest == nil {
			return victims, netguard.RefusedFull
		}
		t := l.conns[oldest]
		victims = append(victims, t.raw)
		l.forgetLocked(oldest, t)
	}
	l.conns[conn] = &tracked{raw: raw, host: host}
	l.perIP[host]++
	return victims, netguard.Admitted
}

func (l *Listener) forgetLocked(k net.Conn, t *tracked) {
	delete(l.conns, k)
	if l.perIP[t.host] <= 1 {
		delete(l.perIP, t.host)
	} else {
		l.perIP[t.host]--
	}
}

// release gives conn's place back (once, whichever closes it first).
func (l *Listener) release(conn net.Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t, ok := l.conns[conn]; ok {
		l.forgetLocked(conn, t)
	}
}

// ConnState tracks which connections sit idle between requests: only
// those may be closed to make room. A connection that has not finished
// its first request (StateNew) is never evicted; ReadHeaderTimeout bounds
// it instead.
func (l *Listener) ConnState(c net.Conn, st http.ConnState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	t, ok := l.conns[c]
	if !ok {
		return
	}
	switch st {
	case http.StateIdle:
		t.idle, t.idleSince = true, l.now()
	case http.StateActive, http.StateHijacked:
		t.idle = false
	}
}

// Accept returns the next admitted connection.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.accepted:
		return c, nil
	case <-l.closing:
		return nil, net.ErrClosed
	case <-l.loopDone:
		return nil, net.ErrClosed
	}
}

// Close stops accepting; established connections are the server's to close.
func (l *Listener) Close() error {
	var err error
	l.closeOnce.Do(func() {
		close(l.closing)
		err = l.inner.Close()
	})
	return err
}

// Addr is the listening address.
func (l *Listener) Addr() net.Addr { return l.inner.Addr() }

// Conns is how many established connections hold a place.
func (l *Listener) Conns() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}
