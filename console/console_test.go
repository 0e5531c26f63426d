package console

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, method, path string) *http.Response {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	return rec.Result()
}

func TestHandler(t *testing.T) {
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(299) })
	h := Handler(api)
	for _, c := range []struct {
		method, path string
		code         int
		ctype        string
		console      bool
	}{
		{"GET", "/", 200, "text/html; charset=utf-8", true},
		{"HEAD", "/", 200, "text/html; charset=utf-8", true},
		{"GET", "/console/app.js", 200, "text/javascript; charset=utf-8", true},
		{"GET", "/console/style.css", 200, "text/css; charset=utf-8", true},
		{"GET", "/console/", 404, "", true},
		{"GET", "/console/nope.js", 404, "", true},
		{"GET", "/console/../../etc/passwd", 404, "", true},
		{"POST", "/", 405, "", true},
		{"GET", "/v1/p/plans", 299, "", false},
		{"GET", "/healthz", 299, "", false},
	} {
		t.Run(c.method+c.path, func(t *testing.T) {
			resp := get(t, h, c.method, c.path)
			if resp.StatusCode != c.code {
				t.Fatalf("status %d, want %d", resp.StatusCode, c.code)
			}
			if c.ctype != "" && resp.Header.Get("Content-Type") != c.ctype {
				t.Errorf("Content-Type %q, want %q", resp.Header.Get("Content-Type"), c.ctype)
			}
			if got := resp.Header.Get("Content-Security-Policy"); (got == CSP) != c.console {
				t.Errorf("CSP %q on a console answer: %v", got, c.console)
			}
			if c.console && resp.Header.Get("X-Frame-Options") != "DENY" {
				t.Errorf("no X-Frame-Options DENY")
			}
		})
	}
}

// TestNoInlineCode: the CSP forbids inline scripts and styles, so the
// files must not rely on them (a browser would silently ignore them).
func TestNoInlineCode(t *testing.T) {
	inline := []*regexp.Regexp{
		regexp.MustCompile(`<script(?:\s[^>]*)?>\s*[^<\s]`), // a script with a body
		regexp.MustCompile(`\sstyle=`),
		regexp.MustCompile(`\son[a-z]+=`),
		regexp.MustCompile(`<style`),
		regexp.MustCompile(`(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}/`), // nothing from another host
	}
	err := fs.WalkDir(Files(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".html") {
			return err
		}
		f, _ := Files().Open(p)
		b, _ := io.ReadAll(f)
		f.Close()
		for _, tag := range regexp.MustCompile(`<script[^>]*>`).FindAll(b, -1) {
			if !strings.Contains(string(tag), " src=") {
				t.Errorf("%s: inline script %q", p, tag)
			}
		}
		for _, re := range inline {
			if loc := re.FindIndex(b); loc != nil {
				t.Errorf("%s: %q matches %s", p, b[loc[0]:loc[1]], re)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
