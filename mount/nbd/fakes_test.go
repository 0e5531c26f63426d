package nbd

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// memVolume is a Volume in memory with 4 KiB blocks; an all-zero block is
// a hole. Reads touching failAt fail.
type memVolume struct {
	mu     sync.Mutex
	data   []byte
	failAt int64
	delay  time.Duration
	// gate, if set, holds every read until it is closed; each read first
	// sends on entered when that has room.
	gate    chan struct{}
	entered chan struct{}
}

func (v *memVolume) Size() int64    { return int64(len(v.data)) }
func (v *memVolume) BlockSize() int { return 4096 }

func (v *memVolume) IsHole(off int64) bool {
	b := off / 4096 * 4096
	return !bytes.ContainsFunc(v.data[b:min(b+4096, int64(len(v.data)))], func(r rune) bool { return r != 0 })
}

func (v *memVolume) ReadAtContext(ctx context.Context, p []byte, off int64) (int, error) {
	if v.gate != nil {
		select {
		case v.entered <- struct{}{}:
		default: // nobody counts reads any more
		}
		select {
		case <-v.gate:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	if v.delay > 0 {
		select {
		case <-time.After(v.delay):
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	if v.failAt > 0 && v.failAt >= off && v.failAt < off+int64(len(p)) {
		return 0, errors.New("injected read failure")
	}
	if off >= int64(len(v.data)) {
		return 0, io.EOF
	}
	n := copy(p, v.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// memCatalog serves fixed exports by exact name.
type memCatalog map[string]*Export

func (m memCatalog) Lookup(_ context.Context, name string) (*Export, error) {
	if e, ok := m[name]; ok {
		return e, nil
	}
	return nil, ErrUnknownExport
}

func (m memCatalog) List(context.Context) ([]ExportInfo, error) {
	var out []ExportInfo
	for n, e := range m {
		out = append(out, ExportInfo{Name: n, Description: e.Description})
	}
	return out, nil
}

// testImage is 1 MiB: random data with a 64 KiB hole at 256 KiB and a
// zero tail from 768 KiB.
func testImage() []byte {
	b := make([]byte, 1<<20)
	for i := range b[:768<<10] {
		b[i] = byte(i*7 + i>>9 + 1)
	}
	clear(b[256<<10 : 320<<10])
	return b
}

func testCatalog(v *memVolume) memCatalog {
	return memCatalog{"disk": {Name: "disk", Description: "a test disk", Device: VolumeDevice(v)}}
}

func listenLoopback() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }

func mustListen(t testing.TB) net.Listener {
	t.Helper()
	l, err := listenLoopback()
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func dialErr(addr string) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
	}
	return c, err
}

// memDisk is a writable in-memory Device.
type memDisk struct {
	memVolume
	flushes int
}

func (d *memDisk) ReadAt(ctx context.Context, p []byte, off int64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	copy(p, d.data[off:])
	return nil
}

func (d *memDisk) Extents(off, length int64, max int) ([]Extent, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return VolumeDevice(&d.memVolume).Extents(off, length, max)
}

func (d *memDisk) WriteAt(ctx context.Context, p []byte, off int64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	copy(d.data[off:], p)
	return nil
}

func (d *memDisk) Zero(ctx context.Context, off, length int64, punch bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	clear(d.data[off : off+length])
	return nil
}

func (d *memDisk) Flush(context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.flushes++
	return nil
}
