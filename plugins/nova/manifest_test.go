package nova

import (
	"encoding/json"
	"errors"
	"testing"
)

func validManifest() Manifest {
	return Manifest{Version: ManifestVersion, Server: Definition{ID: "s1", Name: "web"},
		Volumes: []VolumeBackup{{VolumeID: "v1", Device: "/dev/sda", BootIndex: 0, BackupID: "c1"},
			{VolumeID: "v2", Device: "/dev/sdb", BootIndex: -1, BackupID: "c2"}},
		Consistency: ConsistencyNote{Level: Sequential, Reason: "test"}}
}

func TestParseManifest(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*Manifest)
		ok     bool
	}{
		{"valid", func(*Manifest) {}, true},
		{"wrong version", func(m *Manifest) { m.Version = 2 }, false},
		{"no server", func(m *Manifest) { m.Server.ID = "" }, false},
		{"bad level", func(m *Manifest) { m.Consistency.Level = "maybe" }, false},
		{"volume without backup", func(m *Manifest) { m.Volumes[1].BackupID = "" }, false},
		{"root not first", func(m *Manifest) { m.Volumes[0].BootIndex, m.Volumes[1].BootIndex = -1, 0 }, false},
		{"two roots", func(m *Manifest) { m.Volumes[1].BootIndex = 0 }, false},
		{"ephemeral without backup", func(m *Manifest) { m.Ephemeral = &DiskBackup{Pool: "vms"} }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := validManifest()
			tc.change(&m)
			b, _ := json.Marshal(m)
			_, err := parseManifest(b)
			if tc.ok != (err == nil) || err != nil && !errors.Is(err, ErrManifest) {
				t.Errorf("parseManifest: %v, want ok=%v (errors wrapping ErrManifest)", err, tc.ok)
			}
		})
	}
	if _, err := parseManifest([]byte("{")); !errors.Is(err, ErrManifest) {
		t.Errorf("truncated JSON: %v", err)
	}
}

func FuzzParseManifest(f *testing.F) {
	b, _ := json.Marshal(validManifest())
	f.Add(b)
	f.Add([]byte(`{"version":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseManifest(b)
		if err == nil && (m.Server.ID == "" || len(m.Volumes) > 0 && m.Volumes[0].VolumeID == "") {
			t.Fatalf("accepted an invalid manifest: %+v", m)
		}
	})
}
