package testenv

import (
	"runtime"
	"testing"
)

func TestLookup(t *testing.T) {
	t.Setenv("CAIRN_TESTENV_PROBE", "value")
	if got := Lookup(t, "CAIRN_TESTENV_PROBE", "probe", "set it"); got != "value" {
		t.Fatalf("Lookup = %q, want value", got)
	}
	// Unset: a skip normally, a failure under CAIRN_REQUIRE_ALL=1. Run in
	// a fake T so the outcome can be inspected.
	for _, requireAll := range []string{"", "1"} {
		t.Setenv("CAIRN_REQUIRE_ALL", requireAll)
		ft := &fakeT{}
		done := make(chan struct{})
		go func() {
			defer close(done)
			Lookup(ft, "CAIRN_TESTENV_UNSET_PROBE", "probe", "set it")
		}()
		<-done
		if requireAll == "1" && !ft.failed || requireAll == "" && !ft.skipped {
			t.Errorf("CAIRN_REQUIRE_ALL=%q: failed=%v skipped=%v", requireAll, ft.failed, ft.skipped)
		}
	}
}

// fakeT records Fatalf and Skipf and stops the goroutine as testing.T does.
type fakeT struct {
	testing.TB
	failed, skipped bool
}

func (f *fakeT) Helper() {}
func (f *fakeT) Fatalf(string, ...any) {
	f.failed = true
	runtime.Goexit()
}
func (f *fakeT) Skipf(string, ...any) {
	f.skipped = true
	runtime.Goexit()
}
