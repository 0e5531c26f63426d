package file

import (
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"cairn/plugins"
)

// TestProtectProgress: Protect reports the bytes it reads through the
// request's Progress, ending at done == total == the bytes read.
func TestProtectProgress(t *testing.T) {
	ctx := context.Background()
	p, repo, root, _ := setup(t)
	src := filepath.Join(root, "disk.img")
	data := make([]byte, 2<<20)
	_, _ = rand.Read(data)
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var calls int
	var lastDone, lastTotal int64
	res := plugins.Resource{ID: InstanceID(src), Type: Type, Name: src}
	b, err := p.Protect(ctx, repo, plugins.ProtectRequest{Resource: res, Progress: func(done, total int64) {
		mu.Lock()
		defer mu.Unlock()
		if done < lastDone {
			t.Errorf("progress went back: %d after %d", done, lastDone)
		}
		calls++
		lastDone, lastTotal = done, total
	}})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if calls == 0 || lastDone != b.Stats.ReadBytes || lastTotal != b.Stats.ReadBytes || lastDone != int64(len(data)) {
		t.Fatalf("%d progress calls, last %d of %d; read %d of %d", calls, lastDone, lastTotal, b.Stats.ReadBytes, len(data))
	}
}

// TestRestoreProgress: Restore reports the bytes it writes likewise.
func TestRestoreProgress(t *testing.T) {
	ctx := context.Background()
	p, repo, root, _ := setup(t)
	src := filepath.Join(root, "disk.img")
	data := make([]byte, 1<<20)
	_, _ = rand.Read(data)
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	res := plugins.Resource{ID: InstanceID(src), Type: Type, Name: src}
	b, err := p.Protect(ctx, repo, plugins.ProtectRequest{Resource: res})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var lastDone, lastTotal int64
	_, err = p.Restore(ctx, repo, plugins.RestoreRequest{Resource: res, BackupID: b.ID, Progress: func(done, total int64) {
		mu.Lock()
		defer mu.Unlock()
		lastDone, lastTotal = done, total
	}})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if lastTotal <= 0 || lastDone != lastTotal {
		t.Fatalf("last progress %d of %d, want all of it", lastDone, lastTotal)
	}
}
