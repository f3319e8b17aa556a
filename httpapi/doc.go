// Package httpapi provides the HTTP API of docs/api.md: it validates every
// request, translates it into commands and reads on small interfaces (Store,
// Cluster), and renders answers and errors in the token server's shape.
// It holds no state of its own. See DESIGN.md in this directory.
package httpapi
