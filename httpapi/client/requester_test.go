package client

import (
	"context"
	"testing"
)

// A body the Transport has not closed yet may still be being written, so
// the next request must not overwrite its bytes.
func TestRequesterDoesNotReuseUnclosedBody(t *testing.T) {
	rq := New("http://127.0.0.1:1").Requester(context.Background())
	first := append(rq.Buffer(), "first"...)
	rq.buf = first[:0]
	rq.body.Reset(first)
	rq.body.closed.Store(false) // as Do leaves it while the Transport holds it
	second := append(rq.Buffer(), "xxxxx"...)
	if string(first) != "first" {
		t.Fatalf("in-flight body overwritten: %q", first)
	}
	if string(second) != "xxxxx" {
		t.Fatalf("second body %q", second)
	}
	// Once the Transport closed the (new) body, its buffer is reused.
	rq.buf = second[:0]
	rq.body.Reset(second)
	_ = rq.body.Close()
	third := append(rq.Buffer(), 'y')
	if &third[0] != &second[0] {
		t.Fatal("a closed body's buffer is not reused")
	}
}
