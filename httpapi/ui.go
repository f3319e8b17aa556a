package httpapi

import (
	"embed"
	"io/fs"
	"net/http"

	"github.com/gorilla/mux"
)

// The operator dashboard: plain HTML, CSS and JavaScript embedded in the
// binary, so it works offline and needs no build step. The files are
// public; the data the page shows comes from the API with the token the
// operator types into the page.
//
//go:embed ui
var uiFiles embed.FS

const uiPrefix = "/ui/"

// mountStatic serves the dashboard under /ui/ (and redirects /ui there).
func (s *Server) mountStatic(r *mux.Router) {
	sub, err := fs.Sub(uiFiles, "ui")
	if err != nil {
		panic("httpapi: embedded ui directory missing: " + err.Error())
	}
	files := http.StripPrefix(uiPrefix, http.FileServer(http.FS(sub)))
	r.PathPrefix(uiPrefix).Methods(http.MethodGet, http.MethodHead).Name("dashboard").Handler(
		http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			// The page always asks the API for fresh data; the files
			// themselves change only with the binary.
			w.Header().Set("Cache-Control", "no-cache")
			w.Header().Set("X-Content-Type-Options", "nosniff")
			files.ServeHTTP(w, req)
		}))
	r.Path("/ui").Methods(http.MethodGet, http.MethodHead).Name("dashboard-redirect").Handler(
		http.RedirectHandler(uiPrefix, http.StatusMovedPermanently))
	// A person who opens the member's address in a browser lands on the
	// dashboard; 302, not 301, so that a later release may serve / itself.
	r.Path("/").Methods(http.MethodGet, http.MethodHead).Name("root-redirect").Handler(
		http.RedirectHandler(uiPrefix, http.StatusFound))
}
