package bench

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// plainProgressInterval is how often progress is printed as a new line
// when the output is not a terminal.
const plainProgressInterval = 5 * time.Second

// isTerminal reports whether w is a terminal (a progress bar would be
// garbage in a log file or a pipe).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// startProgress shows sample() on w until the returned stop is called: a
// progress bar on a terminal, otherwise one plain line every
// few seconds. sample runs on the display goroutine, so it must only read
// atomics. A nil w shows nothing.
func startProgress(w io.Writer, total int64, sample func() (value int64, desc string)) (stop func()) {
	if w == nil {
		return func() {}
	}
	total = max(total, 1)
	var draw func(final bool)
	interval := time.Second
	if isTerminal(w) {
		interval = 200 * time.Millisecond
		bar := progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetWidth(30),
			progressbar.OptionShowDescriptionAtLineEnd(),
			progressbar.OptionSetPredictTime(false),
			progressbar.OptionThrottle(100*time.Millisecond),
		)
		draw = func(final bool) {
			v, desc := sample()
			bar.Describe(desc)
			_ = bar.Set64(min(v, total))
			if final {
				_ = bar.Exit()
				fmt.Fprintln(w)
			}
		}
	} else {
		// A log file or a pipe gets whole lines, not a line redrawn with
		// \r: one every few seconds and the last one.
		interval = plainProgressInterval
		draw = func(bool) {
			v, desc := sample()
			v = min(v, total) // the last operations finish after the planned end
			fmt.Fprintf(w, "%3d%% %s\n", v*100/total, desc)
		}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				draw(true)
				return
			case <-t.C:
				draw(false)
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			wg.Wait()
		})
	}
}
