package tlsconf

import (
	"crypto/x509"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// Role is what a certificate lets its holder be. The CA signs both kinds,
// so the chain alone says only "signed by us"; the role, carried in the
// certificate's URI SAN, says whether the holder is a Raft peer.
type Role string

const (
	// RoleMember: a cluster member; its certificate names the member id
	// (spiffe://wimms/member/ID) and is both a server and a client
	// certificate. Only these speak Raft and call /internal/*.
	RoleMember Role = "member"
	// RoleClient: a tool or operator (spiffe://wimms/client/NAME), client
	// authentication only. It may call the public API, where tokens decide.
	RoleClient Role = "client"
)

// uriScheme and uriTrustDomain form the URI SAN spiffe://wimms/ROLE/NAME.
// The SPIFFE shape is only a convention here: nothing outside wimms reads it.
const (
	uriScheme      = "spiffe"
	uriTrustDomain = "wimms"
)

// ParseRole reads --role. There is deliberately no default (see
// docs/decisions.md): a certificate handed to a tool must never be a Raft
// peer by accident.
func ParseRole(s string) (Role, error) {
	switch Role(s) {
	case RoleMember, RoleClient:
		return Role(s), nil
	case "":
		return "", fmt.Errorf("--role is required: %q for a cluster member (--name is its member id) or %q for a tool", RoleMember, RoleClient)
	}
	return "", fmt.Errorf("--role %q: want %q or %q", s, RoleMember, RoleClient)
}

func (r Role) uri(name string) (*url.URL, error) {
	if _, err := ParseRole(string(r)); err != nil {
		return nil, err
	}
	return &url.URL{Scheme: uriScheme, Host: uriTrustDomain, Path: "/" + string(r) + "/" + name}, nil
}

// Identity reads the role and name a certificate carries; ok is false for
// a certificate with no (or more than one) wimms URI SAN, which includes
// every certificate issued before roles existed.
func Identity(cert *x509.Certificate) (role Role, name string, ok bool) {
	if cert == nil {
		return "", "", false
	}
	found := 0
	for _, u := range cert.URIs {
		if u.Scheme != uriScheme || u.Host != uriTrustDomain {
			continue
		}
		found++
		r, n, cut := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
		if !cut || n == "" || strings.Contains(n, "/") {
			return "", "", false
		}
		if _, err := ParseRole(r); err != nil {
			return "", "", false
		}
		role, name = Role(r), n
	}
	if found != 1 {
		return "", "", false
	}
	return role, name, true
}

// MemberID is the member id a member certificate names; ok is false for a
// client certificate or one without a role.
func MemberID(cert *x509.Certificate) (string, bool) {
	role, name, ok := Identity(cert)
	if !ok || role != RoleMember {
		return "", false
	}
	return name, true
}

// RequestMemberID is the member id of the verified certificate r came
// with, if it is a member certificate.
func RequestMemberID(r *http.Request) (string, bool) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return "", false
	}
	return MemberID(r.TLS.VerifiedChains[0][0])
}
