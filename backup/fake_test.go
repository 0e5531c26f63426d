package backup

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"cairn/blockdev"
	"cairn/dedup"
)

// fileDevice is a Source over a real local file whose snapshots, taken by
// the fake snapshotter below, are copies of it in a directory beside it.
// It logs what Run does to it, in order: "create S", "read S" (the first
// read of a reader of S) and "remove S (N checkpoints)", where N is the
// number of committed checkpoints at that moment.
type fileDevice struct {
	t      *testing.T
	repo   *dedup.Repository
	path   string // the live file
	dir    string // the snapshot copies
	nextID uint64
	snaps  []Snap

	mu     sync.Mutex
	events []string

	// failRead, when set, is what every read of a snapshot returns.
	failRead error
	// onRead runs at the first read of a snapshot.
	onRead func()
	// dropExtent makes Changed miss one changed extent: a diff bug.
	dropExtent bool
}

var (
	_ Source      = (*fileDevice)(nil)
	_ Snapshotter = (*fileDevice)(nil)
	_ Differ      = (*snapReader)(nil)
	_ Tagger      = (*snapReader)(nil)
)

// testPrefix marks the snapshots the fake "manages".
const testPrefix = "cairn-test-"

func newFileDevice(t *testing.T, repo *dedup.Repository, data []byte) *fileDevice {
	t.Helper()
	dir := t.TempDir()
	d := &fileDevice{t: t, repo: repo, path: filepath.Join(dir, "vol.img"), dir: filepath.Join(dir, "snaps")}
	if err := os.Mkdir(d.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	d.write(data)
	return d
}

func (d *fileDevice) write(data []byte) {
	d.t.Helper()
	if err := os.WriteFile(d.path, data, 0o600); err != nil {
		d.t.Fatal(err)
	}
}

func (d *fileDevice) log(format string, args ...any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.events = append(d.events, fmt.Sprintf(format, args...))
}

// takeEvents returns the log so far and starts a new one.
func (d *fileDevice) takeEvents() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.events
	d.events = nil
	return e
}

// names lists the snapshots that exist, oldest first.
func (d *fileDevice) names() []string {
	var out []string
	for _, s := range d.snaps {
		out = append(out, s.Name)
	}
	return out
}

// snapshot copies the live file to a snapshot called name.
func (d *fileDevice) snapshot(name string) Snap {
	d.t.Helper()
	b, err := os.ReadFile(d.path)
	if err != nil {
		d.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d.dir, name), b, 0o600); err != nil {
		d.t.Fatal(err)
	}
	d.nextID++
	s := Snap{ID: d.nextID, Name: name}
	d.snaps = append(d.snaps, s)
	return s
}

func (d *fileDevice) Name() string           { return d.path }
func (d *fileDevice) Snapshots() Snapshotter { return d }

func (d *fileDevice) Open(_ context.Context, snap string) (Reader, error) {
	f, err := blockdev.OpenFile(filepath.Join(d.dir, snap))
	if err != nil {
		return nil, err
	}
	return &snapReader{File: f, d: d, snap: snap}, nil
}

func (d *fileDevice) DeviceID() string { return "dev-1" }

func (d *fileDevice) List(context.Context) ([]Snap, error) {
	return append([]Snap(nil), d.snaps...), nil
}

func (d *fileDevice) Create(context.Context) (Snap, error) {
	name := fmt.Sprintf("%s%d", testPrefix, d.nextID+1)
	d.log("create %s", name)
	return d.snapshot(name), nil
}

func (d *fileDevice) Remove(_ context.Context, name string) error {
	cps, err := d.repo.Checkpoints(context.Background())
	if err != nil {
		return err
	}
	d.log("remove %s (%d checkpoints)", name, len(cps))
	for i, s := range d.snaps {
		if s.Name == name {
			d.snaps = append(d.snaps[:i], d.snaps[i+1:]...)
			break
		}
	}
	if err := os.Remove(filepath.Join(d.dir, name)); err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
}

func (d *fileDevice) Managed(name string) bool { return strings.HasPrefix(name, testPrefix) }

// snapReader reads one snapshot copy.
type snapReader struct {
	*blockdev.File
	d    *fileDevice
	snap string
	once sync.Once
}

func (r *snapReader) ReadAt(p []byte, off int64) (int, error) {
	r.once.Do(func() {
		r.d.log("read %s", r.snap)
		if r.d.onRead != nil {
			r.d.onRead()
		}
	})
	if r.d.failRead != nil {
		return 0, r.d.failRead
	}
	return r.File.ReadAt(p, off)
}

// diffGrain is the granularity of the fake's diff: finer than a block, so
// that Run's rounding to blocks is exercised.
const diffGrain = 4 << 10

// Changed compares the two copies in diffGrain steps: an exact diff.
func (r *snapReader) Changed(_ context.Context, base string) ([]blockdev.Extent, error) {
	old, err := os.ReadFile(filepath.Join(r.d.dir, base))
	if err != nil {
		return nil, err
	}
	cur := make([]byte, r.Size())
	if _, err := r.File.ReadAt(cur, 0); err != nil && err != io.EOF {
		return nil, err
	}
	var ext []blockdev.Extent
	for off := 0; off < len(cur); off += diffGrain {
		end := min(off+diffGrain, len(cur))
		var was []byte
		if off < len(old) {
			was = old[off:min(end, len(old))]
		}
		if !bytes.Equal(was, cur[off:end]) {
			ext = append(ext, blockdev.Extent{Off: int64(off), Len: int64(end - off)})
		}
	}
	ext = blockdev.AlignExtents(ext, 1, r.Size())
	if r.d.dropExtent && len(ext) > 0 {
		ext = append(ext[:len(ext)/2:len(ext)/2], ext[len(ext)/2+1:]...)
	}
	return ext, nil
}

func (r *snapReader) DiffMode() string { return "exact" }

func (r *snapReader) Tags() map[string]string { return map[string]string{"test.device": "vol"} }
