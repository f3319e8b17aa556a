package bench

import (
	"encoding/hex"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/wimms-dev/wimms/httpapi/client"
)

// opKind is what one measured operation was.
type opKind int

const (
	kindAlloc opKind = iota
	kindLookup
	kindLogin
	kindNew
	kindKeyChange
	kindToken
	numKinds
)

var kindNames = [numKinds]string{"alloc", "lookup", "login", "new", "keychange", "token"}

func (k opKind) String() string { return kindNames[k] }

// benchUser is a client's knowledge of one user's current record: exactly
// what a device would send at its next sign-in.
type benchUser struct {
	email         string
	path          string // GET path, built once rather than per request
	loginPath     string
	generation    int64
	keysChangedAt int64 // 0 = null
	clientState   string
}

func newBenchUser(p paths, email string) *benchUser {
	u := &benchUser{email: email, path: p.users + "/" + email}
	u.loginPath = u.path + "/login"
	return u
}

// worker is one sequential client: it owns its RNG, its requester, its
// statistics and (for mix) its users, so the hot path shares nothing but the
// transport and the phase's atomic flags and counters.
type worker struct {
	id        int
	addr      string
	paths     paths
	query     string            // lookup: consistency=<level>
	rq        *client.Requester // this client's connection to addr, set per phase
	cfg       *Config
	rng       *rand.Rand
	runID     string
	seq       uint64
	scratch   []byte       // freshEmail's buffer: one allocation per email, the string
	lookup    []*benchUser // lookup: every prepared user, shared read-only
	owned     []*benchUser // mix: the users only this client signs in
	tokens    []tokenUser  // token: every minted account, shared read-only
	tokenPath string       // token: /1.0/{app}/{version}
	stats     workerStats
}

// workerStats is merged into the Summary after the run.
type workerStats struct {
	hist     Histogram
	kindOps  [numKinds]int64
	kindOK   [numKinds]int64
	errors   map[string]int64
	answered map[string]int64
}

func (s *workerStats) init() {
	s.errors = map[string]int64{}
	s.answered = map[string]int64{}
}

// freshEmail is unique across runs (runID) and clients, and looks like the
// token server's <fxa_uid>@<domain>.
func (w *worker) freshEmail() string {
	w.seq++
	b := append(w.scratch[:0], w.runID...)
	b = append(b, '-')
	b = strconv.AppendInt(b, int64(w.id), 10)
	b = append(b, '-')
	b = strconv.AppendUint(b, w.seq, 10)
	b = append(b, "@bench.invalid"...)
	w.scratch = b
	return string(b)
}

// newClientState is a random 32-hex-digit client state: the login path
// hex-decodes it for fxa_kid, and 128 random bits never repeat an old one.
func (w *worker) newClientState() string {
	var raw [16]byte
	for i := 0; i < len(raw); i += 8 {
		v := w.rng.Uint64()
		for j := 0; j < 8; j++ {
			raw[i+j] = byte(v >> (8 * j))
		}
	}
	return hex.EncodeToString(raw[:])
}

// appendUserFields appends the JSON fields a login or allocate carries.
// Every string the bench sends is printable ASCII without quotes or
// backslashes (hex, digits, [a-z.@-]), for which strconv's quoting is
// exactly JSON's.
func appendUserFields(b []byte, gen, kca int64, cs string) []byte {
	b = append(b, `"generation":`...)
	b = strconv.AppendInt(b, gen, 10)
	if kca > 0 {
		b = append(b, `,"keys_changed_at":`...)
		b = strconv.AppendInt(b, kca, 10)
	}
	b = append(b, `,"client_state":`...)
	b = strconv.AppendQuote(b, cs)
	return b
}

func (w *worker) loginBody(gen, kca int64, cs string) []byte {
	b := append(w.rq.Buffer(), '{')
	b = appendUserFields(b, gen, kca, cs)
	return append(b, '}')
}

func (w *worker) allocBody(email string, gen, kca int64, cs string) []byte {
	b := append(w.rq.Buffer(), `{"email":`...)
	b = strconv.AppendQuote(b, email)
	if gen > 0 || cs != "" {
		b = append(b, ',')
		b = appendUserFields(b, gen, kca, cs)
	}
	return append(b, '}')
}

// step runs one operation of the workload. A user created or changed is
// only taken into the client's pool after a 2xx: after an error or an
// unknown outcome its server-side state is uncertain, and signing in with a
// guessed state would turn every later login into a spurious 401.
func (w *worker) step() (opKind, client.Answer, error) {
	switch w.cfg.Workload {
	case WorkloadAlloc:
		r, err := w.rq.Do(http.MethodPost, w.paths.users, "", w.allocBody(w.freshEmail(), 0, 0, ""), false)
		return kindAlloc, r, err
	case WorkloadLookup:
		u := w.lookup[w.rng.IntN(len(w.lookup))]
		r, err := w.rq.Do(http.MethodGet, u.path, w.query, nil, false)
		return kindLookup, r, err
	case WorkloadToken:
		return w.tokenStep()
	}
	return w.mixStep()
}

func (w *worker) pickMixKind() opKind {
	m := w.cfg.Mix
	n := w.rng.IntN(m.total())
	switch {
	case n < m.Login:
		return kindLogin
	case n < m.Login+m.New:
		return kindNew
	}
	return kindKeyChange
}

func (w *worker) mixStep() (opKind, client.Answer, error) {
	kind := w.pickMixKind()
	if kind != kindNew && len(w.owned) == 0 {
		// Every owned user was dropped after failures: keep the load going.
		kind = kindNew
	}
	switch kind {
	case kindNew:
		now := time.Now().UnixMilli()
		u := newBenchUser(w.paths, w.freshEmail())
		u.generation, u.keysChangedAt, u.clientState = now, now, w.newClientState()
		r, err := w.rq.Do(http.MethodPost, u.loginPath, "", w.loginBody(u.generation, u.keysChangedAt, u.clientState), false)
		if err == nil && r.Code == http.StatusOK {
			w.owned = append(w.owned, u)
		}
		return kind, r, err
	case kindLogin:
		i := w.rng.IntN(len(w.owned))
		u := w.owned[i]
		r, err := w.rq.Do(http.MethodPost, u.loginPath, "", w.loginBody(u.generation, u.keysChangedAt, u.clientState), false)
		// Re-sending the state the server already has changes nothing, so
		// only a refusal (4xx: our view is wrong) makes the user unusable; a
		// 503 or a lost answer leaves it exactly as it was.
		if err == nil && r.Code >= 400 && r.Code < 500 {
			w.drop(i)
		}
		return kind, r, err
	}
	// Key change: a new client state needs a higher generation and a higher
	// keys_changed_at (docs/spec.md §4 login checks d, e), and generation must not
	// be below keys_changed_at (check a). FxA uses ms timestamps for both.
	i := w.rng.IntN(len(w.owned))
	u := w.owned[i]
	next := max(time.Now().UnixMilli(), u.generation+1, u.keysChangedAt+1)
	cs := w.newClientState()
	r, err := w.rq.Do(http.MethodPost, u.loginPath, "", w.loginBody(next, next, cs), false)
	if err == nil && r.Code == http.StatusOK {
		u.generation, u.keysChangedAt, u.clientState = next, next, cs
	} else {
		w.drop(i)
	}
	return kind, r, err
}

// drop forgets owned user i (order does not matter: picks are random).
func (w *worker) drop(i int) {
	last := len(w.owned) - 1
	w.owned[i] = w.owned[last]
	w.owned[last] = nil
	w.owned = w.owned[:last]
}

// record counts one measured operation.
func (w *worker) record(kind opKind, r client.Answer, err error, latency time.Duration) {
	s := &w.stats
	s.kindOps[kind]++
	if r.Member != "" {
		s.answered[r.Member]++
	}
	if err == nil && r.Code >= 200 && r.Code < 300 {
		s.kindOK[kind]++
		s.hist.Record(latency)
		return
	}
	s.errors[errorKey(r, err)]++
}

// shouldBackOff: a transport error or a 503 means the member cannot serve
// right now; hammering it in a tight loop would only burn the CPU it needs
// to recover (and the answer's Retry-After asks for a pause).
func shouldBackOff(r client.Answer, err error) bool {
	return err != nil || r.Code == http.StatusServiceUnavailable || r.Code == http.StatusTooManyRequests
}

// maxGeneration marks a retired user (docs/spec.md §1); such a user cannot sign in.
const maxGeneration = math.MaxInt64
