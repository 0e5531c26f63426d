package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cairn/api"
	"cairn/appliance"
)

// TestApplianceCLI runs cairn plan/checkpoint against an httptest server
// serving the real API over a real appliance.
func TestApplianceCLI(t *testing.T) {
	cfg := appliance.Config{DataDir: t.TempDir(), PruneInterval: appliance.Duration(-1)}
	log := slog.New(slog.DiscardHandler)
	ap, err := appliance.Open(context.Background(), cfg, appliance.Options{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = ap.Run(ctx); close(done) }()
	srv := httptest.NewServer(api.New(ap, api.NoAuth{}, log))
	t.Cleanup(func() {
		srv.Close()
		cancel()
		<-done
		_ = ap.Close()
	})
	vol := filepath.Join(ap.Config().FileRoots[0], "db.img")
	if err := os.WriteFile(vol, []byte(strings.Repeat("cairn", 5000)), 0o600); err != nil {
		t.Fatal(err)
	}
	c := &cli{t: t}
	u := "--url=" + srv.URL

	// Human table, default project.
	r := c.ok("plan", "create", u, "--name", "db", "--resource", "file="+vol)
	if !strings.Contains(r.stdout, "ID") || !strings.Contains(r.stdout, "db") || !strings.Contains(r.stdout, vol) {
		t.Fatalf("plan create table:\n%s", r.stdout)
	}
	r = c.ok("plan", "list", u, "--json")
	var plans []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &plans); err != nil || len(plans) != 1 {
		t.Fatalf("plan list --json: %v\n%s", err, r.stdout)
	}
	planID := plans[0]["id"].(string)
	if ps := ap.Plans(appliance.DefaultConfig("").DefaultProject); len(ps) != 1 || ps[0].ID != planID {
		t.Fatalf("plan not in the default project: %v", ps)
	}
	// Another project sees nothing.
	r = c.ok("plan", "list", u, "--project", "other", "--json")
	if strings.TrimSpace(r.stdout) != "[]" {
		t.Fatalf("other project: %s", r.stdout)
	}

	r = c.ok("checkpoint", "create", u, "--plan", planID, "--wait", "--json")
	var cp map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &cp); err != nil || cp["status"] != "available" {
		t.Fatalf("checkpoint create: %v\n%s", err, r.stdout)
	}
	id := cp["id"].(string)
	r = c.ok("checkpoint", "list", u)
	if !strings.Contains(r.stdout, id) || !strings.Contains(r.stdout, "available") || !strings.Contains(r.stdout, "100%") {
		t.Fatalf("checkpoint list:\n%s", r.stdout)
	}
	r = c.ok("checkpoint", "list", u, "--status", "error", "--json")
	if strings.TrimSpace(r.stdout) != "[]" {
		t.Fatalf("status filter: %s", r.stdout)
	}
	r = c.ok("checkpoint", "show", u, id)
	for _, want := range []string{id, "available", vol, "25000"} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("checkpoint show lacks %q:\n%s", want, r.stdout)
		}
	}

	// Errors: the appliance's message, one line; usage errors exit 2.
	c.fail(1, "not found", "checkpoint", "show", u, appliance.NewUUID())
	c.fail(1, "invalid UUID", "checkpoint", "show", u, "nope")
	c.fail(1, "no protectable", "plan", "create", u, "--name", "x", "--resource", "file=/nonexistent")
	c.fail(2, "TYPE=PATH", "plan", "create", u, "--name", "x", "--resource", "file")
	c.fail(2, "--resource", "plan", "create", u, "--name", "x")
	c.fail(2, "plan", "checkpoint", "create", u)
	c.fail(1, "appliance at", "plan", "list", "--url=http://127.0.0.1:1")
}
