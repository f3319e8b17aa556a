package httpapi

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/wimms-dev/wimms/fsm"
	"github.com/wimms-dev/wimms/internal/testutil"
	"github.com/wimms-dev/wimms/store"
)

func TestUnknownMethodsShareOneMetricsLabel(t *testing.T) {
	e := newEnv(t)
	for i := range 50 {
		e.do(fmt.Sprintf("MADEUP%d", i), "/v1/services", "")
		e.do(fmt.Sprintf("X%d", i), "/no/such/path", "")
	}
	body := string(e.do(http.MethodGet, "/metrics", "").body)
	if strings.Contains(body, "MADEUP") || strings.Contains(body, `method="X`) {
		t.Fatal("a made-up method became a metrics label")
	}
	for _, want := range []string{
		`wimms_http_requests_total{code="405",method="unknown",route="unmatched"} 50`,
		`wimms_http_requests_total{code="404",method="unknown",route="unmatched"} 50`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestBodyMustBeJSON(t *testing.T) {
	e := newEnv(t)
	e.seed()
	before := len(e.store.Commands())
	for _, ct := range []string{"application/x-www-form-urlencoded", "text/plain", "multipart/form-data; boundary=x", "", "application/jsonx"} {
		r := e.do(http.MethodPost, "/v1/services/sync-1.5/users", `{"email":"x@y.z","generation":1}`, "Content-Type", ct)
		if r.code != http.StatusUnsupportedMediaType || r.errorBody(t).Status != StatusUnsupportedMediaType {
			t.Fatalf("Content-Type %q: %d %s", ct, r.code, r.body)
		}
	}
	r := e.do(http.MethodPost, "/v1/services/sync-1.5/users/a%40b.c/retire", `{}`, "Content-Type", "application/json; charset=utf-8")
	if r.code == http.StatusUnsupportedMediaType {
		t.Fatalf("JSON with a charset refused: %s", r.body)
	}
	if got := len(e.store.Commands()); got != before+1 {
		t.Fatalf("applied %d commands, want exactly the JSON one", got-before)
	}
}

func TestRefusalsAre409WithoutErrorLog(t *testing.T) {
	e := newEnv(t)
	e.cluster.Err = fmt.Errorf("remove m1: it is the only voter: %w", store.ErrRefused)
	r := e.do(http.MethodDelete, "/v1/cluster/members/m1", "")
	if r.code != http.StatusConflict || r.errorBody(t).Status != fsm.StatusConflict {
		t.Fatalf("remove only voter: %d %s", r.code, r.body)
	}
	r = e.do(http.MethodPost, "/v1/cluster/leader", `{}`)
	if r.code != http.StatusConflict {
		t.Fatalf("transfer with no other voter: %d %s", r.code, r.body)
	}
	if strings.Contains(e.logs.String(), "[ERROR]") {
		t.Fatalf("a refusal was logged as an error: %s", e.logs)
	}
}

func TestRequireAdmin(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.APIToken, c.AdminToken = "api", "admin" })
	h := e.srv.RequireAdmin(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "profile") }))
	for tok, want := range map[string]int{"": 401, "api": 401, "admin": 200} {
		req, _ := http.NewRequest(http.MethodGet, "/debug/pprof/", nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Fatalf("token %q: %d, want %d", tok, rec.Code, want)
		}
	}
}

// startReal serves e's handler the way a member does (Listen +
// NewHTTPServer) on a loopback port.
func startReal(t *testing.T, e *testEnv, limits Limits) string {
	t.Helper()
	addr, _ := startGuarded(t, e, ListenConfig{Limits: limits})
	return addr
}

func startGuarded(t *testing.T, e *testEnv, cfg ListenConfig) (string, *Listener) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gl := Listen(ln, cfg)
	srv := NewHTTPServer(e.srv.Handler(), cfg.Limits)
	gl.Attach(srv)
	go func() { _ = srv.Serve(gl) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String(), gl
}

func TestUnparsableRequestsGetTheErrorShape(t *testing.T) {
	e := newEnv(t)
	addr := startReal(t, e, Limits{})
	for _, path := range []string{"/v1/services/a%zz", "/v1/%", "/v1/services/sync-1.5/users/a%4"} {
		resp, body := testutil.RawRequest(t, addr, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n")
		r := response{code: resp.StatusCode, header: resp.Header, body: body}
		if r.code != http.StatusBadRequest || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("%s: %d %q %s", path, r.code, resp.Header.Get("Content-Type"), body)
		}
		if eb := r.errorBody(t); eb.Status != fsm.StatusBadRequest || eb.Errors[0].Location != LocationPath {
			t.Fatalf("%s: %+v", path, eb)
		}
	}
	// Ordinary answers pass through untouched.
	resp, body := testutil.RawRequest(t, addr, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp.StatusCode != 200 || !strings.Contains(string(body), "ok") {
		t.Fatalf("healthz: %d %s", resp.StatusCode, body)
	}
}

func TestSlowBodyIsCutOff(t *testing.T) {
	e := newEnv(t)
	e.seed()
	addr := startReal(t, e, Limits{BodyTimeout: 300 * time.Millisecond})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = io.WriteString(c, "POST /v1/services/sync-1.5/users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
	// Keep trickling until the server answers: the answer must come while
	// the body is still incomplete.
	answered := make(chan *http.Response, 1)
	go func() {
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err == nil {
			answered <- resp
		}
		close(answered)
	}()
	sent := 1
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case resp := <-answered:
			if resp == nil || resp.StatusCode != http.StatusRequestTimeout {
				t.Fatalf("slow body answered %v, want 408", resp)
			}
			if sent >= 1000 {
				t.Fatal("the whole body was sent before the answer")
			}
			return
		case <-tick.C:
			if _, err := io.WriteString(c, " "); err != nil && !errors.Is(err, net.ErrClosed) {
				// the server closed the connection: wait for the answer
				continue
			}
			sent++
		}
	}
}
