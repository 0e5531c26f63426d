package nova

import (
	"slices"
	"strings"
	"testing"

	"cairn/internal/openstack"
)

func TestGroupName(t *testing.T) {
	const server = "0a1b2c3d-4e5f-6789-abcd-ef0123456789"
	name := GroupName(server, [4]byte{0xde, 0xad, 0xbe, 0xef})
	if name != "cairn-0a1b2c3d-deadbeef" {
		t.Fatalf("GroupName = %q", name)
	}
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{name, true},
		{"cairn-s1-00ff00ff", true}, // a short server ID
		{"cairn-0a1b2c3d-deadbee", false},
		{"cairn-0a1b2c3d-deadbeeg", false},
		{"cairn-0a1b2c3d4-deadbeef", false},
		{"cairn--deadbeef", false},
		{"cairn-deadbeef", false},
		{"openstack-group-1", false},
		{"my-cairn-0a1b2c3d-deadbeef", false},
	} {
		if got := IsGroupName(tc.name); got != tc.ok {
			t.Errorf("IsGroupName(%q) = %v, want %v", tc.name, got, tc.ok)
		}
	}
}

func TestServerLeaks(t *testing.T) {
	srv := func(id, status string, meta map[string]string, vols ...string) openstack.Server {
		s := openstack.Server{ID: id, TenantID: "p", Status: status, Metadata: meta}
		for _, v := range vols {
			s.Volumes = append(s.Volumes, struct{ ID string }{v})
		}
		return s
	}
	for _, tc := range []struct {
		name    string
		servers []openstack.Server
		leaks   []string
	}{
		{name: "nothing of cairn's, and a finished restore's server",
			servers: []openstack.Server{srv("user", "ACTIVE", nil, "v1"),
				srv("restored", "ACTIVE", map[string]string{MetaNotes: "fixed IPs not honoured"}, "r1")}},
		{name: "cut-off restores, with and without their volumes",
			servers: []openstack.Server{srv("building", "BUILD", map[string]string{MetaJournal: "j1"}),
				srv("error", "ERROR", map[string]string{MetaJournal: "j2", "role": "web"}, "root", "data"),
				srv("user", "ACTIVE", nil, "v1")},
			leaks: []string{"server:building", "server:error", "volume:data", "volume:root"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, l := range ServerLeaks(tc.servers) {
				got = append(got, l.Kind+":"+l.ID)
				if l.Project != "p" {
					t.Errorf("leak %s: project %q, want the server's", l.ID, l.Project)
				}
				switch {
				case l.Kind == "server" && !strings.Contains(l.Reason, "openstack server delete "+l.ID):
					t.Errorf("leak %s: reason %q does not say how to delete it", l.ID, l.Reason)
				case l.ID == "error" && !strings.Contains(l.Reason, "root, data"):
					t.Errorf("leak %s: reason %q does not name its volumes", l.ID, l.Reason)
				case l.Kind == "volume" && (l.Volume != l.ID || !strings.Contains(l.Reason, "server error")):
					t.Errorf("leak %s: volume %q reason %q; want its server named", l.ID, l.Volume, l.Reason)
				}
			}
			if !slices.Equal(got, tc.leaks) {
				t.Fatalf("leaks %v; want %v", got, tc.leaks)
			}
		})
	}
}

func TestGroupLeaks(t *testing.T) {
	vols := []openstack.Volume{{ID: "v1", TenantID: "p1"}, {ID: "v2", TenantID: "p1"}}
	const g1 = "cairn-0a1b2c3d-deadbeef"
	for _, tc := range []struct {
		name    string
		groups  []RBDGroup
		leaks   []string
		project string
	}{
		{name: "nobody's group is cairn's",
			groups: []RBDGroup{{Pool: "volumes", Name: "consistency-1", Images: []string{"volumes/volume-v1"}, Snapshots: []string{"s"}}}},
		{name: "a cut-off protection's group and its snapshot",
			groups: []RBDGroup{{Pool: "volumes", Name: g1, Images: []string{"volumes/volume-v1", "volumes/volume-v2"}, Snapshots: []string{"cairn"}},
				{Pool: "volumes", Name: "other"}},
			leaks: []string{"rbd_group:volumes/" + g1, "rbd_group_snapshot:volumes/" + g1 + "@cairn"}, project: "p1"},
		{name: "a group cut off before its snapshot, of images Cinder does not know",
			groups: []RBDGroup{{Pool: "ssd", Name: g1, Images: []string{"ssd/volume-gone"}}},
			leaks:  []string{"rbd_group:ssd/" + g1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, l := range GroupLeaks(tc.groups, vols) {
				got = append(got, l.Kind+":"+l.ID)
				if l.Project != tc.project {
					t.Errorf("leak %s: project %q, want %q", l.ID, l.Project, tc.project)
				}
				want := "rbd group rm " + l.ID
				if l.Kind == "rbd_group_snapshot" {
					want = "rbd group snap rm " + l.ID
				}
				if !strings.Contains(l.Reason, want) {
					t.Errorf("leak %s: reason %q does not say %q", l.ID, l.Reason, want)
				}
			}
			if !slices.Equal(got, tc.leaks) {
				t.Fatalf("leaks %v; want %v", got, tc.leaks)
			}
		})
	}
}
