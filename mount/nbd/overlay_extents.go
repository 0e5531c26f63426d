package nbd

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

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

// Extents reports owned runs from the overlay file's holes (SEEK_DATA,
// SEEK_HOLE) and the rest from the base.
func (o *Overlay) Extents(off, length int64, max int) ([]Extent, error) {
	var out []Extent
	end := off + length
	for pos := off; pos < end && len(out) < max; {
		next, owned := o.runEnd(pos, end)
		var ext []Extent
		var err error
		if owned {
			ext, err = fileExtents(o.f, pos, next)
		} else {
			ext, err = o.base.Extents(pos, next-pos, max)
		}
		if err != nil {
			return nil, err
		}
		covered := int64(0)
		for _, e := range ext {
			out = addExtent(out, e.Length, e.Hole)
			covered += e.Length
		}
		if covered < next-pos { // the base stopped early
			break
		}
		pos = next
	}
	if len(out) > max {
		out = out[:max]
	}
	return out, nil
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
