package glance

import (
	"encoding/json"
	"testing"

	"cairn/internal/openstack"
)

func TestSavedOfSkipsGlanceKeys(t *testing.T) {
	im := &openstack.Image{Name: "cirros", DiskFormat: "raw", ContainerFormat: "bare", Visibility: "private",
		Tags: []string{"b", "a"}, Properties: map[string]any{
			"hw_disk_bus": "scsi", "direct_url": "rbd://f/images/i/snap", "os_hash_value": "x",
			"os_glance_importing_to_stores": "", "locations": []any{}, "stores": "rbd", "owner_specified.x": "y"}}
	s := savedOf(im)
	want := map[string]string{"hw_disk_bus": "scsi", "owner_specified.x": "y"}
	if len(s.Properties) != len(want) {
		t.Fatalf("properties %v, want %v", s.Properties, want)
	}
	for k, v := range want {
		if s.Properties[k] != v {
			t.Fatalf("property %s = %q, want %q", k, s.Properties[k], v)
		}
	}
	if s.Tags[0] != "a" || s.Tags[1] != "b" {
		t.Fatalf("tags %v not sorted", s.Tags)
	}
	b, _ := json.Marshal(s)
	back, err := decodeSaved(string(b))
	if err != nil {
		t.Fatal(err)
	}
	o := back.createOpts("n", "j1")
	if o.Properties[MetaJournal] != "j1" || o.Properties["hw_disk_bus"] != "scsi" || *o.Visibility != "private" {
		t.Fatalf("create opts %+v", o)
	}
}

func TestDecodeSavedRejects(t *testing.T) {
	for name, in := range map[string]string{
		"not json":       "{",
		"negative":       `{"min_disk":-1}`,
		"visibility":     `{"visibility":"everyone"}`,
		"server key":     `{"properties":{"direct_url":"rbd://x"}}`,
		"glance prefix":  `{"properties":{"os_glance_x":"1"}}`,
		"empty property": `{"properties":{"":"1"}}`,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := decodeSaved(in); err == nil {
				t.Fatalf("decodeSaved(%s) accepted", in)
			}
		})
	}
}

func FuzzDecodeSaved(f *testing.F) {
	f.Add(`{"name":"x","disk_format":"raw","properties":{"a":"b"},"tags":["t"]}`)
	f.Add(`{"visibility":"shared","min_ram":5}`)
	f.Fuzz(func(t *testing.T, in string) {
		s, err := decodeSaved(in)
		if err != nil {
			return
		}
		o := s.createOpts("n", "j")
		if o.Properties[MetaJournal] != "j" {
			t.Fatal("journal property lost")
		}
		if _, err := o.ToImageCreateMap(); err != nil {
			t.Fatalf("create map of accepted %q: %v", in, err)
		}
	})
}

func TestParseRBDLocation(t *testing.T) {
	for in, ok := range map[string]bool{
		"rbd://fsid/images/abc/snap": true,
		"rbd://fsid/images/abc":      false,
		"file:///var/lib/glance/x":   false,
		"rbd:///images/abc/snap":     false,
		"rbd://f/p/i/s/extra":        false,
	} {
		l, got := openstack.ParseRBDLocation(in)
		if got != ok {
			t.Fatalf("ParseRBDLocation(%q) = %v, want %v", in, got, ok)
		}
		if ok && (l.Pool != "images" || l.Image != "abc" || l.Snap != "snap") {
			t.Fatalf("ParseRBDLocation(%q) = %+v", in, l)
		}
	}
}
