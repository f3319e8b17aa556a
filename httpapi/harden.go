package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/wimms-dev/wimms/fsm"
	"github.com/wimms-dev/wimms/internal/defaults"
)

// StatusUnsupportedMediaType: a request body that is not application/json.
const StatusUnsupportedMediaType = "unsupported-media-type"

// Limits bound what one client can hold of a member. Zero fields take the
// defaults below (docs/cluster.md, "Limits on clients").
type Limits struct {
	// ReadHeaderTimeout: time to send the request line and headers.
	ReadHeaderTimeout time.Duration
	// BodyTimeout: time to send the body, counted from when the headers
	// are in. A client that trickles its body is cut off (408).
	BodyTimeout time.Duration
	// WriteTimeout: time from the end of the headers to the end of the
	// answer. It must exceed the longest a request may legitimately wait
	// (apply timeout plus leader wait plus forwarding).
	WriteTimeout time.Duration
	// IdleTimeout: how long a keep-alive connection may sit idle.
	IdleTimeout time.Duration
	// MaxConns caps concurrent established connections (with TLS: after
	// the handshake). At the cap, a new client takes the place of the
	// longest-idle keep-alive connection; with none idle it is closed at
	// once.
	MaxConns int
	// MaxConnsPerAddress caps the established connections of one client
	// IP, so one client cannot take every place.
	MaxConnsPerAddress int
	// BusyIdleTimeout replaces IdleTimeout while more than three quarters
	// of MaxConns are taken: idle keep-alives older than this are closed
	// as new clients arrive.
	BusyIdleTimeout time.Duration
	// HandshakeTimeout bounds a TLS handshake; MaxPendingHandshakes caps
	// unfinished ones (in total, and a sixteenth of it per client IP).
	// Beyond that a new connection is closed at once.
	HandshakeTimeout     time.Duration
	MaxPendingHandshakes int
}

// Defaults of Limits. MaxConns is sized for a two-core member: well above
// what a front end's connection pool needs, low enough that slow or hostile
// clients cannot exhaust memory or file descriptors.
const (
	DefaultReadHeaderTimeout = 5 * time.Second
	DefaultBodyTimeout       = 10 * time.Second
	DefaultWriteTimeout      = 60 * time.Second
	DefaultIdleTimeout       = 120 * time.Second
	DefaultMaxConns          = 512
	// DefaultMaxConnsPerAddress leaves room for a busy front end or a
	// benchmark (one address, many pooled connections) while keeping
	// three quarters of the places for everyone else.
	DefaultMaxConnsPerAddress   = 128
	DefaultBusyIdleTimeout      = 30 * time.Second
	DefaultHandshakeTimeout     = 5 * time.Second
	DefaultMaxPendingHandshakes = 128
)

func (l Limits) withDefaults() Limits {
	defaults.UnlessPositive(&l.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	defaults.UnlessPositive(&l.BodyTimeout, DefaultBodyTimeout)
	defaults.UnlessPositive(&l.WriteTimeout, DefaultWriteTimeout)
	defaults.UnlessPositive(&l.IdleTimeout, DefaultIdleTimeout)
	defaults.UnlessPositive(&l.MaxConns, DefaultMaxConns)
	defaults.UnlessPositive(&l.MaxConnsPerAddress, DefaultMaxConnsPerAddress)
	defaults.UnlessPositive(&l.BusyIdleTimeout, DefaultBusyIdleTimeout)
	defaults.UnlessPositive(&l.HandshakeTimeout, DefaultHandshakeTimeout)
	defaults.UnlessPositive(&l.MaxPendingHandshakes, DefaultMaxPendingHandshakes)
	return l
}

// NewHTTPServer is the http.Server a member runs h with: bounded header,
// body, write and idle times. Serve it on a Listener after
// Listener.Attach, which tells the listener which connections sit idle.
func NewHTTPServer(h http.Handler, limits Limits) *http.Server {
	l := limits.withDefaults()
	return &http.Server{
		Handler:           bodyDeadline(h, l.BodyTimeout),
		ReadHeaderTimeout: l.ReadHeaderTimeout,
		WriteTimeout:      l.WriteTimeout,
		IdleTimeout:       l.IdleTimeout,
	}
}

// bodyDeadline gives each request BodyTimeout past its headers to deliver
// its body. The read deadline also covers the server draining an unread
// body after the handler (a 401 answered before the body came), so an
// unauthenticated slow client is cut off as well.
func bodyDeadline(next http.Handler, d time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength != 0 {
			_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(d))
		}
		next.ServeHTTP(w, r)
	})
}

// bodyTimedOut reports whether reading a body failed on its deadline.
func bodyTimedOut(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// jsonContentType answers 415 unless a request with a body declares it
// application/json. Browsers can send form-encoded and text/plain bodies
// cross-site without a preflight; insisting on JSON stops such writes.
func (rq *request) jsonContentType() bool {
	if rq.r.ContentLength == 0 {
		return true
	}
	ct := rq.r.Header.Get("Content-Type")
	if ct == "application/json" {
		return true // what nearly every client sends; ParseMediaType allocates
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err == nil && mt == "application/json" {
		return true
	}
	desc := "a request body must be application/json"
	if ct != "" {
		desc += ", not " + strconv.Quote(ct)
	}
	rq.writeError(http.StatusUnsupportedMediaType, StatusUnsupportedMediaType,
		ErrorDetail{Location: LocationHeader, Name: "Content-Type", Description: desc})
	return false
}

// RequireAdmin guards h (e.g. /debug/pprof) with the admin token (or the
// API token when only that is set); open when neither is set.
func (s *Server) RequireAdmin(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.authorized(r, accessAdmin) {
			(&request{s: s, w: w, r: r}).refuseUnauthorized(accessAdmin)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// knownMethods are the methods that get their own metrics label; anything
// else is counted as "unknown" (as promhttp does), since the method is
// taken before authentication and would otherwise let any client add
// series without bound.
var knownMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodPatch: true, http.MethodDelete: true, http.MethodOptions: true,
	http.MethodConnect: true, http.MethodTrace: true,
}

func methodLabel(m string) string {
	if knownMethods[m] {
		return m
	}
	return "unknown"
}

// Go's server answers requests it cannot parse by writing
// "HTTP/1.1 <code> <text>" + goErrorHeaders + "<code> <text>..." straight
// to the connection, before any handler runs. Listener's
// connections recognise exactly that write and replace it with the same
// status in the API's error shape.
const goErrorHeaders = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"

// jsonErrorConn is a connection as Listener hands it out (under TLS, the
// raw one beneath the tls.Conn). Closing it gives its place back. It keeps
// CloseWrite, which Go's server uses to close gracefully after an error
// answer so the client reads it instead of a reset.
type jsonErrorConn struct {
	net.Conn
	releaseOnce sync.Once
	release     func()
}

func (c *jsonErrorConn) Close() error {
	err := c.Conn.Close()
	c.releaseOnce.Do(func() {
		if c.release != nil {
			c.release()
		}
	})
	return err
}

// CloseWrite lets Go's server half-close after an error answer.
func (c *jsonErrorConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *jsonErrorConn) Write(b []byte) (int, error) {
	if out, ok := rewriteGoError(b); ok {
		if _, err := c.Conn.Write(out); err != nil {
			return 0, err
		}
		return len(b), nil
	}
	return c.Conn.Write(b)
}

// rewriteGoError turns one of Go's plain-text pre-handler error responses
// into the JSON error shape; ok is false for anything else.
func rewriteGoError(b []byte) ([]byte, bool) {
	const prefix = "HTTP/1.1 "
	if !bytes.HasPrefix(b, []byte(prefix)) {
		return nil, false
	}
	statusLine, rest, found := bytes.Cut(b[len(prefix):], []byte(goErrorHeaders))
	if !found || len(statusLine) < 3 || bytes.ContainsAny(statusLine, "\r\n") {
		return nil, false
	}
	code, err := strconv.Atoi(string(statusLine[:3]))
	if err != nil || code < 400 || code > 599 {
		return nil, false
	}
	desc := "the request could not be parsed: " + string(rest)
	name := "request"
	if code == http.StatusBadRequest {
		// The only request-line problem a client of this API meets is a
		// malformed path (e.g. a bad percent-escape).
		desc = "malformed request line or path (e.g. an invalid percent-escape): " + string(rest)
		name = "path"
	}
	body, _ := json.Marshal(ErrorBody{Status: fsm.StatusBadRequest,
		Errors: []ErrorDetail{{Location: LocationPath, Name: name, Description: desc}}})
	body = append(body, '\n')
	out := fmt.Appendf(nil, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		code, http.StatusText(code), len(body), body)
	return out, true
}
