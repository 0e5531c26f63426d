package glance

import (
	"context"
	"time"
)

// Entry records an image a restore is about to create, before it does.
type Entry struct {
	ID      string `json:"id"`
	Project string `json:"project"`
	// Name is the new image's name; ImageID the backed-up image.
	Name    string    `json:"name"`
	ImageID string    `json:"image_id"`
	Created time.Time `json:"created"`
}

// Journal keeps the entries durably (the appliance keeps them in its
// state database, kind "glance_journal").
//
// Contract: Record is durable when it returns nil; Record of an existing
// ID replaces it; Forget of a missing ID succeeds; Entries returns the
// project's entries.
type Journal interface {
	Record(ctx context.Context, e Entry) error
	Forget(ctx context.Context, id string) error
	Entries(ctx context.Context, project string) ([]Entry, error)
}
