package checker

import (
	"fmt"
	"path/filepath"

	"github.com/anishathalye/porcupine"
)

// Visualize writes porcupine's HTML view of the linearizability check to
// path, with notes (the faults of the run) drawn over the operations. The
// check's search state stays inside CheckResult, so the view can only show
// what Check actually judged.
func (r CheckResult) Visualize(path string, notes []porcupine.Annotation) error {
	info := r.info
	info.AddAnnotations(notes)
	if err := porcupine.VisualizePath(r.model, info, path); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	return nil
}
