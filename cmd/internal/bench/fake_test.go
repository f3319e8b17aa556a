package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
)

// fakeAPI implements just enough of docs/api.md (service PUT, node POST, user
// POST/GET/login) to check that the bench's requests are well-formed and
// that its login state tracking obeys docs/spec.md §4's login checks. Any request
// it cannot accept is recorded as a problem and answered 400, so a test
// that expects zero errors also proves zero malformed requests.
type fakeAPI struct {
	token string
	// failLoginEvery > 0 answers every n-th login 503 no-leader without
	// applying it, to test error accounting.
	failLoginEvery int

	mu          sync.Mutex
	services    map[string]string // name → pattern
	nodes       map[string]bool   // service + " " + node URL
	users       map[string]*fakeUser
	nextUID     int64
	counts      map[string]int // put-service, add-node, alloc, get, login, login-new, login-keychange, login-failed-injected
	consistency map[string]int
	problems    []string
	logins      int
	index       uint64         // bumped by every write, sent as X-Wimms-Index
	lagPolls    map[string]int // member id → stale service reads answered as not caught up
	servicePoll map[string]int // member id → stale service reads served
}

type fakeUser struct {
	uid           int64
	email         string
	generation    int64
	keysChangedAt int64 // 0 = null
	clientState   string
	old           []string
}

func newFakeAPI(token string) *fakeAPI {
	return &fakeAPI{
		token:       token,
		services:    map[string]string{},
		nodes:       map[string]bool{},
		users:       map[string]*fakeUser{},
		counts:      map[string]int{},
		consistency: map[string]int{},
		lagPolls:    map[string]int{},
		servicePoll: map[string]int{},
	}
}

// server serves the fake as member id (X-Wimms-Member).
func (f *fakeAPI) server(t *testing.T, id string) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /v1/services/{service}", f.putService)
	mux.HandleFunc("GET /v1/services/{service}", func(w http.ResponseWriter, r *http.Request) { f.getService(w, r, id) })
	mux.HandleFunc("POST /v1/services/{service}/nodes", f.addNode)
	mux.HandleFunc("POST /v1/services/{service}/users", f.allocate)
	mux.HandleFunc("GET /v1/services/{service}/users/{email}", f.getUser)
	mux.HandleFunc("POST /v1/services/{service}/users/{email}/login", f.login)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Wimms-Member", id)
		if f.token != "" && r.Header.Get("Authorization") != "Bearer "+f.token {
			writeErr(w, http.StatusUnauthorized, "unauthorized")
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func (f *fakeAPI) count(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.counts[key]
}

func (f *fakeAPI) problemList() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.problems)
}

func writeErr(w http.ResponseWriter, code int, status string) {
	w.Header().Set("Content-Type", "application/json")
	if code == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	w.WriteHeader(code)
	fmt.Fprintf(w, `{"status":%q,"errors":[{"location":"body","name":"","description":"fake"}]}`, status)
}

// answer writes a success with the current index. Callers hold f.mu.
func (f *fakeAPI) answer(w http.ResponseWriter, code int, v any) {
	w.Header().Set("X-Wimms-Index", fmt.Sprint(f.index))
	writeJSON(w, code, v)
}

// getService answers a stale read as a lagging follower would: the first
// lagPolls[id] reads report an index behind every write.
func (f *fakeAPI) getService(w http.ResponseWriter, r *http.Request, id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.URL.Query().Get("consistency") != "stale" {
		f.bad(w, r, "the fake only serves stale service reads")
		return
	}
	f.servicePoll[id]++
	idx := f.index
	if f.servicePoll[id] <= f.lagPolls[id] {
		idx = 0
	}
	w.Header().Set("X-Wimms-Index", fmt.Sprint(idx))
	writeJSON(w, http.StatusOK, map[string]any{"service": r.PathValue("service")})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// bad records a malformed request and answers 400. Callers hold f.mu.
func (f *fakeAPI) bad(w http.ResponseWriter, r *http.Request, why string) {
	f.problems = append(f.problems, r.Method+" "+r.URL.Path+": "+why)
	writeErr(w, http.StatusBadRequest, "bad-request")
}

// decode reads a JSON body strictly: content type, size, unknown fields.
func decode(r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		return fmt.Errorf("content type %q", ct)
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("trailing data")
	}
	return nil
}

var (
	clientStateRE = regexp.MustCompile(`^[A-Za-z0-9._-]{0,32}$`)
	emailRE       = regexp.MustCompile(`^[!-.0-~]{1,255}$`) // printable, no '/'
)

func (f *fakeAPI) putService(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Pattern       *string `json:"pattern"`
		ReleaseRate   *string `json:"release_rate"`
		AllowNewUsers *bool   `json:"allow_new_users"`
		Spread        *int64  `json:"spread"`
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := decode(r, &body); err != nil || body.Pattern == nil || len(*body.Pattern) > 128 {
		f.bad(w, r, fmt.Sprintf("service body: %v", err))
		return
	}
	name := r.PathValue("service")
	f.counts["put-service"]++
	_, existed := f.services[name]
	f.services[name] = *body.Pattern
	f.index++
	code := http.StatusCreated
	if existed {
		code = http.StatusOK
	}
	f.answer(w, code, map[string]any{"id": 1, "service": name, "pattern": *body.Pattern, "release_rate": 0.1, "allow_new_users": true, "spread": 1})
}

func (f *fakeAPI) addNode(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Node     *string `json:"node"`
		Capacity *int64  `json:"capacity"`
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := decode(r, &body); err != nil || body.Node == nil || body.Capacity == nil || *body.Capacity < 0 || len(*body.Node) > 64 {
		f.bad(w, r, fmt.Sprintf("node body: %v", err))
		return
	}
	svc := r.PathValue("service")
	if _, ok := f.services[svc]; !ok {
		writeErr(w, http.StatusNotFound, "not-found")
		return
	}
	key := svc + " " + *body.Node
	if f.nodes[key] {
		writeErr(w, http.StatusConflict, "conflict")
		return
	}
	f.nodes[key] = true
	f.counts["add-node"]++
	f.index++
	f.answer(w, http.StatusCreated, map[string]any{"id": len(f.nodes), "service": svc, "node": *body.Node, "capacity": *body.Capacity})
}

type userFields struct {
	Generation    *int64  `json:"generation"`
	KeysChangedAt *int64  `json:"keys_changed_at"`
	ClientState   *string `json:"client_state"`
}

func (f *fakeAPI) userJSON(u *fakeUser, svc string) map[string]any {
	var kca any
	if u.keysChangedAt > 0 {
		kca = u.keysChangedAt
	}
	return map[string]any{
		"uid": u.uid, "service": svc, "email": u.email, "node_id": 1, "node": "https://n",
		"api_endpoint": "https://n/1.5/1", "generation": u.generation, "keys_changed_at": kca,
		"client_state": u.clientState, "old_client_states": u.old, "created_at": 1,
		"replaced_at": nil, "first_seen_at": 1,
	}
}

// checkFields validates the optional user fields. Callers hold f.mu.
func (f *fakeAPI) checkFields(b userFields) string {
	if b.Generation != nil && *b.Generation < 0 {
		return "negative generation"
	}
	if b.KeysChangedAt != nil && *b.KeysChangedAt < 0 {
		return "negative keys_changed_at"
	}
	if b.ClientState != nil && !clientStateRE.MatchString(*b.ClientState) {
		return "bad client_state " + *b.ClientState
	}
	return ""
}

func (f *fakeAPI) newUser(email string, b userFields) *fakeUser {
	f.nextUID++
	u := &fakeUser{uid: f.nextUID, email: email}
	if b.Generation != nil {
		u.generation = *b.Generation
	}
	if b.KeysChangedAt != nil {
		u.keysChangedAt = *b.KeysChangedAt
	}
	if b.ClientState != nil {
		u.clientState = *b.ClientState
	}
	return u
}

func (f *fakeAPI) allocate(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Email *string `json:"email"`
		userFields
		Node *string `json:"node"`
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := decode(r, &body); err != nil {
		f.bad(w, r, err.Error())
		return
	}
	if body.Email == nil || !emailRE.MatchString(*body.Email) {
		f.bad(w, r, "bad email")
		return
	}
	if why := f.checkFields(body.userFields); why != "" {
		f.bad(w, r, why)
		return
	}
	svc := r.PathValue("service")
	if _, ok := f.services[svc]; !ok {
		writeErr(w, http.StatusNotFound, "not-found")
		return
	}
	f.counts["alloc"]++
	key := svc + " " + *body.Email
	if u, ok := f.users[key]; ok {
		writeJSON(w, http.StatusOK, f.userJSON(u, svc))
		return
	}
	u := f.newUser(*body.Email, body.userFields)
	f.users[key] = u
	f.index++
	f.answer(w, http.StatusCreated, f.userJSON(u, svc))
}

func (f *fakeAPI) getUser(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	level := r.URL.Query().Get("consistency")
	switch level {
	case "", "stale", "default", "linearizable":
	default:
		f.bad(w, r, "consistency "+level)
		return
	}
	f.counts["get"]++
	f.consistency[level]++
	svc := r.PathValue("service")
	u, ok := f.users[svc+" "+r.PathValue("email")]
	if !ok {
		writeErr(w, http.StatusNotFound, "not-found")
		return
	}
	writeJSON(w, http.StatusOK, f.userJSON(u, svc))
}

// login follows docs/spec.md §4's login, including checks a–g, so a bench that
// sends a stale or inconsistent state gets the 401 a server would give.
func (f *fakeAPI) login(w http.ResponseWriter, r *http.Request) {
	var b userFields
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := decode(r, &b); err != nil {
		f.bad(w, r, err.Error())
		return
	}
	if why := f.checkFields(b); why != "" {
		f.bad(w, r, why)
		return
	}
	if b.ClientState == nil {
		f.bad(w, r, "login without client_state")
		return
	}
	email := r.PathValue("email")
	if !emailRE.MatchString(email) {
		f.bad(w, r, "bad email in path")
		return
	}
	f.logins++
	if f.failLoginEvery > 0 && f.logins%f.failLoginEvery == 0 {
		f.counts["login-failed-injected"]++
		writeErr(w, http.StatusServiceUnavailable, "no-leader")
		return
	}
	svc := r.PathValue("service")
	key := svc + " " + email
	gen, kca, cs := int64(0), int64(0), *b.ClientState
	if b.Generation != nil {
		gen = *b.Generation
	}
	if b.KeysChangedAt != nil {
		kca = *b.KeysChangedAt
	}
	u, ok := f.users[key]
	if !ok {
		u = f.newUser(email, b)
		f.users[key] = u
		f.counts["login-new"]++
		f.counts["login"]++
		writeJSON(w, http.StatusOK, f.userJSON(u, svc))
		return
	}
	changes := cs != u.clientState
	switch {
	case kca > u.keysChangedAt && gen > 0 && gen < kca:
		writeErr(w, http.StatusUnauthorized, "invalid-keysChangedAt")
		return
	case u.clientState != "" && cs == "":
		writeErr(w, http.StatusUnauthorized, "invalid-client-state")
		return
	case slices.Contains(u.old, cs):
		writeErr(w, http.StatusUnauthorized, "invalid-client-state")
		return
	case changes && gen > 0 && gen <= u.generation:
		writeErr(w, http.StatusUnauthorized, "invalid-client-state")
		return
	case changes && kca > 0 && kca <= u.keysChangedAt:
		writeErr(w, http.StatusUnauthorized, "invalid-client-state")
		return
	case gen > 0 && gen < u.generation:
		writeErr(w, http.StatusUnauthorized, "invalid-generation")
		return
	case u.keysChangedAt > 0 && kca < u.keysChangedAt:
		writeErr(w, http.StatusUnauthorized, "invalid-keysChangedAt")
		return
	}
	if gen > 0 {
		u.generation = gen
	}
	if kca > 0 {
		u.keysChangedAt = kca
	}
	if changes {
		if u.clientState != "" {
			u.old = append([]string{u.clientState}, u.old...)
		}
		u.clientState = cs
		f.nextUID++
		u.uid = f.nextUID
		f.counts["login-keychange"]++
	}
	f.counts["login"]++
	out := f.userJSON(u, svc)
	out["fxa_kid"] = "fake"
	writeJSON(w, http.StatusOK, out)
}

func (f *fakeAPI) distinctUsers(prefix string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for k := range f.users {
		if strings.Contains(k, " "+prefix) {
			n++
		}
	}
	return n
}
