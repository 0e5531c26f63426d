package plugins

import (
	"context"
	"fmt"
	"sort"

	"cairn/dedup"
)

// Resource is one protectable instance, in Karbor's shape.
type Resource struct {
	ID        string         `json:"id"`
	Type      string         `json:"type"`
	Name      string         `json:"name"`
	ExtraInfo map[string]any `json:"extra_info,omitempty"`
}

// Schemas are the JSON schemas a plugin publishes through the provider:
// options for protect, parameters for restore, and what it saves.
type Schemas struct {
	Options    map[string]any
	Restore    map[string]any
	SavingInfo map[string]any
}

// ProtectRequest is one resource to protect.
type ProtectRequest struct {
	// Project owns the resource and the checkpoint.
	Project  string
	Resource Resource
	// Options are the plan's parameters for this resource (may be nil).
	Options map[string]any
	// Tags MUST be recorded on every repository checkpoint the plugin
	// creates; they link it to the API checkpoint (crash clean-up finds
	// orphans by them).
	Tags map[string]string
	// Previous is the repository checkpoint of this resource's latest
	// available API checkpoint in the same project, or "" for the first.
	// Plugins back up incrementally against it; looking it up here instead
	// of listing the repository keeps a protection's cost independent of
	// how many checkpoints exist.
	Previous string
	// Progress, if set, is called now and then while the resource's data
	// is read: done of total bytes (total may grow for sources whose size
	// is learnt as they go). It MUST return at once; it runs on the
	// plugin's goroutine.
	Progress func(done, total int64)
}

// Backup is what protecting one resource produced.
type Backup struct {
	// ID is the repository checkpoint holding the resource's data.
	ID    string
	Stats dedup.Stats
	Size  int64
}

// RestoreRequest restores one resource from its backup.
type RestoreRequest struct {
	// Project owns the checkpoint; the target must be the project's.
	Project  string
	Resource Resource
	BackupID string
	// Target is where to restore (a path for files); empty means the
	// plugin's default location.
	Target     string
	Parameters map[string]any
	// Progress, if set, is called now and then while the backup is
	// written: done of total bytes, as ProtectRequest.Progress.
	Progress func(done, total int64)
}

// ProtectionPlugin protects one protectable type. Implementations MUST be
// safe for concurrent use. Every method takes ctx first and returns when it
// is cancelled; a cancelled Protect MUST leave no committed checkpoint
// behind (or return its ID with the error so the caller deletes it).
//
//   - Protect is not idempotent: each call makes a new backup.
//   - Restore MUST write the resource byte-exactly or fail; it MUST NOT
//     leave a partial result at the final target (write aside, rename).
//   - Delete is idempotent: deleting a missing backup succeeds.
//   - Verify reads the whole backup and reports damage as an error.
//
// Errors wrapping ErrInvalidParameter or ErrInstanceNotFound are the
// caller's mistake; all others are failures of the operation.
type ProtectionPlugin interface {
	// Type is the protectable type served, e.g. "OS::Cairn::File".
	Type() string
	// Dependencies lists the types whose instances this type's instances
	// depend on (protected first); empty for leaf resources.
	Dependencies() []string
	Schemas() Schemas
	// Instances lists the instances project may protect. A project MUST
	// NOT see, protect or restore over another project's instances.
	Instances(ctx context.Context, project string) ([]Resource, error)
	// Instance returns one of project's instances or ErrInstanceNotFound.
	Instance(ctx context.Context, project, id string) (Resource, error)
	Protect(ctx context.Context, repo *dedup.Repository, req ProtectRequest) (*Backup, error)
	// Restore returns where the resource was restored.
	Restore(ctx context.Context, repo *dedup.Repository, req RestoreRequest) (string, error)
	Delete(ctx context.Context, repo *dedup.Repository, backupID string) error
	Verify(ctx context.Context, repo *dedup.Repository, backupID string) error
}

// Registry maps protectable types to plugins. Build it once at start-up
// (Register), then only read it.
type Registry struct {
	byType map[string]ProtectionPlugin
}

// NewRegistry returns a registry holding ps.
func NewRegistry(ps ...ProtectionPlugin) (*Registry, error) {
	r := &Registry{byType: map[string]ProtectionPlugin{}}
	for _, p := range ps {
		if _, dup := r.byType[p.Type()]; dup {
			return nil, fmt.Errorf("plugin for %s registered twice", p.Type())
		}
		r.byType[p.Type()] = p
	}
	return r, nil
}

// Get returns the plugin for typ or ErrUnknownType.
func (r *Registry) Get(typ string) (ProtectionPlugin, error) {
	p, ok := r.byType[typ]
	if !ok {
		return nil, fmt.Errorf("%q: %w", typ, ErrUnknownType)
	}
	return p, nil
}

// Types lists the registered types, sorted.
func (r *Registry) Types() []string {
	ts := make([]string, 0, len(r.byType))
	for t := range r.byType {
		ts = append(ts, t)
	}
	sort.Strings(ts)
	return ts
}
