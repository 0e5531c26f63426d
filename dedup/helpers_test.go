package dedup

import (
	"bytes"
	"context"
	"testing"
)

// testRepository creates an unencrypted repository in a temporary directory
// with small blocks and packs, closed when the test ends.
func testRepository(t testing.TB, o ...InitOptions) *Repository {
	t.Helper()
	opts := InitOptions{BlockSize: 64 << 10, PackSize: 1 << 20}
	if len(o) > 0 {
		opts = o[0]
	}
	r, err := Init(context.Background(), t.TempDir(), opts, nil, Options{NoSync: true, Password: opts.Password})
	if err != nil {
		t.Fatalf("init repository: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// memSource is a Source over a byte slice, for tests.
type memSource struct {
	name string
	*bytes.Reader
}

// newMemSource returns a Source reading data, for tests.
func newMemSource(name string, data []byte) Source {
	return memSource{name: name, Reader: bytes.NewReader(data)}
}

func (m memSource) Name() string { return m.name }
