package e2e

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestServeStayUp: with --stay-up, a configuration that cannot start the
// appliance leaves cairn serve answering /healthz 503 with the reason (the
// appliance image's degraded mode), and SIGTERM still stops it cleanly.
func TestServeStayUp(t *testing.T) {
	for _, tc := range []struct{ name, config, want string }{
		{"config_error", `{"listen": "127.0.0.1:0", "server_id": "srv-1", "config_error": "no config drive found"}`, "no config drive found"},
		{"unknown key", `{"listen": "127.0.0.1:0", "listn": "x"}`, `"listn"`},
		{"bad auth", `{"listen": "127.0.0.1:0", "auth": "ldap"}`, `auth "ldap"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := filepath.Join(dir, "cairn.json")
			writeFile(t, cfg, []byte(tc.config))
			cmd := exec.Command(cairnBin, "--json", "serve", "--stay-up", "--config", cfg, "--data-dir", dir)
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
			var first struct{ Listen, Degraded string }
			if err := json.NewDecoder(bufio.NewReader(out)).Decode(&first); err != nil || first.Listen == "" {
				t.Fatalf("no {\"listen\", \"degraded\"} line: %v", err)
			}
			if !strings.Contains(first.Degraded, tc.want) {
				t.Errorf("degraded %q, want it to contain %q", first.Degraded, tc.want)
			}
			resp, err := http.Get("http://" + first.Listen + "/healthz")
			if err != nil {
				t.Fatal(err)
			}
			var h map[string]string
			_ = json.NewDecoder(resp.Body).Decode(&h)
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable || h["status"] != "degraded" || !strings.Contains(h["reason"], tc.want) {
				t.Fatalf("/healthz: %d %v, want 503 degraded with a reason containing %q", resp.StatusCode, h, tc.want)
			}
			if tc.name == "config_error" && h["server_id"] != "srv-1" {
				t.Errorf("/healthz server_id %q, want srv-1", h["server_id"])
			}
			resp, err = http.Get("http://" + first.Listen + "/v1/demo/providers")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable {
				t.Errorf("/v1/demo/providers: %d, want 503", resp.StatusCode)
			}
			_ = cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("after SIGTERM: %v, want exit 0", err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("still running 30s after SIGTERM")
			}
		})
	}
	// Without --stay-up a bad configuration still stops the start.
	dir := t.TempDir()
	cfg := filepath.Join(dir, "cairn.json")
	writeFile(t, cfg, []byte(`{"listen": "127.0.0.1:0", "config_error": "broken"}`))
	if out, err := exec.Command(cairnBin, "serve", "--config", cfg, "--data-dir", dir).CombinedOutput(); err == nil || !strings.Contains(string(out), "broken") {
		t.Fatalf("serve without --stay-up: %v\n%s", err, out)
	}
}

// TestHealthzServerID: /healthz names the server UUID of the config.
func TestHealthzServerID(t *testing.T) {
	a := startAppliance(t, t.TempDir(), map[string]any{"server_id": "5b8f5a4e-2c43-4d0c-9d4e-0c1a7e6f3b21"})
	r := a.raw("GET", "/healthz", nil)
	var h map[string]string
	if err := json.Unmarshal(r.body, &h); err != nil || h["server_id"] != "5b8f5a4e-2c43-4d0c-9d4e-0c1a7e6f3b21" || h["status"] != "ok" {
		t.Fatalf("/healthz: %s (%v)", r, err)
	}
}
