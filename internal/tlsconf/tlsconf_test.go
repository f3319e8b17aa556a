package tlsconf

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
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
	issued, err := CreateCert(p.dir, CertRequest{Name: name, Hosts: hosts}, p.dir, now)
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
		{Name: "a", Hosts: nil},
		{Name: "a", Hosts: []string{"not a host!"}},
		{Name: "../escape", Hosts: []string{"127.0.0.1"}},
		{Name: "", Hosts: []string{"127.0.0.1"}},
	} {
		if _, err := CreateCert(p.dir, req, p.dir, time.Now()); err == nil {
			t.Errorf("CreateCert(%+v) succeeded, want an error", req)
		}
	}
	if _, err := CreateCert(t.TempDir(), CertRequest{Name: "a", Hosts: []string{"127.0.0.1"}}, t.TempDir(), time.Now()); err == nil {
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

func TestRequireMemberToJoin(t *testing.T) {
	p := newPKI(t)
	h := p.load("m")
	member := p.load("joiner")
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	srv := httptest.NewUnstartedServer(RequireMemberToJoin(next, "/v1/cluster/members", false))
	srv.TLS = h.ServerConfig(false)
	srv.StartTLS()
	defer srv.Close()
	addr := srv.Listener.Addr().String()

	anon := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: h.current().pool}}}
	withCert := &http.Client{Transport: &http.Transport{DialTLSContext: func(ctx context.Context, network, a string) (net.Conn, error) {
		return member.DialContext(ctx, &net.Dialer{}, network, a)
	}}}
	status := func(c *http.Client, method, path string) int {
		t.Helper()
		req, _ := http.NewRequest(method, "https://"+addr+path, strings.NewReader("{}"))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := status(anon, "POST", "/v1/cluster/members"); got != http.StatusForbidden {
		t.Errorf("join without a certificate: %d, want 403", got)
	}
	if got := status(withCert, "POST", "/v1/cluster/members"); got != http.StatusTeapot {
		t.Errorf("join with a member certificate: %d, want it passed on", got)
	}
	if got := status(anon, "GET", "/v1/cluster"); got != http.StatusTeapot {
		t.Errorf("API call without a certificate: %d, want it passed on", got)
	}
	// With an admin token the API layer checks the token instead.
	rec := httptest.NewRecorder()
	RequireMemberToJoin(next, "/v1/cluster/members", true).ServeHTTP(rec, httptest.NewRequest("POST", "/v1/cluster/members", nil))
	if rec.Code != http.StatusTeapot {
		t.Errorf("with an admin token configured the guard answered %d itself", rec.Code)
	}
}
