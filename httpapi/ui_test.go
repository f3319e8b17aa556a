package httpapi

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/wimms-dev/wimms/httpapi/internal/fake"
)

// outsideResource matches a reference the browser would fetch from another
// origin (a CDN, a font service): the dashboard must work offline.
var outsideResource = regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?(https?:)?//|url\(\s*["']?(https?:)?//|@import|fetch\(\s*["'](https?:)?//`)

func TestDashboardFilesServedAndSelfContained(t *testing.T) {
	h := New(Config{Store: fake.NewStore(), APIToken: "secret"}).Handler()
	names, err := fs.Glob(uiFiles, "ui/*")
	if err != nil || len(names) < 3 {
		t.Fatalf("embedded dashboard files: %v %v", names, err)
	}
	wantType := map[string]string{".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
	for _, name := range names {
		b, _ := fs.ReadFile(uiFiles, name)
		if loc := outsideResource.FindIndex(b); loc != nil {
			t.Errorf("%s refers to another origin: %q", name, b[loc[0]:min(len(b), loc[1]+40)])
		}
		path := "/" + name
		if strings.HasSuffix(path, "/index.html") {
			path = strings.TrimSuffix(path, "index.html") // FileServer redirects index.html to its directory
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != http.StatusOK {
			t.Errorf("GET %s without a token: %d, want 200 (the files are public, the data is not)", path, rec.Code)
			continue
		}
		ext := name[strings.LastIndex(name, "."):]
		if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, wantType[ext]) {
			t.Errorf("GET %s: Content-Type %q, want %s", path, ct, wantType[ext])
		}
	}

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/ui/", nil))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `<script src="app.js">`) {
		t.Fatalf("GET /ui/: %d %.200s", rec.Code, rec.Body)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/ui", nil))
	if rec.Code != http.StatusMovedPermanently || rec.Header().Get("Location") != "/ui/" {
		t.Fatalf("GET /ui: %d to %q, want 301 to /ui/", rec.Code, rec.Header().Get("Location"))
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != http.StatusFound || rec.Header().Get("Location") != "/ui/" {
		t.Fatalf("GET /: %d to %q, want 302 to /ui/", rec.Code, rec.Header().Get("Location"))
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/services", nil))
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("the API behind the dashboard must still need the token: %d", rec.Code)
	}
}
