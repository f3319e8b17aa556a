// Package hawk signs and verifies HTTP requests with the Hawk scheme
// (header MAC, SHA-256, no payload hash) as the Sync storage nodes check
// it: the credentials are a tokenlib token (id) and its derived secret
// (key, used as its text bytes).
package hawk

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Request is what the MAC covers.
type Request struct {
	Method string
	// Resource is the path and query exactly as sent ("/1.5/7?x=1").
	Resource string
	Host     string
	Port     int
}

// Artifacts are the per-request values of a Hawk header.
type Artifacts struct {
	TS    int64
	Nonce string
	Ext   string
}

// MAC is base64(HMAC-SHA256(key, normalized string)) for a header.
func MAC(key string, req Request, a Artifacts) string {
	var b strings.Builder
	b.WriteString("hawk.1.header\n")
	b.WriteString(strconv.FormatInt(a.TS, 10) + "\n")
	b.WriteString(a.Nonce + "\n")
	b.WriteString(strings.ToUpper(req.Method) + "\n")
	b.WriteString(req.Resource + "\n")
	b.WriteString(strings.ToLower(req.Host) + "\n")
	b.WriteString(strconv.Itoa(req.Port) + "\n")
	b.WriteString("\n") // payload hash: none
	b.WriteString(strings.ReplaceAll(strings.ReplaceAll(a.Ext, `\`, `\\`), "\n", `\n`) + "\n")
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(b.String()))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// Header builds the Authorization header value.
func Header(id, key string, req Request, a Artifacts) string {
	h := fmt.Sprintf(`Hawk id="%s", ts="%d", nonce="%s"`, id, a.TS, a.Nonce)
	if a.Ext != "" {
		h += fmt.Sprintf(`, ext="%s"`, a.Ext)
	}
	return h + fmt.Sprintf(`, mac="%s"`, MAC(key, req, a))
}

// Sign sets r's Authorization header for the credentials (id, key), with
// now as the timestamp and a random nonce.
func Sign(r *http.Request, id, key string, now time.Time) error {
	req, err := RequestOf(r.Method, r.URL, r.Host)
	if err != nil {
		return err
	}
	var nb [6]byte
	if _, err := rand.Read(nb[:]); err != nil {
		return fmt.Errorf("hawk nonce: %w", err)
	}
	a := Artifacts{TS: now.Unix(), Nonce: base64.RawURLEncoding.EncodeToString(nb[:])}
	r.Header.Set("Authorization", Header(id, key, req, a))
	return nil
}

// RequestOf describes a request for the MAC. host overrides u.Host when
// set (http.Request.Host); the port defaults from the scheme.
func RequestOf(method string, u *url.URL, host string) (Request, error) {
	if host == "" {
		host = u.Host
	}
	h, p, err := net.SplitHostPort(host)
	if err != nil {
		h, p = host, "80"
		if u.Scheme == "https" {
			p = "443"
		}
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return Request{}, fmt.Errorf("hawk: port %q: %w", p, err)
	}
	return Request{Method: method, Resource: u.RequestURI(), Host: h, Port: port}, nil
}

// Parsed is a parsed Hawk Authorization header.
type Parsed struct {
	ID, MAC string
	Artifacts
}

// Parse reads `Hawk id="…", ts="…", nonce="…", mac="…"[, ext="…"]`.
func Parse(header string) (Parsed, error) {
	rest, ok := strings.CutPrefix(header, "Hawk ")
	if !ok {
		return Parsed{}, errors.New("hawk: not a Hawk header")
	}
	var p Parsed
	for part := range strings.SplitSeq(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
			return Parsed{}, fmt.Errorf("hawk: malformed attribute %q", part)
		}
		v = v[1 : len(v)-1]
		switch k {
		case "id":
			p.ID = v
		case "mac":
			p.MAC = v
		case "nonce":
			p.Nonce = v
		case "ext":
			p.Ext = v
		case "ts":
			ts, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return Parsed{}, fmt.Errorf("hawk: ts %q: %w", v, err)
			}
			p.TS = ts
		}
	}
	if p.ID == "" || p.MAC == "" || p.Nonce == "" || p.TS == 0 {
		return Parsed{}, errors.New("hawk: id, ts, nonce and mac are required")
	}
	return p, nil
}

// Verify checks a parsed header's MAC for req with key, in constant time.
func Verify(p Parsed, key string, req Request) bool {
	want := MAC(key, req, p.Artifacts)
	return hmac.Equal([]byte(want), []byte(p.MAC))
}
