package dedup

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

// TestPrimeHugePages checks, in a fresh process of this test binary, that
// an allocation made right after primeHugePages, as argon2 makes its
// blocks, lies in memory advised for huge pages (smaps flag "hg"), and
// that one made before does not. In this process, earlier tests' repository
// opens have advised memory already.
func TestPrimeHugePages(t *testing.T) {
	if os.Getenv("CAIRN_TEST_PRIME_CHILD") == "1" {
		primeHugePagesChild(t)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestPrimeHugePages$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "CAIRN_TEST_PRIME_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestPrimeHugePages") {
		t.Fatalf("child process: %v\n%s", err, out)
	}
}

func primeHugePagesChild(t *testing.T) {
	const n = 64 << 20
	type block [128]uint64 // argon2's
	plain := make([]block, n/1024)
	if flags := vmaFlags(t, uintptr(unsafe.Pointer(&plain[len(plain)/2]))); slices.Contains(flags, "hg") {
		t.Fatalf("memory allocated before primeHugePages has flags %v: the check below would show nothing", flags)
	}
	primeHugePages(n)
	primed := make([]block, n/1024)
	// Its first 2 MiB may lie before the advised range, which starts at a
	// 2 MiB boundary: look in the middle.
	if flags := vmaFlags(t, uintptr(unsafe.Pointer(&primed[len(primed)/2]))); !slices.Contains(flags, "hg") {
		t.Errorf("memory allocated after primeHugePages has flags %v, want hg", flags)
	}
	runtime.KeepAlive(plain)
}
