package testutil

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/wimms-dev/wimms/internal/tlsconf"
)

// CAWithCert creates a CA of its own in a temporary directory and issues
// it a member certificate named name for 127.0.0.1; it returns the CA's
// certificate file and the issued pair. Tests use it for a CA a cluster
// does not trust, or for a tool's own TLS settings.
func CAWithCert(t testing.TB, name string) (caFile string, issued tlsconf.Issued) {
	t.Helper()
	dir := t.TempDir()
	if _, err := tlsconf.CreateCA(dir, time.Now()); err != nil {
		t.Fatal(err)
	}
	issued, err := tlsconf.CreateCert(dir, tlsconf.CertRequest{Role: tlsconf.RoleMember, Name: name, Hosts: []string{"127.0.0.1"}}, dir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, tlsconf.CACertFile), issued
}
