package wire

import (
	"net/url"
	"strings"
)

// The field rules of docs/api.md, shared by the server (which answers 400
// with the problem) and the admin CLI (which refuses the input before
// sending anything). Each check returns "" for an acceptable value, else a
// description of the problem.

// IsPrintableASCII: a byte from space to '~'.
func IsPrintableASCII(c byte) bool { return c >= 0x20 && c <= 0x7e }

// IsNameChar: A-Z, a-z, 0-9, '.', '_' and '-' (the characters of a service
// name and of a client state).
func IsNameChar(c byte) bool {
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		c == '.' || c == '_' || c == '-'
}

// IsPrintableNoSpace: printable ASCII other than space.
func IsPrintableNoSpace(c byte) bool { return c > 0x20 && c <= 0x7e }

const (
	// PrintableMsg is the problem of a field with a byte outside printable ASCII.
	PrintableMsg = "must contain only printable ASCII characters"
	nameCharsMsg = "may contain only A-Z, a-z, 0-9, '.', '_' and '-'"
)

// CheckText is the shape every text field shares: a length in bytes
// within [minLen, maxLen] (lenMsg otherwise), and only bytes allowed by ok
// (charMsg otherwise).
func CheckText(s string, minLen, maxLen int, lenMsg string, ok func(byte) bool, charMsg string) string {
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

// CheckServiceName: 1–30 of [A-Za-z0-9._-], containing '-' ({app}-{version}).
func CheckServiceName(s string) string {
	if msg := CheckText(s, 1, 30, "must be 1 to 30 characters", IsNameChar, nameCharsMsg); msg != "" {
		return msg
	}
	if !strings.Contains(s, "-") {
		return "must have the form {app}-{version} (contain a '-')"
	}
	return ""
}

// CheckEmail: 1–255 printable ASCII bytes, no '/' (it is a path segment).
func CheckEmail(s string) string {
	if msg := CheckText(s, 1, 255, "must be 1 to 255 bytes", IsPrintableASCII, PrintableMsg); msg != "" {
		return msg
	}
	if strings.IndexByte(s, '/') >= 0 {
		return "must not contain '/'"
	}
	return ""
}

// CheckClientState: [A-Za-z0-9._-]{0,32}.
func CheckClientState(s string) string {
	return CheckText(s, 0, 32, "must be at most 32 characters", IsNameChar, nameCharsMsg)
}

// CheckNodeURL: 1–64 characters, an absolute http or https URL.
func CheckNodeURL(s string) string {
	if msg := CheckText(s, 1, 64, "must be 1 to 64 characters", IsPrintableNoSpace,
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

// CheckPattern: a service's api_endpoint pattern, 1–128 printable characters.
func CheckPattern(s string) string {
	return CheckText(s, 1, 128, "must be 1 to 128 characters", IsPrintableASCII, PrintableMsg)
}

// CheckIdempotencyKey: 1–128 printable ASCII characters.
func CheckIdempotencyKey(s string) string {
	return CheckText(s, 1, 128, "must be 1 to 128 characters", IsPrintableASCII, PrintableMsg)
}
