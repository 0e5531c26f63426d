package partition

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSfdisk cross-checks Read against tables written by util-linux sfdisk.
func TestSfdisk(t *testing.T) {
	sfdisk, err := exec.LookPath("sfdisk")
	if err != nil {
		if os.Getenv("CAIRN_REQUIRE_ALL") == "1" {
			t.Fatalf("sfdisk is required (CAIRN_REQUIRE_ALL=1): %v", err)
		}
		t.Skipf("sfdisk not found (package fdisk): %v", err)
	}
	for _, c := range []struct {
		label  string
		script string
		want   []want
	}{
		{"gpt", "label: gpt\nstart=2048, size=4096, type=L, name=root\nstart=8192, size=2048, type=U\n",
			[]want{{1, mib, 2 * mib}, {2, 4 * mib, mib}}},
		{"dos", "label: dos\ndisk.img1 : start=2048, size=4096, type=83, bootable\ndisk.img2 : start=8192, size=8192, type=5\n" +
			"disk.img5 : start=10240, size=2048, type=83\ndisk.img6 : start=14336, size=2048, type=82\n",
			[]want{{1, mib, 2 * mib}, {5, 5 * mib, mib}, {6, 7 * mib, mib}}},
	} {
		t.Run(c.label, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "disk.img")
			if err := os.WriteFile(path, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(path, 16*mib); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(sfdisk, "--no-reread", "--no-tell-kernel", "-q", "disk.img")
			cmd.Dir = filepath.Dir(path)
			cmd.Stdin = strings.NewReader(c.script)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("sfdisk: %v\n%s", err, out)
			}
			img, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			tab := mustRead(t, img)
			if string(tab.Scheme) != map[string]string{"gpt": "gpt", "dos": "mbr"}[c.label] {
				t.Fatalf("scheme %s", tab.Scheme)
			}
			checkParts(t, tab.Partitions, c.want...)
			if c.label == "gpt" && (tab.Partitions[0].Name != "root" || tab.Partitions[0].TypeName != "linux" || tab.Partitions[1].TypeName != "efi") {
				t.Errorf("GPT entries: %+v", tab.Partitions)
			}
		})
	}
}
