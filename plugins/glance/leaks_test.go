package glance

import (
	"slices"
	"strings"
	"testing"

	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/images"

	"cairn/internal/openstack"
)

func TestLeaks(t *testing.T) {
	img := func(id string, status images.ImageStatus, protected bool, props map[string]any) openstack.Image {
		return openstack.Image{ID: id, Owner: "p", Status: status, Protected: protected, Properties: props}
	}
	journaled := map[string]any{MetaJournal: "j1", "os_distro": "debian"}
	for _, tc := range []struct {
		name  string
		ims   []openstack.Image
		leaks []string
		// reason holds, per leak, what its reason must say.
		reason map[string]string
	}{
		{name: "nothing of cairn's, and a finished restore's image",
			ims: []openstack.Image{img("user", images.ImageStatusActive, false, nil),
				img("restored", images.ImageStatusActive, true, map[string]any{"os_distro": "debian"}),
				img("other-tool", images.ImageStatusQueued, false, map[string]any{"cairn.journal": "x", MetaJournal: ""})}},
		{name: "cut-off restores in every state",
			ims: []openstack.Image{img("q", images.ImageStatusQueued, false, journaled),
				img("s", images.ImageStatusSaving, false, journaled), img("k", images.ImageStatusKilled, false, journaled),
				img("a", images.ImageStatusActive, true, journaled), img("user", images.ImageStatusActive, false, nil)},
			leaks: []string{"image:a", "image:k", "image:q", "image:s"},
			reason: map[string]string{"q": "openstack image delete q", "k": "status killed",
				"a": "openstack image set --unprotected a"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, l := range Leaks(tc.ims) {
				got = append(got, l.Kind+":"+l.ID)
				if l.Project != "p" || !strings.Contains(l.Reason, MetaJournal+"=j1") {
					t.Errorf("leak %s: project %q reason %q; want project p and the journal entry named", l.ID, l.Project, l.Reason)
				}
				if want := tc.reason[l.ID]; !strings.Contains(l.Reason, want) {
					t.Errorf("leak %s: reason %q does not say %q", l.ID, l.Reason, want)
				}
			}
			if !slices.Equal(got, tc.leaks) {
				t.Fatalf("leaks %v; want %v", got, tc.leaks)
			}
		})
	}
}
