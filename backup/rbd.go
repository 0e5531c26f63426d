//go:build ceph

package backup

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"time"

	"cairn/blockdev/rbd"
	"cairn/dedup"
)

var (
	_ Target        = (*rbd.Target)(nil)
	_ networkTarget = (*rbd.Target)(nil)
	_ freshTarget   = (*rbd.Target)(nil)
)

// Image is an RBD image as a Source: read through librbd at the
// snapshots its Snapshotter takes. ImageSnapshots takes them with librbd;
// a Cinder volume on RBD is the same Image with a Snapshotter that takes
// them through the Cinder API.
type Image struct {
	cl    *rbd.Cluster
	head  *rbd.Image
	snaps Snapshotter
	// atName, when set, is read at snapshot ID atID instead (At).
	atName string
	atID   uint64
}

var (
	_ Source      = (*Image)(nil)
	_ Differ      = imageReader{}
	_ Tagger      = imageReader{}
	_ Snapshotter = imageSnapshots{}
)

// NewImage returns the Source of the image head (opened on cl) whose
// snapshots snaps takes and removes.
func NewImage(cl *rbd.Cluster, head *rbd.Image, snaps Snapshotter) *Image {
	return &Image{cl: cl, head: head, snaps: snaps}
}

// Name is the image's spec without a snapshot.
func (i *Image) Name() string { return i.head.Spec().ImageName() }

// Snapshots implements Source.
func (i *Image) Snapshots() Snapshotter { return i.snaps }

// At returns the source that reads snapshot name's data at the snapshot
// of ID id instead: a snapshot of a consistent group (rbd.GroupSnapshot)
// taken after snapshot name. Diffs still start from the parent's
// snapshot, and the checkpoint records name as its snapshot, so the
// next backup diffs from name: a superset of what changed since id.
func (i *Image) At(name string, id uint64) *Image {
	c := *i
	c.atName, c.atID = name, id
	return &c
}

// Open implements Source: the image at snapshot snap, read-only.
func (i *Image) Open(ctx context.Context, snap string) (Reader, error) {
	if snap != "" && snap == i.atName {
		src, err := i.cl.OpenSourceAt(ctx, i.head.Spec().WithSnap(snap), i.atID)
		if err != nil {
			return nil, err
		}
		return imageReader{src}, nil
	}
	src, err := i.cl.OpenSource(ctx, i.head.Spec().WithSnap(snap))
	if err != nil {
		return nil, err
	}
	return imageReader{src}, nil
}

type imageReader struct{ *rbd.Source }

// DiffMode implements Differ: with fast-diff the object map answers in
// whole objects.
func (r imageReader) DiffMode() string {
	if r.FastDiff() {
		return "whole-object (fast-diff)"
	}
	return "exact"
}

// Tags implements Tagger.
func (r imageReader) Tags() map[string]string {
	s := r.Spec()
	t := map[string]string{rbd.TagPool: s.Pool, rbd.TagImage: s.Image}
	if s.Namespace != "" {
		t[rbd.TagNamespace] = s.Namespace
	}
	return t
}

// ImageSnapshots returns the Snapshotter of librbd snapshots of head that
// the repository with ID repoID manages ("cairn-<repo>-<time>-<random>").
func ImageSnapshots(head *rbd.Image, repoID string) Snapshotter {
	return imageSnapshots{head: head, repoID: repoID}
}

type imageSnapshots struct {
	head   *rbd.Image
	repoID string
}

func (s imageSnapshots) DeviceID() string { return s.head.ID() }

func (s imageSnapshots) List(ctx context.Context) ([]Snap, error) {
	snaps, err := s.head.Snapshots(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Snap, len(snaps))
	for i, sn := range snaps {
		out[i] = Snap{ID: sn.ID, Name: sn.Name}
	}
	return out, nil
}

func (s imageSnapshots) Create(ctx context.Context) (Snap, error) {
	name := rbd.SnapName(s.repoID, time.Now(), randomSuffix())
	info, err := s.head.CreateSnapshot(ctx, name)
	if err != nil {
		// The snapshot may exist even though its creation failed.
		if rerr := s.head.RemoveSnapshot(context.WithoutCancel(ctx), name); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return Snap{}, err
	}
	return Snap{ID: info.ID, Name: info.Name}, nil
}

func (s imageSnapshots) Remove(ctx context.Context, name string) error {
	return s.head.RemoveSnapshot(ctx, name)
}

func (s imageSnapshots) Managed(name string) bool { return rbd.IsManaged(s.repoID, name) }

func randomSuffix() string {
	var b [4]byte
	_, _ = crand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// CompareWithSnapshot reads every block of the snapshot checkpoint cp was
// made from and compares it with the checkpoint (bm is its block map). It
// returns the snapshot and the numbers of the blocks that differ. A
// snapshot that is gone, or was replaced, is an error wrapping
// rbd.ErrNotFound: there is nothing to compare with.
func CompareWithSnapshot(ctx context.Context, cl *rbd.Cluster, r *dedup.Repository, cp *dedup.Checkpoint, bm *dedup.BlockMap, rep Reporter) (rbd.Spec, []int64, error) {
	spec, err := cl.CheckSnapshot(ctx, cp.ID, cp.Tags)
	if err != nil {
		return spec, nil, err
	}
	src, err := cl.OpenSource(ctx, spec)
	if err != nil {
		return spec, nil, err
	}
	defer src.Close()
	all := make([]int64, bm.Blocks)
	for i := range all {
		all[i] = int64(i)
	}
	bad, err := Compare(ctx, r, rep, "verify source", cp, bm, src, all, DefaultWorkers)
	return spec, bad, err
}
