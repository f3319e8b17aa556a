package httpapi

import (
	"fmt"
	"net"
	"strconv"

	"github.com/wimms-dev/wimms/httpapi/wire"
)

// Each check returns "" for an acceptable value, else a description of the
// problem for the error body. The field rules the admin CLI also applies
// live in wire; these names keep the handlers' spelling.
var (
	checkServiceName    = wire.CheckServiceName
	checkEmail          = wire.CheckEmail
	checkPattern        = wire.CheckPattern
	checkClientState    = wire.CheckClientState
	checkNodeURL        = wire.CheckNodeURL
	checkIdempotencyKey = wire.CheckIdempotencyKey
)

// checkZone: a member's zone label, at most 64 printable characters.
func checkZone(s string) string {
	return wire.CheckText(s, 0, 64, "must be at most 64 characters", wire.IsPrintableASCII, wire.PrintableMsg)
}

// checkMemberID: a cluster member id, addressed as a path segment.
func checkMemberID(s string) string {
	return wire.CheckText(s, 1, 128, "must be 1 to 128 characters",
		func(c byte) bool { return wire.IsPrintableNoSpace(c) && c != '/' },
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
