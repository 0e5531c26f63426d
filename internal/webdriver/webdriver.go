// Package webdriver is a small client of the W3C WebDriver protocol as
// Debian's chromedriver (package chromium-driver) speaks it to a headless
// Debian chromium: start both, navigate, run scripts, find, type, click,
// read and take screenshots. The console's browser tests (e2e) and its
// benchmark (scripts/consolebench) drive the console with it.
package webdriver

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"time"
)

// elementKey is the W3C name of an element reference in JSON.
const elementKey = "element-6066-11e4-a52e-4f735466cecf"

// ErrNotReady: chromedriver did not answer /status as ready in time.
var ErrNotReady = errors.New("chromedriver not ready")

// Options choose the browser.
type Options struct {
	Chromium, Driver string // paths of chromium and chromedriver
	// ProfileDir and DownloadDir are directories of the caller's (it
	// removes them).
	ProfileDir, DownloadDir string
	// Width and Height of the window (default 1400×1000).
	Width, Height int
}

// Browser is one chromedriver with one WebDriver session.
type Browser struct {
	base    string
	session string
	client  *http.Client
	cmd     *exec.Cmd
	log     *lockedBuffer
}

// Start starts chromedriver on a free port of 127.0.0.1 and opens a
// session of a headless chromium. Close ends both.
func Start(ctx context.Context, o Options) (*Browser, error) {
	if o.Width == 0 {
		o.Width, o.Height = 1400, 1000
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	b := &Browser{base: fmt.Sprintf("http://127.0.0.1:%d", port), client: &http.Client{Timeout: 2 * time.Minute}, log: &lockedBuffer{}}
	b.cmd = exec.Command(o.Driver, "--port="+strconv.Itoa(port), "--allowed-ips=127.0.0.1")
	b.cmd.Stdout, b.cmd.Stderr = b.log, b.log
	if err := b.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start chromedriver: %w", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var st struct {
			Ready bool `json:"ready"`
		}
		if err := b.do(ctx, "GET", "/status", nil, &st); err == nil && st.Ready {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			b.kill()
			return nil, fmt.Errorf("%w within 30s: %s", ErrNotReady, b.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	args := []string{"--headless=new", "--disable-gpu", "--disable-dev-shm-usage", fmt.Sprintf("--window-size=%d,%d", o.Width, o.Height),
		"--no-first-run", "--no-default-browser-check", "--user-data-dir=" + o.ProfileDir}
	if os.Geteuid() == 0 {
		args = append(args, "--no-sandbox") // chromium refuses root otherwise
	}
	copts := map[string]any{"binary": o.Chromium, "args": args}
	if o.DownloadDir != "" {
		copts["prefs"] = map[string]any{"download.default_directory": o.DownloadDir, "download.prompt_for_download": false}
	}
	caps := map[string]any{"capabilities": map[string]any{"alwaysMatch": map[string]any{"browserName": "chrome", "goog:chromeOptions": copts}}}
	var sess struct {
		SessionID string `json:"sessionId"`
	}
	if err := b.do(ctx, "POST", "/session", caps, &sess); err != nil {
		b.kill()
		return nil, fmt.Errorf("new WebDriver session: %w (chromedriver: %s)", err, b.log.String())
	}
	b.session = sess.SessionID
	return b, nil
}

// Close ends the session and stops chromedriver.
func (b *Browser) Close() error {
	err := b.do(context.Background(), "DELETE", "/session/"+b.session, nil, nil)
	b.kill()
	return err
}

func (b *Browser) kill() {
	_ = b.cmd.Process.Kill()
	_ = b.cmd.Wait()
}

// do sends one WebDriver command and decodes its "value" into out.
func (b *Browser) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		j, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(ctx, method, b.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := b.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var env struct {
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		return fmt.Errorf("%s %s: %d, not JSON: %q", method, path, resp.StatusCode, raw)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error   string `json:"error"`
			Message string `json:"message"`
		}
		_ = json.Unmarshal(env.Value, &e)
		return fmt.Errorf("%s %s: %d %s: %s", method, path, resp.StatusCode, e.Error, e.Message)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(env.Value, out)
}

func (b *Browser) cmdSession(ctx context.Context, method, path string, body, out any) error {
	return b.do(ctx, method, "/session/"+b.session+path, body, out)
}

// Open navigates to url and returns once the page has loaded.
func (b *Browser) Open(ctx context.Context, url string) error {
	return b.cmdSession(ctx, "POST", "/url", map[string]string{"url": url}, nil)
}

// JS runs script (a function body; arguments[i] are args; a returned
// promise is awaited) and decodes its result into out (nil: dropped).
func (b *Browser) JS(ctx context.Context, out any, script string, args ...any) error {
	if args == nil {
		args = []any{}
	}
	return b.cmdSession(ctx, "POST", "/execute/sync", map[string]any{"script": script, "args": args}, out)
}

// Wait runs script every 100 ms until it returns something truthy, and
// returns that; after limit it returns the last error or value.
func (b *Browser) Wait(ctx context.Context, limit time.Duration, script string, args ...any) (any, error) {
	deadline := time.Now().Add(limit)
	for {
		var v any
		err := b.JS(ctx, &v, script, args...)
		if err == nil && Truthy(v) {
			return v, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return v, fmt.Errorf("still %v after %v: %w", v, limit, errors.Join(err, ctx.Err(), errTimeout))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

var errTimeout = errors.New("timed out")

// Truthy is JavaScript's truthiness of a decoded JSON value.
func Truthy(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case bool:
		return x
	case string:
		return x != ""
	case float64:
		return x != 0
	}
	return true
}

// Find waits up to limit for an element matching css and returns its
// reference.
func (b *Browser) Find(ctx context.Context, limit time.Duration, css string) (string, error) {
	if _, err := b.Wait(ctx, limit, "return document.querySelector(arguments[0]) !== null", css); err != nil {
		return "", fmt.Errorf("no element %s: %w", css, err)
	}
	var el map[string]string
	if err := b.cmdSession(ctx, "POST", "/element", map[string]string{"using": "css selector", "value": css}, &el); err != nil {
		return "", err
	}
	return el[elementKey], nil
}

// Click clicks element el as a user does (WebDriver scrolls to it and
// refuses it if something else is on top).
func (b *Browser) Click(ctx context.Context, el string) error {
	return b.cmdSession(ctx, "POST", "/element/"+el+"/click", map[string]any{}, nil)
}

// Type clears input el and types text into it.
func (b *Browser) Type(ctx context.Context, el, text string) error {
	if err := b.cmdSession(ctx, "POST", "/element/"+el+"/clear", map[string]any{}, nil); err != nil {
		return err
	}
	return b.cmdSession(ctx, "POST", "/element/"+el+"/value", map[string]any{"text": text}, nil)
}

// Text returns the visible text of element el.
func (b *Browser) Text(ctx context.Context, el string) (string, error) {
	var s string
	err := b.cmdSession(ctx, "GET", "/element/"+el+"/text", nil, &s)
	return s, err
}

// Screenshot returns the page as PNG.
func (b *Browser) Screenshot(ctx context.Context) ([]byte, error) {
	var s string
	if err := b.cmdSession(ctx, "GET", "/screenshot", nil, &s); err != nil {
		return nil, err
	}
	return base64.StdEncoding.DecodeString(s)
}

// lockedBuffer collects chromedriver's output for error messages.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() > 64<<10 {
		return len(p), nil // enough to say what went wrong
	}
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
