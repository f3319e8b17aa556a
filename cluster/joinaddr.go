package cluster

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// NormalizeJoinAddr accepts a join address as host:port or as the URL an
// operator copies from a browser or a status page (http://host:port or
// https://host:port, optionally with a trailing "/") and returns host:port.
// The scheme does not travel further: how members talk to each other is
// the member's own configuration, not the join address's.
func NormalizeJoinAddr(addr string) (string, error) {
	addr = strings.TrimSpace(addr)
	if addr == "" {
		return "", errors.New("empty address")
	}
	if strings.Contains(addr, "://") {
		u, err := url.Parse(addr)
		if err != nil {
			return "", fmt.Errorf("not a URL: %w", err)
		}
		switch {
		case u.Scheme != "http" && u.Scheme != "https":
			return "", fmt.Errorf("scheme %q: want http, https or none", u.Scheme)
		case u.User != nil:
			return "", errors.New("must not carry credentials (tokens are flags)")
		case u.Path != "" && u.Path != "/":
			return "", fmt.Errorf("must not have a path (%q): a member is addressed by host and port", u.Path)
		case u.RawQuery != "" || u.Fragment != "":
			return "", errors.New("must not have a query or fragment")
		case u.Port() == "":
			return "", errors.New("needs an explicit port, e.g. http://10.0.0.1:8080")
		}
		addr = u.Host
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("want host:port or http(s)://host:port: %w", err)
	}
	if host == "" {
		return "", errors.New("needs a host")
	}
	if port == "" {
		return "", errors.New("needs a port")
	}
	return addr, nil
}
