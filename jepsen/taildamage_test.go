package jepsen

import (
	"os"
	"strings"
	"testing"

	"github.com/wimms-dev/wimms/jepsen/nemesis"
)

func TestTailDamageRefusedWithDocker(t *testing.T) {
	if _, err := (Options{Bin: os.Args[0], OutDir: t.TempDir(), Nemesis: []nemesis.FaultKind{nemesis.FaultTailDamage},
		Docker: &DockerOptions{}}).withDefaults(); err == nil || !strings.Contains(err.Error(), "tail-damage") {
		t.Fatalf("tail-damage with --docker: %v, want a refusal naming it", err)
	}
}
