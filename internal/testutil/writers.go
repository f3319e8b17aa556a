package testutil

import (
	"maps"
	"sync"
)

// Writers is a pool of goroutines writing concurrently until stopped, which
// records every acknowledged write: the tests that prove acknowledged
// writes survive a backup, a restore or a kill -9 all need one.
type Writers struct {
	mu    sync.Mutex
	acked map[string]int64
	stop  chan struct{}
	wg    sync.WaitGroup
	warm  chan struct{}
	n     int
}

// Write is one attempt i of writer w. It names what it wrote, whether the
// write was acknowledged (then uid is recorded under key), and whether the
// writer goes on; a writer that stops counts as warm.
type Write func(w, i int) (key string, uid int64, acked, more bool)

// StartWriters starts n writers. A writer is warm once it has made
// attempt warmAfter (or has stopped).
func StartWriters(n, warmAfter int, write Write) *Writers {
	ws := &Writers{acked: map[string]int64{}, stop: make(chan struct{}), warm: make(chan struct{}, n), n: n}
	for w := range n {
		ws.wg.Add(1)
		go func() {
			defer ws.wg.Done()
			warmed := false
			defer func() {
				if !warmed {
					ws.warm <- struct{}{}
				}
			}()
			for i := 0; ; i++ {
				select {
				case <-ws.stop:
					return
				default:
				}
				key, uid, acked, more := write(w, i)
				if acked {
					ws.mu.Lock()
					ws.acked[key] = uid
					ws.mu.Unlock()
				}
				if !more {
					return
				}
				if i == warmAfter {
					warmed = true
					ws.warm <- struct{}{}
				}
			}
		}()
	}
	return ws
}

// WaitWarm blocks until every writer is warm: all are in full swing.
func (ws *Writers) WaitWarm() {
	for range ws.n {
		<-ws.warm
	}
}

// Acked is a copy of the writes acknowledged so far (key → uid).
func (ws *Writers) Acked() map[string]int64 {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return maps.Clone(ws.acked)
}

// Stop ends every writer, waits for them, and returns all acknowledged
// writes.
func (ws *Writers) Stop() map[string]int64 {
	close(ws.stop)
	ws.wg.Wait()
	return ws.Acked()
}
