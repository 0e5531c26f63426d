package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// marker is plaintext that must never appear in an encrypted repository.
const marker = "CAIRN-E2E-PLAINTEXT-MARKER"

type roundTripCase struct {
	name string
	// make creates the source file at path.
	make func(t *testing.T, path string)
	// check, if set, inspects the checkpoint and the restored file.
	check func(t *testing.T, cp checkpoint, restored string)
}

func roundTripCases() []roundTripCase {
	const bs = 64 * kib
	return []roundTripCase{
		{
			name: "odd-size",
			make: func(t *testing.T, p string) { writeFile(t, p, randomBytes(1, int(2*mib+12345))) },
			check: func(t *testing.T, cp checkpoint, _ string) {
				if want := (2*mib + 12345 + bs - 1) / bs; cp.Size != 2*mib+12345 || cp.Blocks != want {
					t.Errorf("size %d, blocks %d; want %d, %d", cp.Size, cp.Blocks, 2*mib+12345, want)
				}
			},
		},
		{
			name: "random",
			make: func(t *testing.T, p string) { writeFile(t, p, randomBytes(2, int(6*mib))) },
			check: func(t *testing.T, cp checkpoint, _ string) {
				if cp.NewBytes != 6*mib || cp.NewChunks != 6*mib/bs || cp.HoleBlocks != 0 {
					t.Errorf("new_bytes %d, new_chunks %d, hole_blocks %d; want %d, %d, 0",
						cp.NewBytes, cp.NewChunks, cp.HoleBlocks, 6*mib, 6*mib/bs)
				}
			},
		},
		{
			name: "text",
			make: func(t *testing.T, p string) {
				writeFile(t, p, bytes.Repeat([]byte(marker+" compressible text\n"), 60000))
			},
		},
		{
			name: "sparse",
			make: func(t *testing.T, p string) {
				f, err := os.Create(p)
				if err != nil {
					t.Fatal(err)
				}
				if err := f.Truncate(64 * mib); err != nil {
					t.Fatal(err)
				}
				f.Close()
				writeAt(t, p, randomBytes(3, 4096), 0)
				writeAt(t, p, randomBytes(4, 1000), 20*mib+12345)
				writeAt(t, p, randomBytes(5, 20), 40*mib-10) // straddles a block boundary
				writeAt(t, p, []byte{0xff}, 64*mib-1)        // the very last byte
			},
			check: func(t *testing.T, cp checkpoint, restored string) {
				if cp.Size != 64*mib || cp.Blocks != 64*mib/bs || cp.HoleBlocks != cp.Blocks-5 {
					t.Errorf("size %d, blocks %d, hole_blocks %d; want %d, %d, %d",
						cp.Size, cp.Blocks, cp.HoleBlocks, 64*mib, 64*mib/bs, 64*mib/bs-5)
				}
				if cp.AllocatedBytes != 5*bs || cp.NewBytes != 5*bs {
					t.Errorf("allocated_bytes %d, new_bytes %d; want %d each", cp.AllocatedBytes, cp.NewBytes, 5*bs)
				}
				if a := allocated(t, restored); a > 4*mib {
					t.Errorf("restored file occupies %d bytes on disk for 5 data blocks of %d: holes were written out", a, bs)
				}
			},
		},
		{
			name: "all-zero",
			make: func(t *testing.T, p string) { writeFile(t, p, make([]byte, 3*mib+100)) },
			check: func(t *testing.T, cp checkpoint, restored string) {
				if cp.HoleBlocks != cp.Blocks || cp.NewBytes != 0 || cp.StoredBytes != 0 || cp.AllocatedBytes != 0 {
					t.Errorf("hole_blocks %d of %d, new_bytes %d, stored_bytes %d, allocated_bytes %d; want all holes, nothing stored",
						cp.HoleBlocks, cp.Blocks, cp.NewBytes, cp.StoredBytes, cp.AllocatedBytes)
				}
				if a := allocated(t, restored); a > bs {
					t.Errorf("restored all-zero file occupies %d bytes on disk, want a hole", a)
				}
			},
		},
		{
			name: "empty",
			make: func(t *testing.T, p string) { writeFile(t, p, nil) },
			check: func(t *testing.T, cp checkpoint, _ string) {
				if cp.Size != 0 || cp.Blocks != 0 {
					t.Errorf("size %d, blocks %d; want 0, 0", cp.Size, cp.Blocks)
				}
			},
		},
		{
			name: "ext4",
			make: makeExt4Image,
			check: func(t *testing.T, _ checkpoint, restored string) {
				debugfs := requireTool(t, "debugfs")
				for name, want := range ext4Files {
					out, err := exec.Command(debugfs, "-R", "cat /"+name, restored).Output()
					if err != nil {
						t.Fatalf("debugfs cat /%s in the restored image: %v", name, err)
					}
					if !bytes.Equal(out, want) {
						t.Errorf("/%s reads back %d bytes from the restored image, want %d bytes of the original", name, len(out), len(want))
					}
				}
			},
		},
	}
}

// ext4Files are written into the test filesystem image (by path inside it).
var ext4Files = map[string][]byte{
	"hello.txt":    []byte("hello from cairn\n"),
	"data.bin":     randomBytes(7, 300*1024+17),
	"dir/deep.txt": bytes.Repeat([]byte("deep "), 5000),
}

func makeExt4Image(t *testing.T, img string) {
	t.Helper()
	mkfs := requireTool(t, "mkfs.ext4")
	requireTool(t, "debugfs")
	root := filepath.Join(t.TempDir(), "fsroot")
	for name, data := range ext4Files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, p, data)
	}
	if out, err := exec.Command(mkfs, "-q", "-F", "-d", root, img, "64M").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
}

// TestRoundTrip backs up files of different shapes and restores them byte
// for byte, into plain and encrypted repositories.
func TestRoundTrip(t *testing.T) {
	for _, enc := range []struct{ name, password string }{{"plain", ""}, {"encrypted", "correct horse battery staple"}} {
		t.Run(enc.name, func(t *testing.T) {
			for _, tc := range roundTripCases() {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					e := newRepo(t, repoOpts{password: enc.password})
					src := filepath.Join(e.scratch, tc.name+".img")
					tc.make(t, src)
					want := fileHash(t, src)
					fi, err := os.Stat(src)
					if err != nil {
						t.Fatal(err)
					}
					cp := e.backup(src)
					if cp.Size != fi.Size() {
						t.Errorf("checkpoint size %d, source has %d bytes", cp.Size, fi.Size())
					}
					if !cp.Full || cp.Parent != "" {
						t.Errorf("first backup: full=%v parent=%q, want a full backup without parent", cp.Full, cp.Parent)
					}
					restored := e.restore(cp.ID)
					if got := fileHash(t, restored); got != want {
						t.Fatalf("restored %s has sha256 %s, source has %s", tc.name, got, want)
					}
					if rfi, err := os.Stat(restored); err != nil || rfi.Size() != fi.Size() {
						t.Fatalf("restored file: %v, size %d, want %d", err, rfi.Size(), fi.Size())
					}
					if tc.check != nil {
						tc.check(t, cp, restored)
					}
					if enc.password != "" {
						assertNoPlaintext(t, e)
					}
				})
			}
		})
	}
}

// assertNoPlaintext checks that no file of an encrypted repository holds the
// marker text in the clear.
func assertNoPlaintext(t *testing.T, e *env) {
	t.Helper()
	for _, kind := range []string{"packs", "manifests"} {
		for _, p := range e.shardFiles(kind) {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(b, []byte(marker)) || bytes.Contains(b, []byte(strings.ToLower(marker))) {
				t.Errorf("%s holds plaintext in an encrypted repository", p)
			}
		}
	}
}
