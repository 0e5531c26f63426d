package openstack

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/gophercloud/gophercloud/v2"
)

// Attachment is a volume attachment and the connection it describes.
type Attachment struct {
	ID       string `json:"id"`
	VolumeID string `json:"volume_id"`
	Status   string `json:"status"`
	// Instance is the Nova server of the attachment; "" for attachments
	// like cairn's, made with a connector only.
	Instance string `json:"instance"`
	// ConnectionInfo is what a host needs to reach the volume; for RBD
	// driver_volume_type "rbd" and data.name "POOL/IMAGE".
	ConnectionInfo map[string]any `json:"connection_info"`
}

// RBDImage returns the "POOL/IMAGE" of an RBD attachment; ok is false for
// another backend, whose driver_volume_type it returns instead.
func (a *Attachment) RBDImage() (name, driver string, ok bool) {
	ci := a.ConnectionInfo
	driver, _ = ci["driver_volume_type"].(string)
	// Cinder puts the driver's fields at the top level of an attachment's
	// connection_info and under "data" in the older connection API.
	name, _ = ci["name"].(string)
	if data, isMap := ci["data"].(map[string]any); isMap && name == "" {
		name, _ = data["name"].(string)
	}
	return name, driver, driver == "rbd" && strings.Count(name, "/") >= 1
}

// Connector describes the host that attaches (os-brick's connector
// properties). Host is what Cinder records as the attachment's host and
// what Attachments filters by.
func Connector(host string) map[string]any {
	return map[string]any{"host": host, "ip": "127.0.0.1", "platform": "x86_64", "os_type": "linux",
		"multipath": false, "do_local_attach": false}
}

// ConnectorHost is the host name cairn attaches as: "cairn-<hostname>".
func ConnectorHost() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		h = "appliance"
	}
	return "cairn-" + h
}

// attachTries bounds the attempts of Attach.
const attachTries = 4

// Attach creates an attachment of volume for connector, without an
// instance, and returns it with its connection info. The volume is
// "reserved" until Detach. When Cinder fails the create (5xx; its driver
// could not initialise the connection) it leaves a reserved attachment
// behind and refuses a repeat until that is gone: Attach deletes the
// volume's attachments without an instance and tries again, a bounded
// number of times.
func (c *Cinder) Attach(ctx context.Context, volume string, connector map[string]any, mode string) (*Attachment, error) {
	var err error
	for try := 1; ; try++ {
		var a *Attachment
		if a, err = c.attach(ctx, volume, connector, mode); err == nil || statusOf(err) < 500 || try == attachTries {
			return a, err
		}
		as, lerr := c.Attachments(ctx, volume)
		if lerr != nil {
			return nil, errors.Join(err, lerr)
		}
		for _, a := range as {
			if a.Instance == "" {
				if derr := c.Detach(ctx, a.ID); derr != nil {
					return nil, errors.Join(err, derr)
				}
			}
		}
		if _, werr := c.WaitVolume(ctx, volume, "available"); werr != nil {
			return nil, errors.Join(err, werr)
		}
		if serr := c.timing.sleep(ctx, time.Duration(try)*c.pollEvery); serr != nil {
			return nil, errors.Join(err, serr)
		}
	}
}

func (c *Cinder) attach(ctx context.Context, volume string, connector map[string]any, mode string) (*Attachment, error) {
	body := map[string]any{"attachment": map[string]any{"volume_uuid": volume, "connector": connector, "mode": mode}}
	var out struct {
		Attachment Attachment `json:"attachment"`
	}
	_, err := c.sc.Post(ctx, c.sc.ServiceURL("attachments"), body, &out, &gophercloud.RequestOpts{OkCodes: []int{200, 202}})
	if err != nil {
		return nil, wrap(err, "attach volume %s", volume)
	}
	if out.Attachment.ID == "" {
		return nil, fmt.Errorf("attach volume %s: Cinder returned no attachment ID", volume)
	}
	return &out.Attachment, nil
}

// Attachment returns one attachment with its connection info.
func (c *Cinder) Attachment(ctx context.Context, id string) (*Attachment, error) {
	var out struct {
		Attachment Attachment `json:"attachment"`
	}
	_, err := c.sc.Get(ctx, c.sc.ServiceURL("attachments", id), &out, nil)
	if err != nil {
		return nil, wrap(err, "attachment %s", id)
	}
	return &out.Attachment, nil
}

// Detach deletes an attachment; a missing one is deleted. The volume
// goes back to available (or stays in-use through its other attachments).
func (c *Cinder) Detach(ctx context.Context, id string) error {
	_, err := c.sc.Delete(ctx, c.sc.ServiceURL("attachments", id), &gophercloud.RequestOpts{OkCodes: []int{200, 202, 204}})
	if statusOf(err) == http.StatusNotFound {
		return nil
	}
	return wrap(err, "delete attachment %s", id)
}

// Attachments lists the attachments of volume, with their connection
// info.
func (c *Cinder) Attachments(ctx context.Context, volume string) ([]Attachment, error) {
	var out struct {
		Attachments []Attachment `json:"attachments"`
	}
	u := c.sc.ServiceURL("attachments", "detail") + "?volume_id=" + url.QueryEscape(volume)
	if _, err := c.sc.Get(ctx, u, &out, nil); err != nil {
		return nil, wrap(err, "list attachments of volume %s", volume)
	}
	return out.Attachments, nil
}
