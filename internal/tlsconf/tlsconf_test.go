package tlsconf

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// pki issues a CA and member certificates into a temp dir.
type pki struct {
	t   *testing.T
	dir string
}

// load issues a member certificate named name, valid from now, and loads
// it.
func (p pki) load(name string) *Holder {
	p.t.Helper()
	h, err := Load(p.issue(name, time.Now()))
	if err != nil {
		p.t.Fatal(err)
	}
	return h
}

func newPKI(t *testing.T) pki {
	t.Helper()
	dir := t.TempDir()
	if _, err := CreateCA(dir, time.Now()); err != nil {
		t.Fatalf("CreateCA: %v", err)
	}
	return pki{t: t, dir: dir}
}

func (p pki) issue(name string, now time.Time, hosts ...string) Files {
	p.t.Helper()
	if len(hosts) == 0 {
		hosts = []string{"127.0.0.1", "localhost"}
	}
	issued, err := CreateCert(p.dir, CertRequest{Role: RoleMember, Name: name, Hosts: hosts}, p.dir, now)
	if err != nil {
		p.t.Fatalf("CreateCert %s: %v", name, err)
	}
	return Files{CA: filepath.Join(p.dir, CACertFile), Cert: issued.CertFile, Key: issued.KeyFile}
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s: no PEM", path)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestIssuedFiles(t *testing.T) {
	p := newPKI(t)
	f := p.issue("wimms-1", time.Now(), "10.0.0.7", "wimms-1.example.com", "::1")

	for _, key := range []string{filepath.Join(p.dir, CAKeyFile), f.Key} {
		st, err := os.Stat(key)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", key, st.Mode().Perm())
		}
	}
	ca := readCert(t, f.CA)
	if !ca.IsCA {
		t.Fatal("ca.pem is not a CA")
	}
	leaf := readCert(t, f.Cert)
	if len(leaf.IPAddresses) != 2 || !leaf.IPAddresses[0].Equal(net.ParseIP("10.0.0.7")) || !leaf.IPAddresses[1].Equal(net.ParseIP("::1")) {
		t.Errorf("IP SANs %v", leaf.IPAddresses)
	}
	if len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != "wimms-1.example.com" {
		t.Errorf("DNS SANs %v", leaf.DNSNames)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "wimms-1.example.com", KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			t.Errorf("usage %v: %v", usage, err)
		}
	}
	if err := leaf.VerifyHostname("10.0.0.7"); err != nil {
		t.Errorf("IP SAN not usable: %v", err)
	}
	if _, err := Load(f); err != nil {
		t.Fatalf("Load of freshly issued files: %v", err)
	}
}

func TestIssueRefusals(t *testing.T) {
	p := newPKI(t)
	if _, err := CreateCA(p.dir, time.Now()); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("second CreateCA in the same dir: %v, want a refusal", err)
	}
	for _, req := range []CertRequest{
		{Role: RoleMember, Name: "a", Hosts: nil},
		{Role: RoleMember, Name: "a", Hosts: []string{"not a host!"}},
		{Role: RoleMember, Name: "../escape", Hosts: []string{"127.0.0.1"}},
		{Role: RoleMember, Name: "", Hosts: []string{"127.0.0.1"}},
		{Role: RoleMember, Name: strings.Repeat("a", 65), Hosts: []string{"127.0.0.1"}},
		{Role: "", Name: "a", Hosts: []string{"127.0.0.1"}},
		{Role: "admin", Name: "a", Hosts: []string{"127.0.0.1"}},
	} {
		if _, err := CreateCert(p.dir, req, p.dir, time.Now()); err == nil {
			t.Errorf("CreateCert(%+v) succeeded, want an error", req)
		}
	}
	if _, err := CreateCert(t.TempDir(), CertRequest{Role: RoleMember, Name: "a", Hosts: []string{"127.0.0.1"}}, t.TempDir(), time.Now()); err == nil {
		t.Error("CreateCert without a CA succeeded")
	}
}

func TestGossipKey(t *testing.T) {
	k, err := NewGossipKey()
	if err != nil {
		t.Fatal(err)
	}
	b, err := DecodeGossipKey(k)
	if err != nil || len(b) != 32 {
		t.Fatalf("DecodeGossipKey(new key) = %d bytes, %v", len(b), err)
	}
	k2, _ := NewGossipKey()
	if k2 == k {
		t.Fatal("two gossip keys are equal")
	}
	for _, bad := range []string{"", "not base64 !", base64.StdEncoding.EncodeToString(make([]byte, 20))} {
		if _, err := DecodeGossipKey(bad); err == nil {
			t.Errorf("DecodeGossipKey(%q) accepted", bad)
		}
	}
}

func TestLoadRefusesBadConfigurations(t *testing.T) {
	p := newPKI(t)
	good := p.issue("good", time.Now())
	other := newPKI(t).issue("stranger", time.Now())
	expired := p.issue("old", time.Now().Add(-3*MemberValidity))
	notYet := p.issue("future", time.Now().Add(time.Hour))
	cases := map[string]struct {
		f    Files
		want string
	}{
		"cert without key":      {Files{CA: good.CA, Cert: good.Cert}, "--tls-key"},
		"key without CA":        {Files{Cert: good.Cert, Key: good.Key}, "--tls-ca"},
		"CA alone":              {Files{CA: good.CA}, "half configured"},
		"mismatched key":        {Files{CA: good.CA, Cert: good.Cert, Key: other.Key}, "private key does not match"},
		"expired":               {Files{CA: good.CA, Cert: expired.Cert, Key: expired.Key}, "expired"},
		"not yet valid":         {Files{CA: good.CA, Cert: notYet.Cert, Key: notYet.Key}, "not valid before"},
		"signed by another CA":  {Files{CA: good.CA, Cert: other.Cert, Key: other.Key}, "does not verify"},
		"missing file":          {Files{CA: good.CA + ".nope", Cert: good.Cert, Key: good.Key}, "--tls-ca"},
		"CA file is no PEM":     {Files{CA: good.Key + "x", Cert: good.Cert, Key: good.Key}, "--tls-ca"},
		"certificate is the CA": {Files{CA: good.CA, Cert: good.CA, Key: filepath.Join(p.dir, CAKeyFile)}, "CA certificate"},
	}
	for name, tc := range cases {
		_, err := Load(tc.f)
		if err == nil {
			t.Errorf("%s: Load succeeded, want a refusal", name)
			continue
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: reason is not one line: %q", name, err)
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want it to mention %q", name, err, tc.want)
		}
	}
}

// handshake runs one TLS handshake between server and client configs over
// a real loopback connection and reports each side's error.
func handshake(t *testing.T, server, client *tls.Config) (serverErr, clientErr error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		sc := tls.Server(c, server)
		if err := sc.Handshake(); err != nil {
			done <- err
			return
		}
		// Read one byte so a client-certificate rejection in TLS 1.3
		// (sent after the client's handshake finished) reaches the client.
		_, err = io.ReadFull(sc, make([]byte, 1))
		done <- err
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	cc := tls.Client(raw, client)
	clientErr = cc.Handshake()
	if clientErr == nil {
		_, _ = cc.Write([]byte{1})
		_ = raw.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, clientErr = cc.Read(make([]byte, 1))
		if clientErr == io.EOF {
			clientErr = nil // the server read its byte and closed: accepted
		}
	}
	return <-done, clientErr
}

func TestMutualTLS(t *testing.T) {
	p := newPKI(t)
	a := p.load("a")
	b := p.load("b")
	stranger := newPKI(t).load("s")

	if serr, cerr := handshake(t, a.ServerConfig(true), b.ClientConfig("127.0.0.1:1")); serr != nil || cerr != nil {
		t.Fatalf("two members of one CA: server %v, client %v", serr, cerr)
	}
	if serr, _ := handshake(t, a.ServerConfig(true), stranger.ClientConfig("127.0.0.1:1")); serr == nil {
		t.Fatal("a client certificate from another CA was accepted")
	}
	noCert := &tls.Config{RootCAs: a.current().pool, ServerName: "127.0.0.1"}
	if serr, _ := handshake(t, a.ServerConfig(true), noCert); serr == nil {
		t.Fatal("a client without a certificate was accepted where one is required")
	}
	if serr, cerr := handshake(t, a.ServerConfig(false), noCert); serr != nil || cerr != nil {
		t.Fatalf("API side: a client without a certificate was refused: server %v, client %v", serr, cerr)
	}
	if _, cerr := handshake(t, stranger.ServerConfig(false), a.ClientConfig("127.0.0.1:1")); cerr == nil {
		t.Fatal("a member accepted a server certificate from another CA")
	}
	if _, cerr := handshake(t, a.ServerConfig(false), b.ClientConfig("10.9.9.9:1")); cerr == nil {
		t.Fatal("a member accepted a server certificate that does not name the dialed host")
	}
}

func TestReload(t *testing.T) {
	p := newPKI(t)
	f := p.issue("m", time.Now())
	h, err := Load(f)
	if err != nil {
		t.Fatal(err)
	}
	_, serial1, _ := h.Summary()

	// Rotation: new files under the same names.
	if err := os.Remove(f.Cert); err != nil {
		t.Fatal(err)
	}
	p.issue("m", time.Now())
	if err := h.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	_, serial2, _ := h.Summary()
	if serial1 == serial2 {
		t.Fatal("Reload kept the old certificate")
	}
	srv := h.ServerConfig(false)
	cfg, err := srv.GetConfigForClient(&tls.ClientHelloInfo{})
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Certificates[0].Leaf.SerialNumber.Text(16); got != serial2 {
		t.Fatalf("server hands out serial %s after reload, want %s", got, serial2)
	}

	// A broken file does not replace a working certificate.
	if err := os.WriteFile(f.Cert, []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := h.Reload(); err == nil {
		t.Fatal("Reload of a garbage certificate succeeded")
	}
	if _, serial3, _ := h.Summary(); serial3 != serial2 {
		t.Fatal("a failed reload replaced the certificate")
	}
}

// issueClient issues a client-role certificate and returns a tls.Config
// presenting it (as a tool with --tls-cert would).
func (p pki) issueClient(name string) *tls.Config {
	p.t.Helper()
	issued, err := CreateCert(p.dir, CertRequest{Role: RoleClient, Name: name}, p.dir, time.Now())
	if err != nil {
		p.t.Fatalf("CreateCert client %s: %v", name, err)
	}
	pair, err := tls.LoadX509KeyPair(issued.CertFile, issued.KeyFile)
	if err != nil {
		p.t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(readCert(p.t, filepath.Join(p.dir, CACertFile)))
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}}
}

func TestRoles(t *testing.T) {
	p := newPKI(t)
	f := p.issue("m-1", time.Now())
	member := readCert(t, f.Cert)
	if id, ok := MemberID(member); !ok || id != "m-1" {
		t.Fatalf("MemberID of a member certificate: %q %v", id, ok)
	}
	if got := member.URIs[0].String(); got != "spiffe://wimms/member/m-1" {
		t.Fatalf("member URI SAN %s", got)
	}
	issued, err := CreateCert(p.dir, CertRequest{Role: RoleClient, Name: "tool"}, p.dir, time.Now())
	if err != nil {
		t.Fatalf("a client certificate needs no hosts: %v", err)
	}
	client := readCert(t, issued.CertFile)
	if role, name, ok := Identity(client); !ok || role != RoleClient || name != "tool" {
		t.Fatalf("Identity of a client certificate: %q %q %v", role, name, ok)
	}
	if _, ok := MemberID(client); ok {
		t.Fatal("a client certificate passed for a member")
	}
	if len(client.ExtKeyUsage) != 1 || client.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth {
		t.Fatalf("client certificate usages %v, want client auth only", client.ExtKeyUsage)
	}
	// A client certificate cannot be a member's own certificate.
	if _, err := Load(Files{CA: f.CA, Cert: issued.CertFile, Key: issued.KeyFile}); err == nil || !strings.Contains(err.Error(), "not a member certificate") {
		t.Fatalf("Load of a client certificate: %v", err)
	}
	for _, in := range []string{"", "admin", "Member"} {
		if _, err := ParseRole(in); err == nil {
			t.Errorf("ParseRole(%q) succeeded", in)
		}
	}
	// Certificates without a role (issued before roles), or with two, name
	// nobody.
	for _, uris := range [][]string{nil, {"spiffe://wimms/member/a", "spiffe://wimms/member/b"}, {"spiffe://wimms/member/"}, {"spiffe://wimms/root/a"}, {"spiffe://other/member/a"}, {"spiffe://wimms/member/a/b"}} {
		c := &x509.Certificate{}
		for _, u := range uris {
			pu, err := url.Parse(u)
			if err != nil {
				t.Fatal(err)
			}
			c.URIs = append(c.URIs, pu)
		}
		if _, ok := MemberID(c); ok {
			t.Errorf("MemberID accepted URIs %v", uris)
		}
	}
}

func TestRaftSideRefusesClientCertificates(t *testing.T) {
	p := newPKI(t)
	a := p.load("a")
	client := p.issueClient("tool")
	client.ServerName = "127.0.0.1"
	if serr, _ := handshake(t, a.ServerConfig(true), client); serr == nil || !strings.Contains(serr.Error(), "not a member certificate") {
		t.Fatalf("raft side accepted a client certificate: %v", serr)
	}
	if serr, cerr := handshake(t, a.ServerConfig(false), client); serr != nil || cerr != nil {
		t.Fatalf("API side refused a client certificate: server %v, client %v", serr, cerr)
	}
}

func TestReloadRefusesAnotherMemberID(t *testing.T) {
	p := newPKI(t)
	f := p.issue("m", time.Now())
	h, err := Load(f)
	if err != nil {
		t.Fatal(err)
	}
	other := p.issue("n", time.Now())
	for _, file := range []string{f.Cert, f.Key} {
		_ = os.Remove(file)
	}
	if err := os.Rename(other.Cert, f.Cert); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(other.Key, f.Key); err != nil {
		t.Fatal(err)
	}
	if err := h.Reload(); err == nil || !strings.Contains(err.Error(), `names member "n"`) {
		t.Fatalf("Reload to another member id: %v", err)
	}
	if h.MemberID() != "m" {
		t.Fatalf("member id %q after a refused reload", h.MemberID())
	}
}

func TestGuardMemberRoutes(t *testing.T) {
	p := newPKI(t)
	h := p.load("m")
	member := p.load("joiner")
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.WriteHeader(http.StatusTeapot)
		_, _ = w.Write(b)
	})
	configured := func(id string) bool { return id == "joiner" || id == "m" }
	srv := httptest.NewUnstartedServer(GuardMemberRoutes(next, "/v1/cluster/members", "X-Fwd", false, configured))
	srv.TLS = h.ServerConfig(false)
	srv.StartTLS()
	defer srv.Close()
	addr := srv.Listener.Addr().String()

	anon := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: h.current().pool}}}
	tool := &http.Client{Transport: &http.Transport{TLSClientConfig: p.issueClient("tool")}}
	outsiderHolder := p.load("outsider") // a member certificate, not configured
	outsider := &http.Client{Transport: &http.Transport{DialTLSContext: func(ctx context.Context, network, a string) (net.Conn, error) {
		return outsiderHolder.DialContext(ctx, &net.Dialer{}, network, a)
	}}}
	withCert := &http.Client{Transport: &http.Transport{DialTLSContext: func(ctx context.Context, network, a string) (net.Conn, error) {
		return member.DialContext(ctx, &net.Dialer{}, network, a)
	}}}
	do := func(c *http.Client, method, path, body string, hdr ...string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, "https://"+addr+path, strings.NewReader(body))
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, tc := range []struct {
		name   string
		c      *http.Client
		method string
		path   string
		body   string
		hdr    []string
		want   int
	}{
		{"join without a certificate", anon, "POST", "/v1/cluster/members", `{"id":"joiner"}`, nil, http.StatusForbidden},
		{"join with a client certificate", tool, "POST", "/v1/cluster/members", `{"id":"tool"}`, nil, http.StatusForbidden},
		{"join as its own id", withCert, "POST", "/v1/cluster/members", `{"id":"joiner"}`, nil, http.StatusTeapot},
		{"join as another id", withCert, "POST", "/v1/cluster/members", `{"id":"m"}`, nil, http.StatusForbidden},
		{"join relayed by the certificate's holder", withCert, "POST", "/v1/cluster/members", `{"id":"x"}`, []string{"X-Fwd", "joiner"}, http.StatusTeapot},
		{"join relayed in another member's name", withCert, "POST", "/v1/cluster/members", `{"id":"x"}`, []string{"X-Fwd", "m"}, http.StatusForbidden},
		{"internal route without a certificate", anon, "GET", "/internal/v1/readindex", "", nil, http.StatusForbidden},
		{"internal route with a client certificate", tool, "POST", "/internal/v1/relay", "{}", nil, http.StatusForbidden},
		{"internal route with a member certificate", withCert, "GET", "/internal/v1/readindex", "", nil, http.StatusTeapot},
		{"internal route with the certificate of a non-member", outsider, "GET", "/internal/v1/readindex", "", nil, http.StatusForbidden},
		{"join relayed by a non-member", outsider, "POST", "/v1/cluster/members", `{"id":"x"}`, []string{"X-Fwd", "outsider"}, http.StatusForbidden},
		{"a new member joins as itself", outsider, "POST", "/v1/cluster/members", `{"id":"outsider"}`, nil, http.StatusTeapot},
		{"API call without a certificate", anon, "GET", "/v1/cluster", "", nil, http.StatusTeapot},
		{"API call with a client certificate", tool, "GET", "/v1/cluster", "", nil, http.StatusTeapot},
	} {
		code, body := do(tc.c, tc.method, tc.path, tc.body, tc.hdr...)
		if code != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.name, code, body, tc.want)
		}
		if code == http.StatusTeapot && body != tc.body {
			t.Errorf("%s: the handler read body %q, want %q", tc.name, body, tc.body)
		}
	}
	// With an admin token the API layer checks the token instead, but the
	// internal routes still need a member certificate.
	open := GuardMemberRoutes(next, "/v1/cluster/members", "X-Fwd", true, configured)
	rec := httptest.NewRecorder()
	open.ServeHTTP(rec, httptest.NewRequest("POST", "/v1/cluster/members", nil))
	if rec.Code != http.StatusTeapot {
		t.Errorf("with an admin token configured the guard answered %d itself", rec.Code)
	}
	rec = httptest.NewRecorder()
	open.ServeHTTP(rec, httptest.NewRequest("GET", "/internal/v1/readindex", nil))
	if rec.Code != http.StatusForbidden {
		t.Errorf("internal route without TLS: %d, want 403", rec.Code)
	}
}

// A reload closes the open connections whose peer the new CA does not
// sign, and keeps those it does.
func TestReloadClosesConnectionsOfARevokedCA(t *testing.T) {
	p := newPKI(t)
	f := p.issue("m", time.Now())
	h, err := Load(f)
	if err != nil {
		t.Fatal(err)
	}
	peer := p.load("peer")
	ln, err := tls.Listen("tcp", "127.0.0.1:0", h.ServerConfig(true))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan *tls.Conn, 1)
	go acceptHandshaken(ln, accepted)
	client, err := peer.DialContext(context.Background(), &net.Dialer{}, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	srvConn := <-accepted
	h.Track(srvConn, true)
	h.Track(srvConn, true) // the HTTPS server tracks on every request
	if n := h.Tracked(); n != 1 {
		t.Fatalf("%d tracked connections, want 1", n)
	}
	// An API client without a certificate on the same kind of listener:
	// tracked, but nothing to re-verify, so never closed.
	apiLn, err := tls.Listen("tcp", "127.0.0.1:0", h.ServerConfig(false))
	if err != nil {
		t.Fatal(err)
	}
	defer apiLn.Close()
	go acceptHandshaken(apiLn, accepted)
	anon, err := tls.Dial("tcp", apiLn.Addr().String(), &tls.Config{RootCAs: h.current().pool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	defer anon.Close()
	anonSrv := <-accepted
	h.Track(anonSrv, false)

	// Same CA, new certificate: the peer still verifies, nothing closes.
	_ = os.Remove(f.Cert)
	p.issue("m", time.Now())
	if closed, err := h.ReloadAndRevalidate(); err != nil || closed != 0 {
		t.Fatalf("reload under the same CA: closed %d, %v", closed, err)
	}

	// New CA: the peer's certificate no longer verifies; its connection
	// is closed and reads on the peer's side end.
	newCA := pki{t: t, dir: t.TempDir()}
	if _, err := CreateCA(newCA.dir, time.Now()); err != nil {
		t.Fatal(err)
	}
	nf := newCA.issue("m", time.Now())
	h.files = nf
	closed, err := h.ReloadAndRevalidate()
	if err != nil || closed != 1 {
		t.Fatalf("reload under a new CA: closed %d, %v; want 1 (the member, not the anonymous API client)", closed, err)
	}
	_ = client.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := client.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the revoked peer's connection stayed open: read %v", err)
	}
	if n := h.Tracked(); n != 1 {
		t.Fatalf("%d tracked connections after the close, want 1 (the API client)", n)
	}
	runtime.KeepAlive(anonSrv)
	runtime.KeepAlive(srvConn) // the registry holds connections weakly, as their users do not
}

// acceptHandshaken accepts one connection on ln and sends it on out once
// its TLS handshake completed; nothing when either fails.
func acceptHandshaken(ln net.Listener, out chan<- *tls.Conn) {
	c, err := ln.Accept()
	if err != nil {
		return
	}
	tc := c.(*tls.Conn)
	if err := tc.Handshake(); err != nil {
		return
	}
	out <- tc
}
