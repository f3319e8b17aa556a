package httpapi

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// Each check returns "" for an acceptable value, else a description of the
// problem for the error body.

func isPrintableASCII(c byte) bool { return c >= 0x20 && c <= 0x7e }

func isNameChar(c byte) bool {
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		c == '.' || c == '_' || c == '-'
}

// checkServiceName: 1–30 of [A-Za-z0-9._-], containing '-' ({app}-{version}).
func checkServiceName(s string) string {
	if len(s) < 1 || len(s) > 30 {
		return "must be 1 to 30 characters"
	}
	for i := 0; i < len(s); i++ {
		if !isNameChar(s[i]) {
			return "may contain only A-Z, a-z, 0-9, '.', '_' and '-'"
		}
	}
	if !strings.Contains(s, "-") {
		return "must have the form {app}-{version} (contain a '-')"
	}
	return ""
}

// checkEmail: 1–255 printable ASCII bytes, no '/' (it is a path segment).
func checkEmail(s string) string {
	if len(s) < 1 || len(s) > 255 {
		return "must be 1 to 255 bytes"
	}
	for i := 0; i < len(s); i++ {
		if !isPrintableASCII(s[i]) {
			return "must contain only printable ASCII characters"
		}
		if s[i] == '/' {
			return "must not contain '/'"
		}
	}
	return ""
}

// checkClientState: [A-Za-z0-9._-]{0,32}.
func checkClientState(s string) string {
	if len(s) > 32 {
		return "must be at most 32 characters"
	}
	for i := 0; i < len(s); i++ {
		if !isNameChar(s[i]) {
			return "may contain only A-Z, a-z, 0-9, '.', '_' and '-'"
		}
	}
	return ""
}

// checkPattern: 1–128 printable characters.
func checkPattern(s string) string {
	if len(s) < 1 || len(s) > 128 {
		return "must be 1 to 128 characters"
	}
	for i := 0; i < len(s); i++ {
		if !isPrintableASCII(s[i]) {
			return "must contain only printable ASCII characters"
		}
	}
	return ""
}

// checkNodeURL: 1–64 characters, an absolute http or https URL.
func checkNodeURL(s string) string {
	if len(s) < 1 || len(s) > 64 {
		return "must be 1 to 64 characters"
	}
	for i := 0; i < len(s); i++ {
		if !isPrintableASCII(s[i]) || s[i] == ' ' {
			return "must not contain spaces or non-printable characters"
		}
	}
	u, err := url.Parse(s)
	if err != nil {
		return "must be a URL: " + err.Error()
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "must be an http or https URL"
	}
	if u.Host == "" {
		return "must name a host"
	}
	return ""
}

// checkZone: a member's zone label, at most 64 printable characters.
func checkZone(s string) string {
	if len(s) > 64 {
		return "must be at most 64 characters"
	}
	for i := 0; i < len(s); i++ {
		if !isPrintableASCII(s[i]) {
			return "must contain only printable ASCII characters"
		}
	}
	return ""
}

// checkMemberID: a cluster member id, addressed as a path segment.
func checkMemberID(s string) string {
	if len(s) < 1 || len(s) > 128 {
		return "must be 1 to 128 characters"
	}
	for i := 0; i < len(s); i++ {
		if !isPrintableASCII(s[i]) || s[i] == ' ' || s[i] == '/' {
			return "must contain only printable ASCII characters other than space and '/'"
		}
	}
	return ""
}

// checkHostPort: HOST:PORT with a numeric port.
func checkHostPort(s string) string {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "must be HOST:PORT"
	}
	if host == "" {
		return "must name a host"
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return "port must be a number from 1 to 65535"
	}
	return ""
}

// checkIdempotencyKey: 1–128 printable ASCII characters.
func checkIdempotencyKey(s string) string {
	if len(s) < 1 || len(s) > 128 {
		return "must be 1 to 128 characters"
	}
	for i := 0; i < len(s); i++ {
		if !isPrintableASCII(s[i]) {
			return "must contain only printable ASCII characters"
		}
	}
	return ""
}

// parseDecimalID parses a path id: plain decimal digits only (no sign, no
// leading '+', no hex), fitting int64.
func parseDecimalID(s string) (int64, string) {
	if s == "" || len(s) > 19 {
		return 0, "must be a decimal integer"
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, "must be a decimal integer"
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Sprintf("must be a decimal integer up to %d", int64(1<<63-1))
	}
	return v, ""
}
