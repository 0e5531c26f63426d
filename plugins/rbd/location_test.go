package rbd

import (
	"errors"
	"testing"

	"cairn/plugins"
)

func TestParseLocation(t *testing.T) {
	for in, want := range map[string]location{
		"volumes":                {pool: "volumes"},
		"volumes/ns":             {pool: "volumes", namespace: "ns"},
		"vol-{project_id}":       {pool: "vol-{project_id}"},
		"volumes/{project_id}-x": {pool: "volumes", namespace: "{project_id}-x"},
	} {
		got, err := parseLocation(in)
		if err != nil || got != want || got.String() != in {
			t.Errorf("parseLocation(%q) = %+v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "/ns", "p/", "p/a/b", "p@s"} {
		if _, err := parseLocation(bad); err == nil {
			t.Errorf("parseLocation(%q) succeeded", bad)
		}
	}
	l, _ := parseLocation("vol-{project_id}/ns-{project_id}")
	if e, err := l.forProject("abc"); err != nil || e != (location{pool: "vol-abc", namespace: "ns-abc"}) {
		t.Errorf("forProject = %+v, %v", e, err)
	}
	if _, err := l.forProject("a/b"); !errors.Is(err, plugins.ErrInvalidParameter) {
		t.Errorf("forProject with a bad project: %v", err)
	}
}

func TestNames(t *testing.T) {
	id := InstanceID("p", "", "abc")
	if id == InstanceID("p", "", "abd") || id == InstanceID("p", "ns", "abc") || id != InstanceID("p", "", "abc") {
		t.Error("InstanceID is not a stable function of the image ID")
	}
	pn := partialName("0197c2a4-aaaa", "vol")
	if !isPartialOf("0197c2a4-bbbb", pn) || isPartialOf("0198c2a4", pn) || !isPartialName(pn) || isPartialName("vol") {
		t.Errorf("partial name %q not recognised as the repository's only", pn)
	}
	for name, ok := range map[string]bool{"vol-1.restored_2": true, "": false, "a b": false, "a@b": false, "a/b": false, pn: false} {
		if validImageName(name) != ok {
			t.Errorf("validImageName(%q) = %v", name, !ok)
		}
	}
}
