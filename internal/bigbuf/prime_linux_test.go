package bigbuf

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"
	"unsafe"
)

// vmaFlags returns the VmFlags of the mapping that holds address a.
func vmaFlags(t *testing.T, a uintptr) []string {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		var lo, hi uintptr
		if n, _ := fmt.Sscanf(line, "%x-%x ", &lo, &hi); n == 2 {
			in = lo <= a && a < hi
			continue
		}
		if rest, ok := strings.CutPrefix(line, "VmFlags:"); ok && in {
			return strings.Fields(rest)
		}
	}
	t.Fatalf("no mapping holds %#x", a)
	return nil
}

// TestPrimeHeap checks, in a fresh process of this test binary (this one
// may have primed already), that what is allocated after PrimeHeap lies
// in memory advised for huge pages (smaps flag "hg"): argon2id's blocks
// as they are allocated (1 KiB blocks, 64 MiB) and a badger memtable's
// arena; and that an allocation made before does not, or the check
// would show nothing.
func TestPrimeHeap(t *testing.T) {
	if os.Getenv("CAIRN_TEST_PRIME_CHILD") == "1" {
		primeHeapChild(t)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestPrimeHeap$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "CAIRN_TEST_PRIME_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestPrimeHeap") {
		t.Fatalf("child process: %v\n%s", err, out)
	}
}

func primeHeapChild(t *testing.T) {
	type block [128]uint64
	hg := func(p unsafe.Pointer) bool { return slices.Contains(vmaFlags(t, uintptr(p)), "hg") }
	plain := make([]block, 64<<10)
	if hg(unsafe.Pointer(&plain[len(plain)/2])) {
		t.Fatal("memory allocated before PrimeHeap is advised already: the checks below would show nothing")
	}
	PrimeHeap()
	argon := make([]block, 64<<10)
	memtable := make([]byte, 20<<20)
	// An allocation's first 2 MiB may lie before the advised range, which
	// starts at a 2 MiB boundary: look in the middle.
	if !hg(unsafe.Pointer(&argon[len(argon)/2])) {
		t.Errorf("64 MiB allocated after PrimeHeap: not advised for huge pages")
	}
	if !hg(unsafe.Pointer(&memtable[len(memtable)/2])) {
		t.Errorf("20 MiB allocated after PrimeHeap and 64 MiB more: not advised for huge pages")
	}
	runtime.KeepAlive(plain)
	runtime.KeepAlive(argon)
}
