package nbd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"math/bits"
	"os"
	"path/filepath"
	"sync/atomic"

	"cairn/internal/atomicfile"
)

// LiveStateSuffix names the state file of a live restore: PATH + suffix
// beside the target PATH.
const LiveStateSuffix = ".cairn-live"

// State file: "CAIRNLIV" ‖ version u32 ‖ granule u32 ‖ size u64 ‖ writes
// u64 ‖ id length u16 ‖ id ‖ words u64 (little endian, bit g%64 of word
// g/64 = granule g hydrated) ‖ CRC-32C of everything before, big endian.
const (
	liveMagic   = "CAIRNLIV"
	liveVersion = 1
	liveHead    = len(liveMagic) + 4 + 4 + 8 + 8 + 2
)

// liveMap is the set of granules of a live restore whose final content is
// in the target.
type liveMap struct {
	path  string
	id    string
	gran  int64
	size  int64
	words []atomic.Uint64
}

func newLiveMap(path, id string, gran, size int64) *liveMap {
	granules := (size + gran - 1) / gran
	return &liveMap{path: path, id: id, gran: gran, size: size, words: make([]atomic.Uint64, (granules+63)/64)}
}

// liveState is a state file as read back.
type liveState struct {
	id     string
	gran   int64
	size   int64
	writes int64
	words  []uint64
}

// readLiveState reads the state file at path; a missing file gives nil.
func readLiveState(path string) (*liveState, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read live restore state: %w", err)
	}
	bad := func(what string) error {
		return fmt.Errorf("live restore state %s: %s: %w", path, what, ErrLiveState)
	}
	if len(b) < liveHead+4 || string(b[:len(liveMagic)]) != liveMagic {
		return nil, bad("not a live restore state file")
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return nil, bad("checksum mismatch")
	}
	p := body[len(liveMagic):]
	st := &liveState{
		gran:   int64(binary.BigEndian.Uint32(p[4:])),
		size:   int64(binary.BigEndian.Uint64(p[8:])),
		writes: int64(binary.BigEndian.Uint64(p[16:])),
	}
	if v := binary.BigEndian.Uint32(p); v != liveVersion {
		return nil, bad(fmt.Sprintf("version %d", v))
	}
	idLen := int(binary.BigEndian.Uint16(p[24:]))
	p = p[26:]
	if st.gran <= 0 || st.size < 0 || len(p) < idLen {
		return nil, bad("bad header")
	}
	st.id, p = string(p[:idLen]), p[idLen:]
	granules := (st.size + st.gran - 1) / st.gran
	if int64(len(p)) != 8*((granules+63)/64) {
		return nil, bad("bitmap length")
	}
	st.words = make([]uint64, len(p)/8)
	for i := range st.words {
		st.words[i] = binary.LittleEndian.Uint64(p[8*i:])
	}
	return st, nil
}

// load copies a state's bitmap into m.
func (m *liveMap) load(st *liveState) {
	for i, w := range st.words {
		m.words[i].Store(w)
	}
}

func (m *liveMap) has(g int64) bool {
	return m.words[g/64].Load()&(1<<(g%64)) != 0
}

// set marks granule g hydrated and reports whether it was not before.
func (m *liveMap) set(g int64) bool {
	bit := uint64(1) << (g % 64)
	return m.words[g/64].Or(bit)&bit == 0
}

// granules is the number of granules; count how many are hydrated.
func (m *liveMap) granules() int64 { return (m.size + m.gran - 1) / m.gran }

func (m *liveMap) count() int64 {
	n := 0
	for i := range m.words {
		n += bits.OnesCount64(m.words[i].Load())
	}
	return int64(n)
}

func (m *liveMap) snapshot() []uint64 {
	s := make([]uint64, len(m.words))
	for i := range m.words {
		s[i] = m.words[i].Load()
	}
	return s
}

// save writes a snapshot of the bitmap atomically: a synced temporary
// file renamed over the old one, then the directory synced.
func (m *liveMap) save(words []uint64, writes int64) error {
	b := append([]byte(liveMagic), make([]byte, liveHead-len(liveMagic))...)
	p := b[len(liveMagic):]
	binary.BigEndian.PutUint32(p, liveVersion)
	binary.BigEndian.PutUint32(p[4:], uint32(m.gran))
	binary.BigEndian.PutUint64(p[8:], uint64(m.size))
	binary.BigEndian.PutUint64(p[16:], uint64(writes))
	binary.BigEndian.PutUint16(p[24:], uint16(len(m.id)))
	b = append(b, m.id...)
	for _, w := range words {
		b = binary.LittleEndian.AppendUint64(b, w)
	}
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))

	if err := atomicfile.Write(m.path, b, 0o600); err != nil {
		return fmt.Errorf("save live restore state: %w", err)
	}
	return nil
}

// remove deletes the state file once the target is complete.
func (m *liveMap) remove() error {
	if err := os.Remove(m.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove live restore state: %w", err)
	}
	return syncDir(filepath.Dir(m.path))
}
