package jepsen

import (
	"os"
	"testing"

	"github.com/wimms-dev/wimms/jepsen/nemesis"
)

func TestDiskFullRefusedWithDocker(t *testing.T) {
	if _, err := (Options{Bin: os.Args[0], OutDir: t.TempDir(), Nemesis: []nemesis.FaultKind{nemesis.FaultDiskFull},
		Docker: &DockerOptions{}}).withDefaults(); err == nil {
		t.Fatal("disk-full with --docker accepted")
	}
}
