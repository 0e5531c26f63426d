package nbd

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

const (
	dataSuffix = ".overlay"
	mapSuffix  = ".bitmap"
)

// overlayKind saves an overlay's bitmap of owned granules with no extra
// header fields ("CAIRNOVL", version 1; see granuleKind).
var overlayKind = granuleKind{
	magic:     "CAIRNOVL",
	version:   1,
	locks:     64,
	data:      "overlay",
	synced:    "overlay",
	rangeName: "overlay",
	state:     "overlay bitmap",
	kind:      "an overlay bitmap",
	invalid:   ErrOverlayMismatch,
}

func dataPath(dir, id string) string { return filepath.Join(dir, id+dataSuffix) }
func mapPath(dir, id string) string  { return filepath.Join(dir, id+mapSuffix) }

// checkID refuses names that would leave the overlay directory.
func checkID(id string) error {
	if id == "" || len(id) > 255 || id == "." || id == ".." || strings.ContainsAny(id, "/\\\x00") {
		return fmt.Errorf("invalid checkpoint ID %q for an overlay", id)
	}
	return nil
}

// loadMap reads the saved bitmap, when there is one yet: it must have been
// made for this checkpoint, size and granularity.
func (o *Overlay) loadMap() error {
	m := o.gf
	s, err := overlayKind.read(m.path)
	if err != nil || s == nil {
		return err
	}
	switch {
	case s.gran != m.gran:
		return overlayKind.bad(m.path, fmt.Sprintf("granularity %d", s.gran))
	case s.size != m.size:
		return overlayKind.bad(m.path, fmt.Sprintf("made for %d bytes, the checkpoint has %d", s.size, m.size))
	case s.id != m.id:
		return overlayKind.bad(m.path, "made for another checkpoint")
	}
	m.load(s.words)
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// lockedFile opens path and takes an exclusive lock on it, failing with
// ErrOverlayBusy when another holder has it.
func lockedFile(path string, flag int) (*os.File, error) {
	f, err := os.OpenFile(path, flag, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open overlay: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s: %w", path, ErrOverlayBusy)
		}
		return nil, fmt.Errorf("lock overlay %s: %w", path, err)
	}
	return f, nil
}

// DiscardOverlay deletes the overlay of checkpoint id in dir. It fails
// with ErrOverlayBusy while a server has the overlay open, and with
// ErrNoOverlay when there is none.
func DiscardOverlay(dir, id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	f, err := lockedFile(dataPath(dir, id), os.O_RDWR)
	if errors.Is(err, fs.ErrNotExist) {
		if rerr := os.Remove(mapPath(dir, id)); rerr == nil {
			return nil
		}
		return fmt.Errorf("checkpoint %s in %s: %w", id, dir, ErrNoOverlay)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	for _, p := range []string{mapPath(dir, id), mapPath(dir, id) + ".tmp", dataPath(dir, id)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("discard overlay: %w", err)
		}
	}
	return syncDir(dir)
}

// Overlays lists the checkpoint IDs that have an overlay in dir, sorted.
// A missing directory holds none.
func Overlays(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list overlays: %w", err)
	}
	seen := map[string]bool{}
	for _, e := range ents {
		for _, suf := range []string{dataSuffix, mapSuffix} {
			if id, ok := strings.CutSuffix(e.Name(), suf); ok && checkID(id) == nil {
				seen[id] = true
			}
		}
	}
	ids := make([]string, 0, len(seen))
	for id := range seen {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids, nil
}
