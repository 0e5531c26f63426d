package nbd

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"math/bits"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"cairn/internal/atomicfile"
)

// granuleKind is what tells the users of a granuleFile apart: the overlay
// of a writable export and the target of a live restore. Their saved
// bitmaps share a layout, so either is read by the same code:
//
//	magic ‖ version u32 ‖ granule u32 ‖ size u64 ‖ extra u64 … ‖
//	ID length u16 ‖ ID ‖ words u64 (little endian, bit g%64 of word g/64 =
//	granule g present) ‖ CRC-32C of everything before, big endian
//
// with all other integers big endian.
type granuleKind struct {
	magic   string
	version uint32
	extra   int // u64 header fields between the size and the ID

	// filled means absent granules are filled behind the writers' backs
	// (by the copier of a live restore): a write into one must then hold
	// its lock even when it covers the granule whole, or a fill that read
	// the source before the write could land after it.
	filled bool
	locks  int // granule lock stripes

	// What errors call things, kept as they were before the two users
	// shared this code.
	data      string // the data file: "write DATA at 42"
	synced    string // "sync SYNCED"
	rangeName string // "RANGENAME range 0+1 beyond 0"
	state     string // the saved bitmap: "read STATE", "STATE PATH: checksum mismatch"
	kind      string // "STATE PATH: not KIND"
	invalid   error  // wrapped by errors about a saved bitmap's content
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// savedBitmap is a bitmap as saved: what it was made for, the extra
// header fields of its kind and the words.
type savedBitmap struct {
	id    string
	gran  int64
	size  int64
	extra []uint64
	words []uint64
}

// bitmapWords is the number of words of a bitmap of size bytes in granules
// of gran bytes, computed without overflow for any header.
func bitmapWords(size, gran int64) int64 {
	granules := size / gran
	if size%gran != 0 {
		granules++
	}
	return (granules + 63) / 64
}

// encode lays s out as a saved bitmap of kind k; missing extra fields are
// zero.
func (k *granuleKind) encode(s *savedBitmap) []byte {
	b := []byte(k.magic)
	b = binary.BigEndian.AppendUint32(b, k.version)
	b = binary.BigEndian.AppendUint32(b, uint32(s.gran))
	b = binary.BigEndian.AppendUint64(b, uint64(s.size))
	for i := range k.extra {
		var x uint64
		if i < len(s.extra) {
			x = s.extra[i]
		}
		b = binary.BigEndian.AppendUint64(b, x)
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(s.id)))
	b = append(b, s.id...)
	for _, w := range s.words {
		b = binary.LittleEndian.AppendUint64(b, w)
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// decode parses the saved bitmap b read from path. It checks only what
// holds for any bitmap of kind k; whether it fits the data file is for
// the caller to judge.
func (k *granuleKind) decode(path string, b []byte) (*savedBitmap, error) {
	head := len(k.magic) + 4 + 4 + 8 + 8*k.extra + 2
	if len(b) < head+4 || string(b[:len(k.magic)]) != k.magic {
		return nil, k.bad(path, "not "+k.kind)
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return nil, k.bad(path, "checksum mismatch")
	}
	p := body[len(k.magic):]
	if v := binary.BigEndian.Uint32(p); v != k.version {
		return nil, k.bad(path, fmt.Sprintf("version %d", v))
	}
	s := &savedBitmap{
		gran:  int64(binary.BigEndian.Uint32(p[4:])),
		size:  int64(binary.BigEndian.Uint64(p[8:])),
		extra: make([]uint64, k.extra),
	}
	p = p[16:]
	for i := range s.extra {
		s.extra[i], p = binary.BigEndian.Uint64(p), p[8:]
	}
	idLen := int(binary.BigEndian.Uint16(p))
	p = p[2:]
	if s.gran <= 0 || s.size < 0 || len(p) < idLen {
		return nil, k.bad(path, "bad header")
	}
	s.id, p = string(p[:idLen]), p[idLen:]
	if int64(len(p)) != 8*bitmapWords(s.size, s.gran) {
		return nil, k.bad(path, "bitmap length")
	}
	s.words = make([]uint64, len(p)/8)
	for i := range s.words {
		s.words[i] = binary.LittleEndian.Uint64(p[8*i:])
	}
	return s, nil
}

// read reads the bitmap saved at path; a missing file gives nil.
func (k *granuleKind) read(path string) (*savedBitmap, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", k.state, err)
	}
	return k.decode(path, b)
}

// bad is the error about the content of the bitmap saved at path.
func (k *granuleKind) bad(path, what string) error {
	return fmt.Errorf("%s %s: %s: %w", k.state, path, what, k.invalid)
}

// granuleFile is a data file cut into granules, with a bitmap of the
// granules that are present: whose final content is in the file. An
// absent granule reads from src until fill copies it into the file or a
// write covers it. Bits are only ever set, so a granule seen present stays
// present and needs no lock. The bitmap is saved, after the file is
// synced, by flush, so a granule marked on disk always has its data there.
// A granuleFile is safe for concurrent use.
type granuleFile struct {
	kind *granuleKind
	f    *os.File
	src  Device
	// fill writes absent granule g, as src has it, into f; its caller
	// holds g's lock.
	fill func(ctx context.Context, g int64) error
	gran int64
	size int64
	path string // of the saved bitmap
	id   string // the checkpoint, recorded in the saved bitmap

	words   []atomic.Uint64
	present atomic.Int64 // bytes of present granules
	locks   []sync.Mutex // filling a granule and writing it meanwhile, by granule
	saving  sync.Mutex   // one flush at a time
	dirty   atomic.Bool  // the file or the bitmap changed since the last save
}

// newGranuleFile cuts f, of src's size, into granules of gran bytes, all
// absent; the bitmap is saved at path for checkpoint id. f may be nil and
// set before the first I/O, for a caller that opens it only once it has
// checked it.
func newGranuleFile(k *granuleKind, f *os.File, src Device, gran int64, path, id string, fill func(ctx context.Context, g int64) error) *granuleFile {
	size := src.Size()
	return &granuleFile{
		kind: k, f: f, src: src, fill: fill, gran: gran, size: size, path: path, id: id,
		words: make([]atomic.Uint64, bitmapWords(size, gran)),
		locks: make([]sync.Mutex, k.locks),
	}
}

// granules is the number of granules.
func (m *granuleFile) granules() int64 { return (m.size + m.gran - 1) / m.gran }

// granule returns the bounds of granule g; the last one may be short.
func (m *granuleFile) granule(g int64) (start, end int64) {
	start = g * m.gran
	return start, min(start+m.gran, m.size)
}

func (m *granuleFile) has(g int64) bool {
	return m.words[g/64].Load()&(1<<(g%64)) != 0
}

// set marks granules first..last present.
func (m *granuleFile) set(first, last int64) {
	for g := first; g <= last; g++ {
		bit := uint64(1) << (g % 64)
		if m.words[g/64].Or(bit)&bit == 0 {
			gs, ge := m.granule(g)
			m.present.Add(ge - gs)
		}
	}
}

// load replaces the bitmap with saved words, as many as the bitmap has.
func (m *granuleFile) load(words []uint64) {
	n := int64(0)
	for i := range m.words {
		m.words[i].Store(words[i])
		n += int64(bits.OnesCount64(words[i]))
	}
	n *= m.gran
	if last := m.granules() - 1; last >= 0 && m.has(last) {
		gs, ge := m.granule(last)
		n -= m.gran - (ge - gs)
	}
	m.present.Store(n)
}

// presentBytes is the number of bytes in present granules.
func (m *granuleFile) presentBytes() int64 { return m.present.Load() }

func (m *granuleFile) snapshot() []uint64 {
	s := make([]uint64, len(m.words))
	for i := range m.words {
		s[i] = m.words[i].Load()
	}
	return s
}

// changed makes the next flush sync and save. Callers make their change
// first: a flush that clears the flag before the change would otherwise
// leave it unsaved.
func (m *granuleFile) changed() { m.dirty.Store(true) }

func (m *granuleFile) lock(g int64) *sync.Mutex { return &m.locks[g%int64(len(m.locks))] }

// run returns the end of the run of granules from pos (before end) that
// are present, or absent, as pos's granule is.
func (m *granuleFile) run(pos, end int64) (next int64, present bool) {
	present = m.has(pos / m.gran)
	next = min((pos/m.gran+1)*m.gran, end)
	for next < end && m.has(next/m.gran) == present {
		next = min(next+m.gran, end)
	}
	return next, present
}

// readAt reads present granules from the file and the rest from src.
func (m *granuleFile) readAt(ctx context.Context, p []byte, off int64) error {
	end := off + int64(len(p))
	for pos := off; pos < end; {
		next, present := m.run(pos, end)
		seg := p[pos-off : next-off]
		if present {
			if _, err := m.f.ReadAt(seg, pos); err != nil {
				return fmt.Errorf("read %s at %d: %w", m.kind.data, pos, err)
			}
		} else if err := m.src.ReadAt(ctx, seg, pos); err != nil {
			return err
		}
		pos = next
	}
	return nil
}

// ensure fills granule g unless it is present.
func (m *granuleFile) ensure(ctx context.Context, g int64) error {
	if m.has(g) {
		return nil
	}
	lk := m.lock(g)
	lk.Lock()
	defer lk.Unlock()
	if m.has(g) {
		return nil
	}
	if err := m.fill(ctx, g); err != nil {
		return err
	}
	m.set(g, g)
	m.changed()
	return nil
}

// writeAt writes p at off into the file.
func (m *granuleFile) writeAt(ctx context.Context, p []byte, off int64) error {
	return m.write(ctx, off, int64(len(p)), func(pos, n int64) error {
		_, err := m.f.WriteAt(p[pos-off:pos-off+n], pos)
		return err
	})
}

// zero makes [off, off+length) of the file read as zeros: punched out, or
// zero-filled when !punch or the file system cannot punch.
func (m *granuleFile) zero(ctx context.Context, off, length int64, punch bool) error {
	return m.write(ctx, off, length, func(pos, n int64) error {
		return zeroRange(m.f, pos, n, punch)
	})
}

// write runs put over [off, off+length) of the file and marks the granules
// it covers present; put writes the final content of the range it is
// given. Runs of granules that need no fill are put at once; any other
// granule is put under its lock, after filling it unless put covers it
// whole.
func (m *granuleFile) write(ctx context.Context, off, length int64, put func(pos, n int64) error) error {
	if err := m.inRange(off, length); err != nil {
		return err
	}
	end := off + length
	for pos := off; pos < end; {
		g := pos / m.gran
		_, ge := m.granule(g)
		if !m.direct(pos, end) {
			segEnd := min(ge, end)
			if err := m.putGranule(ctx, g, pos, segEnd, put); err != nil {
				return err
			}
			pos = segEnd
			continue
		}
		next := min(ge, end)
		for next < end && m.direct(next, end) {
			next = min(next+m.gran, end)
		}
		if err := put(pos, next-pos); err != nil {
			return fmt.Errorf("write %s at %d: %w", m.kind.data, pos, err)
		}
		// A granule of the run that was absent is covered whole.
		m.set(g, (next-1)/m.gran)
		m.changed()
		pos = next
	}
	return nil
}

// inRange refuses a write of [off, off+length) that does not fit the
// file.
func (m *granuleFile) inRange(off, length int64) error {
	if off < 0 || length < 0 || off+length > m.size {
		return fmt.Errorf("%s range %d+%d beyond %d: %w", m.kind.rangeName, off, length, m.size, unix.ENOSPC)
	}
	return nil
}

// direct reports whether putting the granule at pos, up to end, needs
// neither a fill nor the granule's lock: the granule is present, or the
// put covers it whole and nothing fills granules concurrently.
func (m *granuleFile) direct(pos, end int64) bool {
	g := pos / m.gran
	gs, ge := m.granule(g)
	return m.has(g) || !m.kind.filled && pos == gs && ge <= end
}

// putGranule puts [pos, end) of granule g under its lock, filling the
// granule first unless it is present or the put covers it whole.
func (m *granuleFile) putGranule(ctx context.Context, g, pos, end int64, put func(pos, n int64) error) error {
	lk := m.lock(g)
	lk.Lock()
	defer lk.Unlock()
	if gs, ge := m.granule(g); (pos != gs || end != ge) && !m.has(g) {
		if err := m.fill(ctx, g); err != nil {
			return err
		}
	}
	if err := put(pos, end-pos); err != nil {
		return fmt.Errorf("write %s at %d: %w", m.kind.data, pos, err)
	}
	m.set(g, g)
	m.changed()
	return nil
}

// extents reports present runs from the file's holes (SEEK_DATA,
// SEEK_HOLE) and the rest from src.
func (m *granuleFile) extents(off, length int64, max int) ([]Extent, error) {
	var out []Extent
	end := off + length
	for pos := off; pos < end && len(out) < max; {
		next, present := m.run(pos, end)
		var ext []Extent
		var err error
		if present {
			ext, err = fileExtents(m.f, pos, next)
		} else {
			ext, err = m.src.Extents(pos, next-pos, max)
		}
		if err != nil {
			return nil, err
		}
		covered := int64(0)
		for _, e := range ext {
			out = addExtent(out, e.Length, e.Hole)
			covered += e.Length
		}
		if covered < next-pos { // src stopped early
			break
		}
		pos = next
	}
	if len(out) > max {
		out = out[:max]
	}
	return out, nil
}

// flush makes every write that returned before it durable: the file is
// synced, then the bitmap as it was before the sync is saved, with the
// extra header fields that extra (if not nil) returns at the same time.
func (m *granuleFile) flush(extra func() []uint64) error {
	m.saving.Lock()
	defer m.saving.Unlock()
	if !m.dirty.Swap(false) {
		return nil
	}
	s := &savedBitmap{id: m.id, gran: m.gran, size: m.size, words: m.snapshot()}
	if extra != nil {
		s.extra = extra()
	}
	if err := m.f.Sync(); err != nil {
		m.dirty.Store(true)
		return fmt.Errorf("sync %s: %w", m.kind.synced, err)
	}
	if err := atomicfile.Write(m.path, m.kind.encode(s), 0o600); err != nil {
		m.dirty.Store(true)
		return fmt.Errorf("save %s: %w", m.kind.state, err)
	}
	return nil
}

// remove deletes the saved bitmap, durably.
func (m *granuleFile) remove() error {
	if err := os.Remove(m.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", m.kind.state, err)
	}
	if err := syncDir(filepath.Dir(m.path)); err != nil {
		return fmt.Errorf("remove %s: %w", m.kind.state, err)
	}
	return nil
}

// zeroRange zeroes [off, off+n) of f.
func zeroRange(f *os.File, off, n int64, punch bool) error {
	mode := uint32(unix.FALLOC_FL_ZERO_RANGE)
	if punch {
		mode = unix.FALLOC_FL_PUNCH_HOLE | unix.FALLOC_FL_KEEP_SIZE
	}
	err := unix.Fallocate(int(f.Fd()), mode, off, n)
	if err == nil || !(errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EINVAL)) {
		return err
	}
	zeros := make([]byte, min(n, 1<<20))
	for n > 0 {
		k := min(n, int64(len(zeros)))
		if _, err := f.WriteAt(zeros[:k], off); err != nil {
			return err
		}
		off, n = off+k, n-k
	}
	return nil
}

// fileExtents describes [pos, end) of f from its holes.
func fileExtents(f *os.File, pos, end int64) ([]Extent, error) {
	var out []Extent
	fd := int(f.Fd())
	for pos < end {
		data, err := unix.Seek(fd, pos, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			data = end // no data after pos
		} else if err != nil {
			return []Extent{{Length: end - pos}}, nil // cannot tell: data
		}
		data = min(data, end)
		if data > pos {
			out = addExtent(out, data-pos, true)
			pos = data
			continue
		}
		hole, err := unix.Seek(fd, pos, unix.SEEK_HOLE)
		if err != nil {
			hole = end
		}
		hole = min(max(hole, pos+1), end)
		out = addExtent(out, hole-pos, false)
		pos = hole
	}
	return out, nil
}
