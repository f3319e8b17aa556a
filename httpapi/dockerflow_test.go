package httpapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/wimms-dev/wimms/httpapi/internal/fake"
	"github.com/wimms-dev/wimms/store"
)

func getJSON(t *testing.T, h http.Handler, path string, out any) int {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("GET %s: Content-Type %q, want application/json (body %s)", path, ct, rec.Body)
	}
	if err := json.Unmarshal(rec.Body.Bytes(), out); err != nil {
		t.Fatalf("GET %s: body %q: %v", path, rec.Body, err)
	}
	return rec.Code
}

func TestLBHeartbeatAnswersWhileServingEvenWithoutLeader(t *testing.T) {
	st := fake.NewStore()
	st.MetaValue = store.Meta{MemberID: "m1"}
	st.ReadyFlag = false
	h := New(Config{Store: st, APIToken: "secret"}).Handler()
	var body map[string]string
	if code := getJSON(t, h, "/__lbheartbeat__", &body); code != http.StatusOK || body["status"] != "ok" {
		t.Fatalf("lbheartbeat: %d %v, want 200 ok without a token and without a leader", code, body)
	}
}

func TestHeartbeat(t *testing.T) {
	cases := []struct {
		name        string
		knownLeader bool
		ready       bool
		wantCode    int
		wantFailing []string
	}{
		{"ready", true, true, http.StatusOK, nil},
		{"no leader", false, false, http.StatusServiceUnavailable, []string{checkLeader, checkCatchUp}},
		{"catching up", true, false, http.StatusServiceUnavailable, []string{checkCatchUp}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := fake.NewStore()
			st.MetaValue = store.Meta{MemberID: "m1", KnownLeader: tc.knownLeader}
			st.ReadyFlag = tc.ready
			h := New(Config{Store: st, APIToken: "secret"}).Handler()
			var hb HeartbeatJSON
			code := getJSON(t, h, "/__heartbeat__", &hb)
			if code != tc.wantCode {
				t.Fatalf("code %d, want %d (body %+v)", code, tc.wantCode, hb)
			}
			wantStatus := "ok"
			if len(tc.wantFailing) > 0 {
				wantStatus = "error"
			}
			if hb.Status != wantStatus {
				t.Errorf("status %q, want %q", hb.Status, wantStatus)
			}
			failing := map[string]bool{}
			for _, c := range tc.wantFailing {
				failing[c] = true
				if hb.Details[c] == "" {
					t.Errorf("failing check %q has no detail: %+v", c, hb)
				}
			}
			for _, c := range []string{checkLeader, checkCatchUp} {
				want := "ok"
				if failing[c] {
					want = "error"
				}
				if hb.Checks[c] != want {
					t.Errorf("check %q = %q, want %q (%+v)", c, hb.Checks[c], want, hb)
				}
			}
		})
	}
}

func TestVersion(t *testing.T) {
	t.Run("from the build", func(t *testing.T) {
		want := VersionInfo{Source: "https://example.com/src", Version: "v1.2.3", Commit: "abc123", Build: "https://ci.example.com/42"}
		h := New(Config{Store: fake.NewStore(), Version: want}).Handler()
		var got VersionInfo
		if code := getJSON(t, h, "/__version__", &got); code != http.StatusOK || got != want {
			t.Fatalf("got %d %+v, want 200 %+v", code, got, want)
		}
	})
	t.Run("defaults", func(t *testing.T) {
		h := New(Config{Store: fake.NewStore()}).Handler()
		var raw map[string]string
		if code := getJSON(t, h, "/__version__", &raw); code != http.StatusOK {
			t.Fatalf("code %d", code)
		}
		for _, k := range []string{"source", "version", "commit", "build"} {
			if raw[k] == "" {
				t.Errorf("%q is empty in %v", k, raw)
			}
		}
		if raw["source"] != DefaultSource || raw["version"] != "dev" {
			t.Errorf("defaults: %v", raw)
		}
	})
}

// explainingStore is a Store that names its failing readiness check, as
// *store.Store does.
type explainingStore struct {
	*fake.Store
	check, why string
}

func (s explainingStore) NotReady() (string, string) { return s.check, s.why }

func TestHeartbeatNamesTheFailingReadinessCheck(t *testing.T) {
	cases := []struct {
		name, check, why string
		knownLeader      bool
		wantFailing      []string
	}{
		{"ready", "", "", true, nil},
		{"appends fail", store.CheckAppend, "appending to the raft log fails: no space left on device", true, []string{checkAppend}},
		{"behind", store.CheckCaughtUp, "this member last had the leader's commits applied 3s ago", true, []string{checkCatchUp}},
		{"no leader", store.CheckLeader, "this member knows no leader", false, []string{checkLeader, checkCatchUp}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := fake.NewStore()
			st.MetaValue = store.Meta{MemberID: "m1", KnownLeader: tc.knownLeader}
			st.ReadyFlag = tc.check == ""
			h := New(Config{Store: explainingStore{st, tc.check, tc.why}, APIToken: "secret"}).Handler()
			var hb HeartbeatJSON
			code := getJSON(t, h, "/__heartbeat__", &hb)
			want := map[string]string{checkLeader: "ok", checkCatchUp: "ok", checkAppend: "ok"}
			for _, c := range tc.wantFailing {
				want[c] = "error"
				if hb.Details[c] == "" {
					t.Errorf("failing check %q has no detail: %+v", c, hb)
				}
			}
			for c, w := range want {
				if hb.Checks[c] != w {
					t.Errorf("check %q = %q, want %q (%+v)", c, hb.Checks[c], w, hb)
				}
			}
			if tc.check == store.CheckAppend && hb.Details[checkAppend] != tc.why {
				t.Errorf("append detail %q, want the store's reason %q", hb.Details[checkAppend], tc.why)
			}
			if wantCode := map[bool]int{true: http.StatusOK, false: http.StatusServiceUnavailable}[tc.check == ""]; code != wantCode {
				t.Errorf("code %d, want %d", code, wantCode)
			}
			var rz map[string]any
			if tc.check != "" {
				if code := getJSON(t, h, "/readyz", &rz); code != http.StatusServiceUnavailable || !containsReason(rz, tc.why) {
					t.Errorf("readyz: %d %v, want 503 naming %q", code, rz, tc.why)
				}
			}
		})
	}
}

func containsReason(body map[string]any, why string) bool {
	b, _ := json.Marshal(body)
	w, _ := json.Marshal(why)
	return why != "" && strings.Contains(string(b), strings.Trim(string(w), `"`))
}
