package netguard

import "sync"

// Gate counts things in progress (unfinished handshakes, open
// connections) in total and per client address, and refuses more than
// either cap instead of queueing: a refused connection is closed at once,
// so a flood costs the member neither goroutines nor memory.
type Gate struct {
	max, perKey int

	mu    sync.Mutex
	n     int
	byKey map[string]int
}

// NewGate admits at most max at once, and at most perKey for one key
// (perKey <= 0: no per-key cap).
func NewGate(max, perKey int) *Gate {
	return &Gate{max: max, perKey: perKey, byKey: map[string]int{}}
}

// Refusal says which cap refused an Enter.
type Refusal string

// Refusals, used as the "reason" label of refused-connection metrics.
const (
	Admitted    Refusal = ""
	RefusedFull Refusal = "total"
	RefusedKey  Refusal = "per_address"
)

// Enter takes a place for key, or says which cap is reached.
func (g *Gate) Enter(key string) Refusal {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.perKey > 0 && g.byKey[key] >= g.perKey {
		return RefusedKey
	}
	if g.n >= g.max {
		return RefusedFull
	}
	g.n++
	g.byKey[key]++
	return Admitted
}

// Leave gives back a place Enter took for key.
func (g *Gate) Leave(key string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.n--
	if g.byKey[key] <= 1 {
		delete(g.byKey, key)
	} else {
		g.byKey[key]--
	}
}

// Len is how many places are taken.
func (g *Gate) Len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.n
}
