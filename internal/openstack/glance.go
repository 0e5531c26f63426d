package openstack

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/imagedata"
	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/images"
)

// Image is gophercloud's.
type Image = images.Image

// Glance is the image API of one project. Safe for concurrent use.
type Glance struct {
	sc   *gophercloud.ServiceClient
	wait *Cinder // its poll only
}

// Images lists the images the project sees (its own, those shared with
// it, public ones; an admin sees all); owner non-empty keeps those of
// that project.
func (g *Glance) Images(ctx context.Context, owner string) ([]Image, error) {
	pages, err := images.List(g.sc, images.ListOpts{Owner: owner}).AllPages(ctx)
	if err != nil {
		return nil, wrap(err, "list images")
	}
	out, err := images.ExtractImages(pages)
	return out, wrap(err, "list images")
}

// Image returns image id; ErrNotFound when the project does not see it.
func (g *Glance) Image(ctx context.Context, id string) (*Image, error) {
	im, err := images.Get(ctx, g.sc, id).Extract()
	return im, wrap(err, "image %s", id)
}

// Download streams image id's data; the caller closes it.
func (g *Glance) Download(ctx context.Context, id string) (io.ReadCloser, error) {
	rc, err := imagedata.Download(ctx, g.sc, id).Extract()
	return rc, wrap(err, "download image %s", id)
}

// CreateImage creates an image record (no data yet).
func (g *Glance) CreateImage(ctx context.Context, o images.CreateOpts) (*Image, error) {
	im, err := images.Create(ctx, g.sc, o).Extract()
	return im, wrap(err, "create image %q", o.Name)
}

// Upload sends image id's data; Glance then makes it active.
func (g *Glance) Upload(ctx context.Context, id string, data io.Reader) error {
	return wrap(imagedata.Upload(ctx, g.sc, id, data).ExtractErr(), "upload image %s", id)
}

// RemoveProperty removes a custom property of image id.
func (g *Glance) RemoveProperty(ctx context.Context, id, name string) error {
	_, err := images.Update(ctx, g.sc, id, images.UpdateOpts{
		images.UpdateImageProperty{Op: images.RemoveOp, Name: name}}).Extract()
	return wrap(err, "remove property %s of image %s", name, id)
}

// DeleteImage deletes image id; a missing image is deleted.
func (g *Glance) DeleteImage(ctx context.Context, id string) error {
	err := images.Delete(ctx, g.sc, id).ExtractErr()
	if statusOf(err) == 404 {
		return nil
	}
	return wrap(err, "delete image %s", id)
}

// WaitImage waits until image id is active. Glance's failure statuses
// are "killed" and "deleted", not error*.
func (g *Glance) WaitImage(ctx context.Context, id string) (*Image, error) {
	var im *Image
	err := g.wait.poll(ctx, "image "+id, "become active", func(ctx context.Context) (string, bool, error) {
		got, err := images.Get(ctx, g.sc, id).Extract()
		if err != nil {
			return "", false, wrap(err, "image %s", id)
		}
		im = got
		switch s := string(got.Status); s {
		case "killed", "deleted", "pending_delete":
			return "", false, fmt.Errorf("image %s went to status %s while waiting for it to become active: %w", id, s, ErrFailed)
		default:
			return s, s == "active", nil
		}
	})
	return im, err
}

// RBDLocation is where Glance's RBD store keeps an image:
// rbd://FSID/POOL/IMAGE/SNAP.
type RBDLocation struct{ FSID, Pool, Image, Snap string }

// ParseRBDLocation parses an rbd:// location of Glance's RBD store.
func ParseRBDLocation(u string) (RBDLocation, bool) {
	rest, ok := strings.CutPrefix(u, "rbd://")
	if !ok {
		return RBDLocation{}, false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 4 {
		return RBDLocation{}, false
	}
	for _, p := range parts {
		if p == "" || strings.ContainsAny(p, "@ \t\n") {
			return RBDLocation{}, false
		}
	}
	return RBDLocation{FSID: parts[0], Pool: parts[1], Image: parts[2], Snap: parts[3]}, true
}

// ImageRBDLocation returns the RBD location of im from direct_url or
// locations (Glance shows them when show_image_direct_url or
// show_multiple_locations is set), if one is rbd://.
func ImageRBDLocation(im *Image) (RBDLocation, bool) {
	if s, ok := im.Properties["direct_url"].(string); ok {
		if l, ok := ParseRBDLocation(s); ok {
			return l, true
		}
	}
	if ls, ok := im.Properties["locations"].([]any); ok {
		for _, l := range ls {
			m, _ := l.(map[string]any)
			if s, ok := m["url"].(string); ok {
				if l, ok := ParseRBDLocation(s); ok {
					return l, true
				}
			}
		}
	}
	return RBDLocation{}, false
}

// SetProtected sets image id's protected flag.
func (g *Glance) SetProtected(ctx context.Context, id string, protected bool) error {
	_, err := images.Update(ctx, g.sc, id, images.UpdateOpts{images.ReplaceImageProtected{NewProtected: protected}}).Extract()
	return wrap(err, "set protected=%v on image %s", protected, id)
}
