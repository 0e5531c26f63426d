// Package deduptest gives other packages' tests a repository and sources
// in memory. It imports package testing, so nothing shipped may import it.
package deduptest

import (
	"bytes"
	"context"
	"testing"

	"cairn/dedup"
)

// Repository creates an unencrypted repository in a temporary directory
// with 64 KiB blocks and 1 MiB packs (or o), closed when the test ends.
func Repository(t testing.TB, o ...dedup.InitOptions) *dedup.Repository {
	t.Helper()
	opts := dedup.InitOptions{BlockSize: 64 << 10, PackSize: 1 << 20}
	if len(o) > 0 {
		opts = o[0]
	}
	r, err := dedup.Init(context.Background(), t.TempDir(), opts, nil, dedup.Options{NoSync: true, Password: opts.Password})
	if err != nil {
		t.Fatalf("init repository: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// Source returns a backup source reading data.
func Source(name string, data []byte) dedup.Source {
	return memSource{name: name, Reader: bytes.NewReader(data)}
}

type memSource struct {
	name string
	*bytes.Reader
}

func (m memSource) Name() string { return m.name }
