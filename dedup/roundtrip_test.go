package dedup

import (
	"bytes"
	"context"
	"math/rand/v2"
	"testing"
)

// memTarget collects a restore in memory.
type memTarget struct{ b []byte }

func (m *memTarget) WriteAt(p []byte, off int64) (int, error) {
	copy(m.b[off:], p)
	return len(p), nil
}

func randomData(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func restoreBytes(t *testing.T, r *Repository, id string, size int64) []byte {
	t.Helper()
	tgt := &memTarget{b: make([]byte, size)}
	if _, err := r.Restore(context.Background(), id, tgt, RestoreOptions{}); err != nil {
		t.Fatalf("restore %s: %v", id, err)
	}
	return tgt.b
}

func TestRoundTrip(t *testing.T) {
	const bs = 64 << 10
	sparse := make([]byte, 10*bs+123)
	copy(sparse[3*bs:], randomData(1, bs/2))
	compressible := bytes.Repeat([]byte("cairn block "), 40000)
	cases := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"one byte", []byte{7}},
		{"unaligned random", randomData(2, 5*bs+777)},
		{"all zero", make([]byte, 4*bs)},
		{"sparse", sparse},
		{"compressible", compressible},
	}
	for _, enc := range []bool{false, true} {
		o := InitOptions{BlockSize: bs, PackSize: 1 << 20}
		if enc {
			o.Password = []byte("secret")
		}
		r := testRepository(t, o)
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				cp, err := r.Backup(context.Background(), newMemSource(c.name, c.data), BackupOptions{})
				if err != nil {
					t.Fatal(err)
				}
				got := restoreBytes(t, r, cp.ID, int64(len(c.data)))
				if !bytes.Equal(got, c.data) {
					t.Fatalf("restored bytes differ (encrypted=%v)", enc)
				}
				if cp.Size != int64(len(c.data)) {
					t.Fatalf("size %d, want %d", cp.Size, len(c.data))
				}
			})
		}
	}
}
