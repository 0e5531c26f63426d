package main

import (
	"github.com/spf13/pflag"

	"cairn/backup"
)

// This file holds the flags of the Ceph RBD features. They exist in every
// build, so that help and usage errors do not depend on build tags; the
// work is in rbd_*.go files built with the "ceph" tag, and rbd_stub.go
// answers in builds without it.

// cephFlags say how to reach the Ceph cluster.
type cephFlags struct {
	conf, id, keyring string
}

func (c *cephFlags) register(f *pflag.FlagSet) {
	f.StringVar(&c.conf, "ceph-conf", "", "Ceph configuration file for rbd: sources and targets (default $CEPH_CONF or /etc/ceph/ceph.conf)")
	f.StringVar(&c.id, "ceph-id", "", "Ceph client ID, e.g. cinder-backup (default admin; $CEPH_ARGS also applies)")
	f.StringVar(&c.keyring, "keyring", "", "Ceph keyring file (default: from the Ceph configuration)")
}

// rbdBackupFlags are the backup flags that only rbd: sources use.
type rbdBackupFlags struct {
	ceph         cephFlags
	verifySample float64
	fullEvery    int
	baseSnap     string
	workers      int
}

// rbdOnlyFlags are rejected with a file source.
var rbdOnlyFlags = []string{"ceph-conf", "ceph-id", "keyring", "verify-sample", "full-every", "base-snap"}

func (o *rbdBackupFlags) register(f *pflag.FlagSet) {
	o.ceph.register(f)
	f.Float64Var(&o.verifySample, "verify-sample", backup.DefaultVerifySample,
		"rbd: fraction of the blocks the RBD diff calls unchanged to re-read and compare with the parent (at least one block; 0 disables)")
	f.IntVar(&o.fullEvery, "full-every", 0,
		"rbd: read the whole image on every Nth backup instead of trusting the diff (0: never)")
	f.StringVar(&o.baseSnap, "base-snap", "",
		"rbd: older snapshot of the same image to diff against (the checkpoint of that snapshot is the parent)")
	f.IntVar(&o.workers, "read-workers", 0,
		"concurrent block reads, hashes and compressions (default: 8 for rbd:, the CPU count for files)")
}

// checkFileSource rejects RBD-only flags given with a file source.
func (o *rbdBackupFlags) checkFileSource(f *pflag.FlagSet) error {
	for _, name := range rbdOnlyFlags {
		if f.Changed(name) {
			return usagef("--%s applies only to rbd: sources", name)
		}
	}
	return nil
}

// rbdBackupRequest is one `cairn backup --source rbd:...`.
type rbdBackupRequest struct {
	source string
	parent string
	full   bool
	tags   map[string]string
	flags  *rbdBackupFlags
}

// verifySourceFlags are the flags of `cairn verify --against-source`.
type verifySourceFlags struct {
	checkpoint string
	ceph       cephFlags
}

func (v *verifySourceFlags) register(f *pflag.FlagSet) {
	f.StringVar(&v.checkpoint, "against-source", "",
		"compare every block of CHECKPOINT with the RBD snapshot it was made from; a mismatch marks it as a bad base")
	v.ceph.register(f)
}
