package plugins

import (
	"regexp"
	"testing"
)

func TestNameUUID(t *testing.T) {
	v5 := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	a, b := NameUUID("cairn-file:/a"), NameUUID("cairn-file:/b")
	if !v5.MatchString(a) || !v5.MatchString(b) || a == b || a != NameUUID("cairn-file:/a") {
		t.Fatalf("NameUUID: %s, %s: want distinct, stable version-5-style UUIDs", a, b)
	}
}
