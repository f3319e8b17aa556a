package admincli

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"strings"

	"github.com/wimms-dev/wimms/httpapi/client"
)

// hintFor says what the user should do about an error that comes from how
// the tool reaches the member rather than from the request itself: the
// wrong scheme, a CA that does not match, a missing token. "" when the
// error is about the request (the member's own message says enough).
func hintFor(err error) string {
	var ae *client.APIError
	if errors.As(err, &ae) {
		switch {
		case ae.HTTPStatus == http.StatusBadRequest && ae.Status == "" && mentions(ae, "HTTP request to an HTTPS server"):
			return "this member speaks HTTPS: add --tls-ca FILE (the cluster's CA certificate) or give --addr as https://HOST:PORT"
		case ae.HTTPStatus == http.StatusUnauthorized && ae.Status == "unauthorized":
			return "give the token this call needs: --api-token-file FILE (or WIMMS_API_TOKEN), and for admin calls --admin-token-file FILE (or WIMMS_ADMIN_TOKEN)"
		}
		return ""
	}
	var te *client.TransportError
	if !errors.As(err, &te) {
		return ""
	}
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var recordHeader tls.RecordHeaderError
	switch {
	case errors.As(err, &unknownCA):
		return "the member's certificate is not signed by the CA given with --tls-ca: give the cluster's CA certificate"
	case errors.As(err, &hostname):
		return "the member's certificate does not name the host in --addr: use an address the certificate was issued for (wimms tls cert --hosts)"
	case errors.As(err, &recordHeader), strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		return "this member speaks plain HTTP: drop --tls-ca or give --addr as http://HOST:PORT"
	case strings.Contains(err.Error(), "certificate required"):
		return "the member requires a client certificate: add --tls-cert FILE and --tls-key FILE"
	}
	return ""
}

func mentions(ae *client.APIError, text string) bool {
	for _, d := range ae.Errors {
		if strings.Contains(d.Description, text) {
			return true
		}
	}
	return false
}

// isFinal reports an answer that waiting cannot change: the member
// understood the call and refused it for a reason the caller must fix
// (wrong scheme, no token, no such route), so `status --wait` stops at
// once instead of polling until its deadline.
func isFinal(err error) bool {
	var ae *client.APIError
	if errors.As(err, &ae) {
		switch ae.HTTPStatus {
		case http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound:
			return true
		}
		return false
	}
	return hintFor(err) != ""
}

// withHint appends the hint for err to msg, if there is one.
func withHint(msg string, err error) string {
	if h := hintFor(err); h != "" {
		return msg + " — " + h
	}
	return msg
}
