package glance

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/images"

	"cairn/internal/openstack"
)

// Saved is what a checkpoint keeps of an image besides its data
// (TagSaved, as JSON).
type Saved struct {
	Name            string            `json:"name"`
	DiskFormat      string            `json:"disk_format"`
	ContainerFormat string            `json:"container_format"`
	MinDisk         int               `json:"min_disk"`
	MinRAM          int               `json:"min_ram"`
	Visibility      string            `json:"visibility"`
	Protected       bool              `json:"protected"`
	Hidden          bool              `json:"os_hidden"`
	Tags            []string          `json:"tags"`
	Properties      map[string]string `json:"properties"`
}

// serverKeys are properties Glance sets itself; a restore cannot (and
// must not) set them.
var serverKeys = map[string]bool{"direct_url": true, "locations": true, "os_hash_algo": true,
	"os_hash_value": true, "stores": true, "properties": true, MetaJournal: true}

// isServerKey reports whether a property is Glance's own.
func isServerKey(k string) bool {
	return serverKeys[k] || strings.HasPrefix(k, "os_glance_")
}

// savedOf returns what is saved of im. Custom properties are strings
// in Glance; anything else is Glance's own and skipped.
func savedOf(im *openstack.Image) Saved {
	s := Saved{Name: im.Name, DiskFormat: im.DiskFormat, ContainerFormat: im.ContainerFormat,
		MinDisk: im.MinDiskGigabytes, MinRAM: im.MinRAMMegabytes, Visibility: string(im.Visibility),
		Protected: im.Protected, Hidden: im.Hidden, Tags: append([]string{}, im.Tags...), Properties: map[string]string{}}
	sort.Strings(s.Tags)
	for k, v := range im.Properties {
		if str, ok := v.(string); ok && !isServerKey(k) {
			s.Properties[k] = str
		}
	}
	return s
}

// decodeSaved parses TagSaved; a checkpoint's tags come from the
// repository, so they are checked before use.
func decodeSaved(b string) (Saved, error) {
	var s Saved
	if err := json.Unmarshal([]byte(b), &s); err != nil {
		return s, fmt.Errorf("tag %s: %w", TagSaved, err)
	}
	if s.MinDisk < 0 || s.MinRAM < 0 {
		return s, fmt.Errorf("tag %s: negative min_disk or min_ram", TagSaved)
	}
	switch s.Visibility {
	case "", "public", "private", "shared", "community":
	default:
		return s, fmt.Errorf("tag %s: visibility %q", TagSaved, s.Visibility)
	}
	for k := range s.Properties {
		if k == "" || isServerKey(k) {
			return s, fmt.Errorf("tag %s: property %q is Glance's own", TagSaved, k)
		}
	}
	return s, nil
}

// createOpts is the new image of a restore: the saved properties under
// name, and the journal property that marks it as cairn's until done.
// It is never created protected: protection is set once its data is in.
func (s Saved) createOpts(name, journal string) images.CreateOpts {
	props := make(map[string]string, len(s.Properties)+1)
	for k, v := range s.Properties {
		props[k] = v
	}
	props[MetaJournal] = journal
	o := images.CreateOpts{Name: name, DiskFormat: s.DiskFormat, ContainerFormat: s.ContainerFormat,
		MinDisk: s.MinDisk, MinRAM: s.MinRAM, Tags: s.Tags, Properties: props}
	if s.Visibility != "" {
		v := images.ImageVisibility(s.Visibility)
		o.Visibility = &v
	}
	if s.Hidden {
		h := true
		o.Hidden = &h
	}
	return o
}
