package backup

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"cairn/blockdev"
	"cairn/blockdev/rbd"
	"cairn/dedup"
	"cairn/dedup/deduptest"
)

const (
	testBlock = 64 << 10 // dedup.TestRepository's block size
	testSize  = 16 * testBlock
)

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// restored returns the bytes of checkpoint id, restored through Restore
// into a file.
func restored(t *testing.T, repo *dedup.Repository, id string) []byte {
	t.Helper()
	ctx := context.Background()
	cp, _, err := repo.LoadCheckpoint(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "restored.img")
	tgt, err := blockdev.CreateFileTarget(path, cp.Size, blockdev.TargetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n, err := Restore(ctx, repo, cp, tgt, RestoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n > int64(len(b)) {
		t.Fatalf("Restore wrote %d bytes into a volume of %d", n, len(b))
	}
	return b
}

func countCheckpoints(t *testing.T, repo *dedup.Repository) int {
	t.Helper()
	cps, err := repo.Checkpoints(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return len(cps)
}

// TestRun backs up a real local file through a fake snapshotter: the
// order of snapshot, read, commit and rotation, what is read, and that a
// failed or cancelled backup commits nothing and keeps the old base.
func TestRun(t *testing.T) {
	errDisk := errors.New("disk on fire")
	// Three blocks change between the first backup and the tested one,
	// each in one piece smaller than a block, so that a diff that drops
	// its middle extent misses a block.
	change := func(data []byte) []byte {
		data = slices.Clone(data)
		copy(data[3*testBlock+100:], "changed")
		copy(data[7*testBlock+40<<10:], "again")
		copy(data[10*testBlock:], bytes.Repeat([]byte{7}, 8<<10))
		return data
	}
	tests := []struct {
		name string
		// first takes a first checkpoint (snapshot cairn-test-1) as the
		// parent before the tested backup.
		first bool
		// setup prepares the device and options after the first backup.
		setup func(d *fileDevice, o *Options, cancel context.CancelFunc)
		err   error  // wanted error (errors.Is), nil for success
		errIn string // or a substring of it
		// What the tested backup did to the device, and what is left.
		events []string
		snaps  []string
		// For a success: the mode, base snapshot and bytes read.
		mode, base string
		read       int64
	}{
		{
			name:   "full",
			events: []string{"create cairn-test-1", "read cairn-test-1"},
			snaps:  []string{"cairn-test-1"},
			mode:   "full", read: testSize,
		},
		{
			name: "incremental reads the changed blocks only", first: true,
			events: []string{"create cairn-test-2", "read cairn-test-2", "remove cairn-test-1 (2 checkpoints)"},
			snaps:  []string{"cairn-test-2"},
			mode:   "incremental", base: "cairn-test-1", read: 3 * testBlock,
		},
		{
			name: "incremental with the diff verified by sampling", first: true,
			setup:  func(_ *fileDevice, o *Options, _ context.CancelFunc) { o.VerifySample = 1 },
			events: []string{"create cairn-test-2", "read cairn-test-2", "remove cairn-test-1 (2 checkpoints)"},
			snaps:  []string{"cairn-test-2"},
			mode:   "incremental", base: "cairn-test-1", read: 3 * testBlock,
		},
		{
			name: "full read asked for still rotates", first: true,
			setup:  func(_ *fileDevice, o *Options, _ context.CancelFunc) { o.Full = true },
			events: []string{"create cairn-test-2", "read cairn-test-2", "remove cairn-test-1 (2 checkpoints)"},
			snaps:  []string{"cairn-test-2"},
			mode:   "full", read: testSize,
		},
		{
			name: "leftover of a killed backup goes before the new snapshot", first: true,
			setup: func(d *fileDevice, _ *Options, _ context.CancelFunc) { d.snapshot(testPrefix + "2") },
			events: []string{"remove cairn-test-2 (1 checkpoints)", "create cairn-test-3", "read cairn-test-3",
				"remove cairn-test-1 (2 checkpoints)"},
			snaps: []string{"cairn-test-3"},
			mode:  "incremental", base: "cairn-test-1", read: 3 * testBlock,
		},
		{
			name: "named snapshot is read and never removed", first: true,
			setup:  func(d *fileDevice, o *Options, _ context.CancelFunc) { d.snapshot("nightly"); o.Snap = "nightly" },
			events: []string{"read nightly"},
			snaps:  []string{"cairn-test-1", "nightly"},
			mode:   "incremental", base: "cairn-test-1", read: 3 * testBlock,
		},
		{
			name: "named snapshot missing", first: true,
			setup: func(_ *fileDevice, o *Options, _ context.CancelFunc) { o.Snap = "nightly" },
			err:   ErrSnapshotNotFound,
			snaps: []string{"cairn-test-1"},
		},
		{
			name: "failed read commits nothing and keeps the old snapshot", first: true,
			setup:  func(d *fileDevice, _ *Options, _ context.CancelFunc) { d.failRead = errDisk },
			err:    errDisk,
			events: []string{"create cairn-test-2", "read cairn-test-2", "remove cairn-test-2 (1 checkpoints)"},
			snaps:  []string{"cairn-test-1"},
		},
		{
			name: "cancelled backup commits nothing and keeps the old snapshot", first: true,
			setup:  func(d *fileDevice, _ *Options, cancel context.CancelFunc) { d.onRead = cancel },
			err:    context.Canceled,
			events: []string{"create cairn-test-2", "read cairn-test-2", "remove cairn-test-2 (1 checkpoints)"},
			snaps:  []string{"cairn-test-1"},
		},
		{
			name: "diff that missed a change is refused", first: true,
			setup: func(d *fileDevice, o *Options, _ context.CancelFunc) {
				d.dropExtent, o.VerifySample = true, 1
			},
			errIn:  "RBD diff missed changes",
			events: []string{"create cairn-test-2", "read cairn-test-2", "remove cairn-test-2 (1 checkpoints)"},
			snaps:  []string{"cairn-test-1"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			repo := deduptest.Repository(t)
			data := randomBytes(t, testSize)
			d := newFileDevice(t, repo, data)
			var o Options
			if tc.first {
				first, err := Run(context.Background(), repo, d, Options{})
				if err != nil {
					t.Fatal(err)
				}
				d.takeEvents()
				data = change(data)
				d.write(data)
				o.Parent = first
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.setup != nil {
				tc.setup(d, &o, cancel)
			}
			before := countCheckpoints(t, repo)
			var warnings []string
			o.Report.Warnf = func(f string, _ ...any) { warnings = append(warnings, f) }
			cp, err := Run(ctx, repo, d, o)

			if got := d.takeEvents(); !slices.Equal(got, tc.events) {
				t.Errorf("events:\n got %q\nwant %q", got, tc.events)
			}
			if got := d.names(); !slices.Equal(got, tc.snaps) {
				t.Errorf("snapshots left = %q, want %q", got, tc.snaps)
			}
			if tc.err != nil || tc.errIn != "" {
				if err == nil || tc.err != nil && !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.errIn) {
					t.Fatalf("Run = %v, want %v %q", err, tc.err, tc.errIn)
				}
				if n := countCheckpoints(t, repo); n != before {
					t.Errorf("a failed backup left %d checkpoints, want %d", n, before)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cp.Tags[rbd.TagMode] != tc.mode || cp.Tags[rbd.TagBaseSnap] != tc.base || cp.ReadBytes != tc.read {
				t.Errorf("mode %q base %q read %d, want %q %q %d (tags %v)",
					cp.Tags[rbd.TagMode], cp.Tags[rbd.TagBaseSnap], cp.ReadBytes, tc.mode, tc.base, tc.read, cp.Tags)
			}
			last := tc.snaps[len(tc.snaps)-1]
			if cp.Tags[rbd.TagSnap] != last || cp.Tags[rbd.TagImageID] != "dev-1" || cp.Tags["test.device"] != "vol" {
				t.Errorf("tags %v: want the snapshot %s, the device ID and the device's tags", cp.Tags, last)
			}
			if managed := cp.Tags[rbd.TagSnapManaged] == "true"; managed != (o.Snap == "") {
				t.Errorf("rbd.snap_managed = %q for a snapshot named %q", cp.Tags[rbd.TagSnapManaged], o.Snap)
			}
			if o.Parent != nil && cp.Parent != o.Parent.ID {
				t.Errorf("parent %q, want %q", cp.Parent, o.Parent.ID)
			}
			if !bytes.Equal(restored(t, repo, cp.ID), data) {
				t.Error("the checkpoint does not restore to the device's bytes")
			}
			if len(warnings) != 0 {
				t.Errorf("warnings %q", warnings)
			}
		})
	}
}

// TestRunLive backs up a plain file without snapshots: no snapshot tags,
// all allocated data read, unchanged blocks deduplicated against the
// parent.
func TestRunLive(t *testing.T) {
	ctx := context.Background()
	repo := deduptest.Repository(t)
	data := randomBytes(t, testSize)
	path := filepath.Join(t.TempDir(), "vol.img")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := blockdev.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var parent *dedup.Checkpoint
	for _, tc := range []struct {
		name      string
		newBytes  int64
		hasParent bool
	}{
		{name: "first", newBytes: testSize},
		{name: "unchanged, deduplicated against the parent", newBytes: 0, hasParent: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cp, err := Run(ctx, repo, Live(f), Options{Parent: parent, Tags: map[string]string{"k": "v"}})
			if err != nil {
				t.Fatal(err)
			}
			if cp.Source != path || cp.ReadBytes != testSize || cp.NewBytes != tc.newBytes || (cp.Parent != "") != tc.hasParent {
				t.Errorf("source %q read %d new %d parent %q; want %q %d %d parent %v",
					cp.Source, cp.ReadBytes, cp.NewBytes, cp.Parent, path, testSize, tc.newBytes, tc.hasParent)
			}
			if cp.Tags["k"] != "v" || cp.Tags[rbd.TagMode] != "" {
				t.Errorf("tags %v: want the request's and no snapshot tags", cp.Tags)
			}
			parent = cp
		})
	}
	// Run does not close a live reader: its caller does.
	if _, err := f.ReadAt(make([]byte, 1), 0); err != nil {
		t.Errorf("the live file was closed by Run: %v", err)
	}
}

// TestPrevious: a plugin's previous checkpoint that was deleted is no
// error but a reason to read everything.
func TestPrevious(t *testing.T) {
	ctx := context.Background()
	repo := deduptest.Repository(t)
	cp, err := repo.Backup(ctx, deduptest.Source("v", randomBytes(t, testBlock)), dedup.BackupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		id, reason string
		found      bool
	}{
		{id: ""},
		{id: cp.ID, found: true},
		{id: "0000ffff-dead-beef-0000-000000000000", reason: "is gone"},
	} {
		got, reason, err := Previous(ctx, repo, tc.id)
		if err != nil || (got != nil) != tc.found || !strings.Contains(reason, tc.reason) || (reason == "") != (tc.reason == "") {
			t.Errorf("Previous(%q) = %v, %q, %v", tc.id, got, reason, err)
		}
	}
	if _, err := LoadParent(ctx, repo, "0000ffff"); !errors.Is(err, dedup.ErrCheckpointNotFound) {
		t.Errorf("LoadParent of a missing checkpoint = %v", err)
	}
}
