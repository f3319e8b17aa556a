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

// isPrintableNoSpace: printable ASCII other than space.
func isPrintableNoSpace(c byte) bool { return c > 0x20 && c <= 0x7e }

const (
	printableMsg = "must contain only printable ASCII characters"
	nameCharsMsg = "may contain only A-Z, a-z, 0-9, '.', '_' and '-'"
)

// checkText is the shape every text field shares: a length in bytes
// within [minLen, maxLen] (lenMsg otherwise), and only bytes allowed by ok
// (charMsg otherwise).
func checkText(s string, minLen, maxLen int, lenMsg string, ok func(byte) bool, charMsg string) string {
	if len(s) < minLen || len(s) > maxLen {
		return lenMsg
	}
	for i := 0; i < len(s); i++ {
		if !ok(s[i]) {
			return charMsg
		}
	}
	return ""
}

// checkServiceName: 1–30 of [A-Za-z0-9._-], containing '-' ({app}-{version}).
func checkServiceName(s string) string {
	if msg := checkText(s, 1, 30, "must be 1 to 30 characters", isNameChar, nameCharsMsg); msg != "" {
		return msg
	}
	if !strings.Contains(s, "-") {
		return "must have the form {app}-{version} (contain a '-')"
	}
	return ""
}

// checkEmail: 1–255 printable ASCII bytes, no '/' (it is a path segment).
func checkEmail(s string) string {
	if msg := checkText(s, 1, 255, "must be 1 to 255 bytes", isPrintableASCII, printableMsg); msg != "" {
		return msg
	}
	if strings.IndexByte(s, '/') >= 0 {
		return "must not contain '/'"
	}
	return ""
}

// checkClientState: [A-Za-z0-9._-]{0,32}.
func checkClientState(s string) string {
	return checkText(s, 0, 32, "must be at most 32 characters", isNameChar, nameCharsMsg)
}

// checkPattern: 1–128 printable characters.
func checkPattern(s string) string {
	return checkText(s, 1, 128, "must be 1 to 128 characters", isPrintableASCII, printableMsg)
}

// checkNodeURL: 1–64 characters, an absolute http or https URL.
func checkNodeURL(s string) string {
	if msg := checkText(s, 1, 64, "must be 1 to 64 characters", isPrintableNoSpace,
		"must not contain spaces or non-printable characters"); msg != "" {
		return msg
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
	return checkText(s, 0, 64, "must be at most 64 characters", isPrintableASCII, printableMsg)
}

// checkMemberID: a cluster member id, addressed as a path segment.
func checkMemberID(s string) string {
	return checkText(s, 1, 128, "must be 1 to 128 characters",
		func(c byte) bool { return isPrintableNoSpace(c) && c != '/' },
		"must contain only printable ASCII characters other than space and '/'")
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
	return checkText(s, 1, 128, "must be 1 to 128 characters", isPrintableASCII, printableMsg)
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
