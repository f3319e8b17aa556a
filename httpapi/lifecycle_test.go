package httpapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/wimms-dev/wimms/fsm"
	"github.com/wimms-dev/wimms/httpapi/wire"
)

func TestImportEndpoint(t *testing.T) {
	st := &fsmStore{f: fsm.New(fsm.Options{}), clock: 1_000_000}
	srv := New(Config{Store: st, APIToken: "api", AdminToken: "admin"})
	post := func(token, body string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/v1/import", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		w := httptest.NewRecorder()
		srv.Handler().ServeHTTP(w, req)
		return w
	}
	batch := `{"services":[{"id":2,"service":"sync-1.5","pattern":"{node}/1.5/{uid}"}],
	  "nodes":[{"id":5,"service":"sync-1.5","node":"https://n5","capacity":10,"available":3,"downed":false,"backoff":true}],
	  "records":[{"uid":77,"service":"sync-1.5","email":"a@x","node_id":5,"generation":4,"keys_changed_at":null,"client_state":"ab","created_at":900000,"replaced_at":null}]}`
	if w := post("api", batch); w.Code != http.StatusUnauthorized {
		t.Fatalf("api token on import: %d", w.Code)
	}
	w := post("admin", batch)
	if w.Code != http.StatusOK {
		t.Fatalf("import: %d %s", w.Code, w.Body)
	}
	var res wire.ImportResult
	if err := json.Unmarshal(w.Body.Bytes(), &res); err != nil || res.Records.Created != 1 || res.Nodes.Created != 1 || res.Services.Created != 1 {
		t.Fatalf("answer %s (%v)", w.Body, err)
	}
	u, err := st.f.GetUser("sync-1.5", "a@x")
	if err != nil || u.UID != 77 || u.APIEndpoint != "https://n5/1.5/77" || u.KeysChangedAt != fsm.Null {
		t.Fatalf("user %+v %v", u, err)
	}
	w = post("admin", batch)
	if err := json.Unmarshal(w.Body.Bytes(), &res); err != nil || res.Records.Unchanged != 1 || res.Records.Created != 0 {
		t.Fatalf("second import %s", w.Body)
	}
	for _, bad := range []string{`{"records":[{"uid":"x"}]}`, `{"nope":1}`, `{} {}`,
		`{"records":[{"uid":78,"service":"sync-1.5","email":"a@x","node_id":5,"created_at":1}]}`} {
		if w := post("admin", bad); w.Code != http.StatusBadRequest {
			t.Fatalf("bad batch %s: %d %s", bad, w.Code, w.Body)
		}
	}
	if w := post("admin", `{}`); w.Code != http.StatusOK {
		t.Fatalf("empty batch: %d", w.Code)
	}
}

func TestBackupEndpointWithoutSupport(t *testing.T) {
	st := &fsmStore{f: fsm.New(fsm.Options{}), clock: 1_000_000}
	srv := New(Config{Store: st})
	w := httptest.NewRecorder()
	srv.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/v1/backup", nil))
	if w.Code != http.StatusNotImplemented {
		t.Fatalf("backup on a store without backups: %d", w.Code)
	}
}
