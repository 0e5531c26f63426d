package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cairn/internal/webdriver"
)

// Helpers of the console tests: internal/webdriver drives a headless
// Debian chromium through chromedriver; these fail the test on error and
// save screenshots as its artefacts.

// browser is one WebDriver session of a test.
type browser struct {
	t        *testing.T
	ctx      context.Context
	w        *webdriver.Browser
	shots    string // where screenshots go
	Download string // the browser's download directory
}

// requireBrowser returns the paths of chromium and chromedriver; without
// them the test is skipped, or fails under CAIRN_REQUIRE_ALL=1 (make
// test's deps step installs them).
func requireBrowser(t *testing.T) (chromium, driver string) {
	t.Helper()
	return requireTool(t, "chromium"), requireTool(t, "chromedriver")
}

// startBrowser opens a headless chromium session that ends with the
// test. Screenshots go to the test's artifact directory (go test
// -artifacts -outputdir DIR keeps it; make test does).
func startBrowser(t *testing.T) *browser {
	t.Helper()
	chromium, driver := requireBrowser(t)
	b := &browser{t: t, ctx: context.Background(), shots: t.ArtifactDir(), Download: t.TempDir()}
	w, err := webdriver.Start(b.ctx, webdriver.Options{Chromium: chromium, Driver: driver, ProfileDir: t.TempDir(), DownloadDir: b.Download})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close() })
	b.w = w
	return b
}

// open navigates to url.
func (b *browser) open(url string) {
	b.t.Helper()
	if err := b.w.Open(b.ctx, url); err != nil {
		b.t.Fatal(err)
	}
}

// js runs script (a function body; arguments[i] are args) and decodes
// what it returns into out (nil: ignored).
func (b *browser) js(out any, script string, args ...any) {
	b.t.Helper()
	if err := b.w.JS(b.ctx, out, script, args...); err != nil {
		b.t.Fatal(err)
	}
}

// wait polls script until it returns something truthy, and returns that;
// it fails the test after limit, with a screenshot and the page's text.
func (b *browser) wait(limit time.Duration, what, script string, args ...any) any {
	b.t.Helper()
	v, err := b.w.Wait(b.ctx, limit, script, args...)
	if err != nil {
		b.screenshot("timeout")
		var body string
		_ = b.w.JS(b.ctx, &body, "return document.body.innerText")
		b.t.Fatalf("waiting for %s: %v\npage text:\n%s", what, err, clip(body))
	}
	return v
}

// find waits for the element matching css and returns its reference.
func (b *browser) find(css string) string {
	b.t.Helper()
	b.wait(30*time.Second, css, "return document.querySelector(arguments[0]) !== null", css)
	el, err := b.w.Find(b.ctx, time.Second, css)
	if err != nil {
		b.t.Fatal(err)
	}
	return el
}

// click clicks the element matching css.
func (b *browser) click(css string) {
	b.t.Helper()
	if err := b.w.Click(b.ctx, b.find(css)); err != nil {
		b.t.Fatalf("click %s: %v", css, err)
	}
}

// typeInto clears the input matching css and types text into it.
func (b *browser) typeInto(css, text string) {
	b.t.Helper()
	if err := b.w.Type(b.ctx, b.find(css), text); err != nil {
		b.t.Fatalf("type into %s: %v", css, err)
	}
}

// text returns the visible text of the element matching css.
func (b *browser) text(css string) string {
	b.t.Helper()
	s, err := b.w.Text(b.ctx, b.find(css))
	if err != nil {
		b.t.Fatal(err)
	}
	return s
}

// screenshot saves the page as NAME.png in the artifact directory.
func (b *browser) screenshot(name string) {
	b.t.Helper()
	png, err := b.w.Screenshot(b.ctx)
	if err == nil {
		err = os.WriteFile(filepath.Join(b.shots, strings.ReplaceAll(name, "/", "-")+".png"), png, 0o644)
	}
	if err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
	}
}

// downloaded waits for the browser to finish downloading name and returns
// its bytes.
func (b *browser) downloaded(name string) []byte {
	b.t.Helper()
	p := filepath.Join(b.Download, name)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if data, err := os.ReadFile(p); err == nil {
			if _, err := os.Stat(p + ".crdownload"); os.IsNotExist(err) {
				return data
			}
		}
		if time.Now().After(deadline) {
			ents, _ := os.ReadDir(b.Download)
			b.t.Fatalf("no download %s in %s within 30s (it holds %v)", name, b.Download, ents)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
