// Package ctxtime holds waits that end early when a context is done: the
// cluster's background loops and the chaos harness both pause between
// attempts and must stop at once when shut down.
package ctxtime

import (
	"context"
	"time"
)

// Sleep waits d or until ctx is done; false means ctx is done.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
