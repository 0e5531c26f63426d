package nbd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"cairn/internal/atomicfile"
)

// Bitmap file: "CAIRNOVL" ‖ version u32 ‖ granularity u32 ‖ size u64 ‖
// id length u16 ‖ id ‖ words u64 (little endian, bit g%64 of word g/64 =
// granule g owned) ‖ CRC-32C of everything before, big endian.
const (
	mapMagic   = "CAIRNOVL"
	mapVersion = 1
	dataSuffix = ".overlay"
	mapSuffix  = ".bitmap"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// overlayMap is the set of granules an overlay owns.
type overlayMap struct {
	path  string
	id    string
	size  int64
	words []atomic.Uint64
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

// loadMap reads the bitmap of checkpoint id, or starts an empty one when
// there is none yet.
func loadMap(dir, id string, size int64) (*overlayMap, error) {
	granules := (size + Granularity - 1) / Granularity
	m := &overlayMap{path: mapPath(dir, id), id: id, size: size, words: make([]atomic.Uint64, (granules+63)/64)}
	b, err := os.ReadFile(m.path)
	if errors.Is(err, fs.ErrNotExist) {
		return m, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read overlay bitmap: %w", err)
	}
	bad := func(what string) error {
		return fmt.Errorf("overlay bitmap %s: %s: %w", m.path, what, ErrOverlayMismatch)
	}
	head := len(mapMagic) + 4 + 4 + 8 + 2
	if len(b) < head+4 || string(b[:len(mapMagic)]) != mapMagic {
		return nil, bad("not an overlay bitmap")
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return nil, bad("checksum mismatch")
	}
	p := body[len(mapMagic):]
	version, gran := binary.BigEndian.Uint32(p), binary.BigEndian.Uint32(p[4:])
	msize, idLen := int64(binary.BigEndian.Uint64(p[8:])), int(binary.BigEndian.Uint16(p[16:]))
	p = p[18:]
	switch {
	case version != mapVersion:
		return nil, bad(fmt.Sprintf("version %d", version))
	case gran != Granularity:
		return nil, bad(fmt.Sprintf("granularity %d", gran))
	case msize != size:
		return nil, bad(fmt.Sprintf("made for %d bytes, the checkpoint has %d", msize, size))
	case len(p) != idLen+8*len(m.words) || string(p[:idLen]) != id:
		return nil, bad("made for another checkpoint")
	}
	p = p[idLen:]
	for i := range m.words {
		m.words[i].Store(binary.LittleEndian.Uint64(p[8*i:]))
	}
	return m, nil
}

func (m *overlayMap) owned(g int64) bool {
	return m.words[g/64].Load()&(1<<(g%64)) != 0
}

// set marks granules first..last owned.
func (m *overlayMap) set(first, last int64) {
	for g := first; g <= last; g++ {
		m.words[g/64].Or(1 << (g % 64))
	}
}

func (m *overlayMap) snapshot() []uint64 {
	s := make([]uint64, len(m.words))
	for i := range m.words {
		s[i] = m.words[i].Load()
	}
	return s
}

// save writes a snapshot of the bitmap atomically: a synced temporary
// file renamed over the old one, then the directory synced.
func (m *overlayMap) save(words []uint64) error {
	b := append([]byte(mapMagic), make([]byte, 18)...)
	p := b[len(mapMagic):]
	binary.BigEndian.PutUint32(p, mapVersion)
	binary.BigEndian.PutUint32(p[4:], Granularity)
	binary.BigEndian.PutUint64(p[8:], uint64(m.size))
	binary.BigEndian.PutUint16(p[16:], uint16(len(m.id)))
	b = append(b, m.id...)
	for _, w := range words {
		b = binary.LittleEndian.AppendUint64(b, w)
	}
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))

	if err := atomicfile.Write(m.path, b, 0o600); err != nil {
		return fmt.Errorf("save overlay bitmap: %w", err)
	}
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
