package main

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"cairn/dedup"
)

// defaultOverlayDir is DIR/overlays for a repository in a local directory.
func (a *app) defaultOverlayDir() (string, error) {
	dir, err := a.repoDir()
	if err != nil {
		return "", err
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return "", usagef("--overlay-dir is required: the repository %s is not a local directory", dir)
	}
	return filepath.Join(dir, "overlays"), nil
}

// loadTLS builds the server's TLS configuration from the flags, or nil.
func loadTLS(f nbdServeFlags) (*tls.Config, error) {
	if f.tlsCert == "" {
		if f.tlsRequired {
			return nil, usagef("--tls-required needs --tls-cert and --tls-key")
		}
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(f.tlsCert, f.tlsKey)
	if err != nil {
		return nil, fmt.Errorf("load TLS certificate: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// minSecret is the shortest export secret accepted (e.g. openssl rand -hex 16).
const minSecret = 16

// readSecret reads the export secret from path ("" for none).
func readSecret(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read secret file: %w", err)
	}
	s := string(bytes.TrimRight(b, "\r\n"))
	switch {
	case len(s) < minSecret:
		return "", fmt.Errorf("secret file %s: the secret must have at least %d characters", path, minSecret)
	case strings.ContainsAny(s, "/ \t\r\n"):
		return "", fmt.Errorf("secret file %s: the secret must not contain '/' or white space", path)
	}
	return s, nil
}

// nbdListen listens on HOST:PORT or unix:PATH. A stale socket file (no
// server behind it) is replaced.
func nbdListen(spec string) (net.Listener, error) {
	path, isUnix := strings.CutPrefix(spec, "unix:")
	if !isUnix {
		l, err := net.Listen("tcp", spec)
		if err != nil {
			return nil, fmt.Errorf("listen: %w", err)
		}
		return l, nil
	}
	if path == "" {
		return nil, usagef("--listen unix: needs a socket path")
	}
	if st, err := os.Lstat(path); err == nil {
		if st.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("listen: %s exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("listen: %s is in use by another server", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("listen: remove stale socket: %w", err)
		}
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	return l, nil
}

// nbdURI is the NBD URI (the form qemu and libnbd take) of export name at
// the listener's address.
func nbdURI(l net.Listener, name string, tlsOn bool) string {
	u := url.URL{Scheme: "nbd", Path: "/" + name}
	if tlsOn {
		u.Scheme = "nbds"
	}
	if l.Addr().Network() == "unix" {
		u.Scheme += "+unix"
		u.RawQuery = "socket=" + l.Addr().String()
	} else {
		u.Host = l.Addr().String()
	}
	return u.String()
}

type nbdExportJSON struct {
	Name      string    `json:"name"`
	ID        string    `json:"id"`
	Source    string    `json:"source"`
	CreatedAt time.Time `json:"created_at"`
	Size      int64     `json:"size"`
	URI       string    `json:"uri"`
}

type nbdServeJSON struct {
	Listen     string          `json:"listen"`
	Network    string          `json:"network"`
	Writable   bool            `json:"writable"`
	OverlayDir string          `json:"overlay_dir,omitempty"`
	TLS        string          `json:"tls"`
	Secret     bool            `json:"secret"`
	Exports    []nbdExportJSON `json:"exports"`
}

// printNBDServe prints where the server listens and what it exports. With
// a secret, names and URIs show the placeholder SECRET.
func (a *app) printNBDServe(l net.Listener, cps []*dedup.Checkpoint, f nbdServeFlags, overlayDir string, secret bool) error {
	tlsMode := "off"
	switch {
	case f.tlsRequired:
		tlsMode = "required"
	case f.tlsCert != "":
		tlsMode = "optional"
	}
	out := nbdServeJSON{
		Listen: l.Addr().String(), Network: l.Addr().Network(), Writable: f.writable,
		OverlayDir: overlayDir, TLS: tlsMode, Secret: secret, Exports: []nbdExportJSON{},
	}
	for _, cp := range cps {
		name := cp.ID
		if secret {
			name = "SECRET/" + cp.ID
		}
		out.Exports = append(out.Exports, nbdExportJSON{
			Name: name, ID: cp.ID, Source: cp.Source, CreatedAt: cp.CreatedAt, Size: cp.Size,
			URI: nbdURI(l, name, f.tlsRequired),
		})
	}
	if a.jsonOut {
		return writeJSON(a.stdout, out)
	}
	mode := "read-only"
	if f.writable {
		mode = "writable, overlays in " + overlayDir
	}
	if _, err := fmt.Fprintf(a.stdout, "listening on %s (%s, TLS %s)\n", out.Listen, mode, tlsMode); err != nil {
		return err
	}
	if a.quiet {
		return nil
	}
	if len(cps) == 0 {
		_, err := fmt.Fprintln(a.stdout, "no checkpoints yet: new ones are served as they appear")
		return err
	}
	tw := newTable(a.stdout)
	fmt.Fprintln(tw, "ID\tCREATED\tSOURCE\tSIZE\tURI")
	for i, cp := range cps {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", cp.ID, formatTime(cp.CreatedAt), cp.Source, formatSize(cp.Size), out.Exports[i].URI)
	}
	return tw.Flush()
}
