package console

import (
	"bytes"
	"embed"
	"io/fs"
	"net/http"
	"strings"
	"time"
)

//go:embed static
var static embed.FS

// CSP is the Content-Security-Policy of every console response. Nothing
// inline may run or style the page, so an injected string can at worst
// show as text; connect-src 'self' keeps the token from being sent to
// another origin by a script that is not ours anyway.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Files returns the embedded static files (tests and the benchmark read
// them).
func Files() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree always has static/
	}
	return sub
}

// Handler serves the console at / and /console/…, and hands every other
// request (the v1 API, /healthz, /metrics) to next.
func Handler(next http.Handler) http.Handler {
	files := http.FileServerFS(Files())
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if p != "/" && !strings.HasPrefix(p, "/console/") {
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", CSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "the console is read with GET", http.StatusMethodNotAllowed)
			return
		}
		// The files change with the binary only; revalidating each load
		// is cheap (they are small) and never serves a stale app.js
		// beside a new index.html after an upgrade.
		h.Set("Cache-Control", "no-cache")
		r2 := r.Clone(r.Context())
		if p == "/" {
			r2.URL.Path = "/index.html"
		} else {
			r2.URL.Path = strings.TrimPrefix(p, "/console")
		}
		if r2.URL.Path == "/index.html" {
			// http.FileServer redirects /index.html to ./; serve it
			// directly instead.
			b, err := fs.ReadFile(Files(), "index.html")
			if err != nil {
				http.Error(w, "console: "+err.Error(), http.StatusInternalServerError)
				return
			}
			h.Set("Content-Type", "text/html; charset=utf-8")
			http.ServeContent(w, r2, "index.html", time.Time{}, bytes.NewReader(b))
			return
		}
		if strings.HasSuffix(r2.URL.Path, "/") {
			http.NotFound(w, r) // no directory listings
			return
		}
		files.ServeHTTP(w, r2)
	})
}
