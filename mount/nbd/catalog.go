package nbd

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"cairn/dedup"
)

// Repository is what a CheckpointCatalog needs from a cairn repository
// (*dedup.Repository satisfies it).
type Repository interface {
	Checkpoints(ctx context.Context) ([]*dedup.Checkpoint, error)
	OpenCheckpoint(ctx context.Context, id string) (*dedup.Reader, error)
}

// CatalogOptions choose how checkpoints are exported.
type CatalogOptions struct {
	// Writable gives each export a copy-on-write overlay in OverlayDir.
	Writable   bool
	OverlayDir string
	// Secret, when set, makes every export reachable only as
	// "<Secret>/<name>" and hides the list.
	Secret string
	// Refresh is how long a listing of checkpoints is reused before a
	// name that does not resolve makes the catalog list again
	// (default 2 s).
	Refresh time.Duration
}

// CheckpointCatalog exports the checkpoints of a repository. A checkpoint
// answers to its full ID, a unique prefix of it, and "<source>/<ID or
// prefix>". Opened checkpoints (and overlays) stay open until Close.
type CheckpointCatalog struct {
	repo Repository
	o    CatalogOptions

	mu     sync.Mutex
	cps    []*dedup.Checkpoint
	listed time.Time
	open   map[string]*Export // by checkpoint ID
	closer []func() error
}

var _ Catalog = (*CheckpointCatalog)(nil)

// NewCheckpointCatalog returns a catalog of repo's checkpoints.
func NewCheckpointCatalog(repo Repository, o CatalogOptions) (*CheckpointCatalog, error) {
	if o.Writable && o.OverlayDir == "" {
		return nil, errors.New("a writable catalog needs an overlay directory")
	}
	if strings.Contains(o.Secret, "/") {
		return nil, errors.New("the export secret must not contain '/'")
	}
	if o.Refresh <= 0 {
		o.Refresh = 2 * time.Second
	}
	return &CheckpointCatalog{repo: repo, o: o, open: map[string]*Export{}}, nil
}

// checkpoints lists the repository's checkpoints, reusing a listing
// younger than the refresh interval unless fresh.
func (c *CheckpointCatalog) checkpoints(ctx context.Context, fresh bool) ([]*dedup.Checkpoint, error) {
	if c.cps != nil && !fresh && time.Since(c.listed) < c.o.Refresh {
		return c.cps, nil
	}
	cps, err := c.repo.Checkpoints(ctx)
	if err != nil {
		return nil, fmt.Errorf("list checkpoints: %w", err)
	}
	c.cps, c.listed = cps, time.Now()
	return cps, nil
}

// Describe is the description an export of cp carries.
func Describe(cp *dedup.Checkpoint) string {
	return fmt.Sprintf("%s, %s, %d bytes", cp.Source, cp.CreatedAt.UTC().Format(time.RFC3339), cp.Size)
}

// List lists every checkpoint by ID, or nothing when a secret is set.
func (c *CheckpointCatalog) List(ctx context.Context) ([]ExportInfo, error) {
	if c.o.Secret != "" {
		return nil, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	cps, err := c.checkpoints(ctx, true)
	if err != nil {
		return nil, err
	}
	out := make([]ExportInfo, len(cps))
	for i, cp := range cps {
		out[i] = ExportInfo{Name: cp.ID, Description: Describe(cp)}
	}
	return out, nil
}

// Lookup resolves name and opens its checkpoint (and overlay) on first use.
func (c *CheckpointCatalog) Lookup(ctx context.Context, name string) (*Export, error) {
	rest := name
	if c.o.Secret != "" {
		s, r, ok := strings.Cut(name, "/")
		if !ok || subtle.ConstantTimeCompare([]byte(s), []byte(c.o.Secret)) != 1 {
			return nil, ErrUnknownExport
		}
		rest = r
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	cps, err := c.checkpoints(ctx, false)
	if err != nil {
		return nil, err
	}
	cp := match(cps, rest)
	if cp == nil && time.Since(c.listed) > 100*time.Millisecond {
		if cps, err = c.checkpoints(ctx, true); err != nil {
			return nil, err
		}
		cp = match(cps, rest)
	}
	if cp == nil {
		return nil, fmt.Errorf("%q: %w", rest, ErrUnknownExport)
	}
	if exp, ok := c.open[cp.ID]; ok {
		return exp, nil
	}
	rd, err := c.repo.OpenCheckpoint(ctx, cp.ID)
	if err != nil {
		return nil, fmt.Errorf("open checkpoint %s: %w", cp.ID, err)
	}
	dev := VolumeDevice(rd)
	if c.o.Writable {
		ov, err := OpenOverlay(c.o.OverlayDir, cp.ID, dev)
		if err != nil {
			return nil, err
		}
		c.closer = append(c.closer, ov.Close)
		dev = ov
	}
	exportName := cp.ID
	if c.o.Secret != "" {
		exportName = c.o.Secret + "/" + cp.ID
	}
	exp := &Export{Name: exportName, Description: Describe(cp), Device: dev}
	c.open[cp.ID] = exp
	// The first client is connecting: its first reads of each pack go
	// faster with the pack's headers already read (Reader.WarmHeaders).
	warm, stop := context.WithCancel(context.Background())
	go rd.WarmHeaders(warm)
	c.closer = append(c.closer, func() error { stop(); return nil })
	return exp, nil
}

// match finds the one checkpoint name denotes: its ID, a unique ID
// prefix, or "<source>/<ID or unique prefix>".
func match(cps []*dedup.Checkpoint, name string) *dedup.Checkpoint {
	if name == "" {
		return nil
	}
	for _, cp := range cps {
		if cp.ID == name {
			return cp
		}
	}
	source, prefix, scoped := "", name, false
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		source, prefix, scoped = name[:i], name[i+1:], true
	}
	if prefix == "" {
		return nil
	}
	var found *dedup.Checkpoint
	for _, cp := range cps {
		if (scoped && cp.Source != source) || !strings.HasPrefix(cp.ID, prefix) {
			continue
		}
		if found != nil {
			return nil // ambiguous
		}
		found = cp
	}
	return found
}

// Close flushes and closes the overlays opened so far.
func (c *CheckpointCatalog) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for _, f := range c.closer {
		errs = append(errs, f())
	}
	c.closer, c.open = nil, map[string]*Export{}
	return errors.Join(errs...)
}
