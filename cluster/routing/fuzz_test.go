package routing

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/wimms-dev/wimms/httpapi/wire"
)

// FuzzRelayBatch: whatever bytes a batch holds (they come from another
// member over the network), the leader either refuses it whole or reads
// at most maxRelayBatch relayable writes; a batch the follower writes is
// read back request for request.
func FuzzRelayBatch(f *testing.F) {
	one := "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
	for _, s := range []string{one, one + one, "", "GET / HTTP/1.1\r\n\r\n", one + "POST /v1/x HTTP/1.1\r\nContent-Length: 99\r\n\r\n{}",
		"POST /v1/e HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"} {
		f.Add([]byte(s), "/v1/services/s/users/a%2Fb?x=1", []byte(`{"email":"a@b"}`))
	}
	f.Fuzz(func(t *testing.T, raw []byte, uri string, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/internal/v1/relay", bytes.NewReader(raw))
		req.Header.Set("Content-Type", relayBatchContentType)
		if subs, err := readRelayBatch(req); err == nil {
			if len(subs) == 0 || len(subs) > maxRelayBatch {
				t.Fatalf("accepted a batch of %d", len(subs))
			}
			for _, s := range subs {
				if isRead(s.Method) || isJoin(s) || strings.HasPrefix(s.URL.Path, "/internal/") {
					t.Fatalf("accepted %s %s in a batch", s.Method, s.URL.Path)
				}
			}
		}
		// What a follower writes, the leader reads back unchanged.
		orig, err := http.NewRequest(http.MethodPost, "http://f"+uri, bytes.NewReader(body))
		if err != nil || !strings.HasPrefix(uri, "/") || len(body) > 1024 {
			return
		}
		var buf bytes.Buffer
		writeRelayedRequest(&buf, orig, body, "leader:1", "f1")
		writeRelayedRequest(&buf, orig, body, "leader:1", "f1")
		req = httptest.NewRequest(http.MethodPost, "/internal/v1/relay", &buf)
		req.Header.Set("Content-Type", relayBatchContentType)
		req.Header.Set(ForwardedHeader, "f1")
		subs, err := readRelayBatch(req)
		if err != nil {
			if strings.HasPrefix(orig.URL.Path, "/internal/") || orig.URL.Path == wire.MembersPath {
				return
			}
			t.Fatalf("a batch the follower wrote was refused: %v", err)
		}
		if len(subs) != 2 {
			t.Fatalf("read %d requests, want 2", len(subs))
		}
		for _, s := range subs {
			got, _ := io.ReadAll(s.Body)
			if s.URL.RequestURI() != orig.URL.RequestURI() || !bytes.Equal(got, body) || s.Header.Get(ForwardedHeader) != "f1" {
				t.Fatalf("read back %s %q (%s), want %s %q", s.URL.RequestURI(), got, s.Header.Get(ForwardedHeader), orig.URL.RequestURI(), body)
			}
		}
	})
}
