package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/schollz/progressbar/v3"
)

func TestProgressLinesAndBar(t *testing.T) {
	var lines bytes.Buffer
	p := &progress{out: &lines, start: time.Now(), last: time.Now(), interval: time.Hour}
	for i := int64(1); i <= 1000; i++ {
		p.update(i, 1000)
	}
	// Only the final line: the interval never passed.
	if got := strings.Count(lines.String(), "\n"); got != 1 || !strings.Contains(lines.String(), "import: 1000/1000 user rows") {
		t.Fatalf("plain progress: %q", lines.String())
	}

	var bar bytes.Buffer
	p = &progress{out: &bar, start: time.Now(), last: time.Now(), interval: time.Hour,
		bar: progressbar.NewOptions64(-1, progressbar.OptionSetWriter(&bar), progressbar.OptionShowCount(),
			progressbar.OptionShowIts(), progressbar.OptionSetItsString("rows"), progressbar.OptionSetPredictTime(true))}
	for i := int64(1); i <= 500; i++ {
		p.update(i, 500)
	}
	p.finish()
	if !strings.Contains(bar.String(), "500/500") {
		t.Fatalf("bar output: %q", bar.String())
	}
}
