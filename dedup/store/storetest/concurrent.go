package storetest

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"cairn/dedup/store"
)

const (
	workers    = 8
	iterations = 20
)

func testConcurrent(t *testing.T, s store.Store) {
	t.Run("Distinct", func(t *testing.T) { testConcurrentDistinct(t, s) })
	t.Run("Same", func(t *testing.T) { testConcurrentSame(t, s) })
}

// testConcurrentDistinct has each goroutine write and read back its own names.
func testConcurrentDistinct(t *testing.T, s store.Store) {
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := range workers {
		wg.Go(func() {
			for i := range iterations {
				name := fmt.Sprintf("distinct/%d/%d", g, i)
				data := randBytes(1000+g*100+i, uint64(g*iterations+i))
				if err := s.Put(ctx, name, data); err != nil {
					t.Errorf("Put(%q): %v", name, err)
					return
				}
				got, err := s.Get(ctx, name)
				if err != nil || !bytes.Equal(got, data) {
					t.Errorf("Get(%q) after Put: %d bytes, %v; want %d bytes", name, len(got), err, len(data))
					return
				}
			}
		})
	}
	wg.Wait()
	if got := listAll(t, s, "distinct/"); len(got) != workers*iterations {
		t.Errorf("List after concurrent Puts: %d objects, want %d", len(got), workers*iterations)
	}
}

// payload is writer g's version of the shared object: a length and a byte
// value unique to g, so a reader can tell a torn or mixed object apart.
func payload(g int) []byte {
	return bytes.Repeat([]byte{byte(g)}, 4096*(g+1))
}

func checkPayload(b []byte) error {
	if len(b) == 0 || len(b) != 4096*(int(b[0])+1) {
		return fmt.Errorf("torn object: %d bytes starting with %d", len(b), firstByte(b))
	}
	if i := bytes.IndexFunc(b, func(r rune) bool { return r != rune(b[0]) }); i >= 0 {
		return fmt.Errorf("mixed object: byte %d differs from byte 0", i)
	}
	return nil
}

func firstByte(b []byte) int {
	if len(b) == 0 {
		return -1
	}
	return int(b[0])
}

// testConcurrentSame has writers replace one object while readers and a
// lister check they only ever see a whole version of it.
func testConcurrentSame(t *testing.T, s store.Store) {
	ctx := context.Background()
	const name = "same/obj"
	put(t, s, name, payload(0))
	var wg sync.WaitGroup
	for g := range workers {
		wg.Go(func() {
			for range iterations {
				if err := s.Put(ctx, name, payload(g)); err != nil {
					t.Errorf("Put: %v", err)
					return
				}
			}
		})
		wg.Go(func() {
			for range iterations {
				b, err := s.Get(ctx, name)
				if err == nil {
					err = checkPayload(b)
				}
				if err == nil {
					// Any size Stat reports must be a whole version's size.
					var size int64
					size, err = s.Stat(ctx, name)
					if err == nil && (size%4096 != 0 || size == 0 || size > 4096*workers) {
						err = fmt.Errorf("stat: torn size %d", size)
					}
				}
				if err != nil {
					t.Errorf("reader: %v", err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for range iterations {
			err := s.List(ctx, "same/", func(n string, _ int64) error {
				if n != name || strings.Contains(n, ".tmp") {
					return fmt.Errorf("listed %q, want only %q", n, name)
				}
				return nil
			})
			if err != nil {
				t.Errorf("List: %v", err)
				return
			}
		}
	})
	wg.Wait()
	b, err := s.Get(ctx, name)
	if err == nil {
		err = checkPayload(b)
	}
	if err != nil {
		t.Errorf("after concurrent Puts: %v", err)
	}
}
