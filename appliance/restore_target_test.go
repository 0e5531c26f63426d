package appliance

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"cairn/plugins/file"
)

// TestRestoreTargetRefusedAtRequest: a restore target the file plugin
// would refuse (through a symlinked directory, existing, outside) is
// refused by CreateRestore with ErrInvalid (a 400), before any job is
// queued or restore recorded, and nothing is written outside.
func TestRestoreTargetRefusedAtRequest(t *testing.T) {
	clk := newClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	e := openEnv(t, testConfig(t), clk, true)
	id, _ := e.volume("a.img", 64<<10)
	p := e.plan("proj", id)
	cp, err := e.a.CreateCheckpoint(context.Background(), "proj", ProviderID, p.ID, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	e.waitCheckpoint("proj", cp.ID, CheckpointAvailable)
	if err := os.MkdirAll(e.cfg.RestoreDir, 0o700); err != nil {
		t.Fatal(err)
	}
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(e.cfg.RestoreDir, "escape")); err != nil {
		t.Fatal(err)
	}
	exists := filepath.Join(e.cfg.RestoreDir, "exists.img")
	if err := os.WriteFile(exists, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		target string
		params map[string]any
	}{
		"target through a symlink": {target: filepath.Join(e.cfg.RestoreDir, "escape", "x.img")},
		"param through a symlink":  {params: map[string]any{file.Type: map[string]any{"restore_path": filepath.Join(e.cfg.RestoreDir, "escape", "x.img")}}},
		"existing":                 {target: exists},
		"outside":                  {target: filepath.Join(outside, "x.img")},
	} {
		t.Run(name, func(t *testing.T) {
			r, err := e.a.CreateRestore(context.Background(), "proj", ProviderID, cp.ID, tc.target, tc.params)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("CreateRestore: %+v, %v; want %v", r, err, ErrInvalid)
			}
		})
	}
	if n := len(e.a.Restores("proj", "restore")); n != 0 {
		t.Errorf("%d restores recorded for refused requests", n)
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Errorf("written outside the restore directory: %v", ents)
	}
	if b, err := os.ReadFile(exists); err != nil || string(b) != "keep" {
		t.Errorf("existing file changed: %q, %v", b, err)
	}
}
