package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"cairn/dedup"
)

// This file holds the flags and commands of repositories on RADOS. They
// exist in every build; the work is in rados_ceph.go (build tag "ceph"),
// and rados_noceph.go answers in builds without it.

// radosFlags choose the RADOS pools of a repository and how to reach them.
type radosFlags struct {
	pools             []string
	namespace         string
	conf, id, keyring string
	flags             *pflag.FlagSet // where they are registered
}

func (r *radosFlags) register(f *pflag.FlagSet, poolsUsage string) {
	r.flags = f
	f.StringSliceVar(&r.pools, "rados", nil, poolsUsage)
	f.StringVar(&r.namespace, "rados-namespace", "", "RADOS namespace inside the pools (default: none)")
	f.StringVar(&r.conf, "ceph-conf", "", "Ceph configuration file (default $CEPH_CONF or /etc/ceph/ceph.conf), recorded in DIR/cairn.json")
	f.StringVar(&r.id, "ceph-id", "", "Ceph client ID (default admin), recorded in DIR/cairn.json")
	f.StringVar(&r.keyring, "keyring", "", "Ceph keyring file (default: from the Ceph configuration), recorded in DIR/cairn.json")
}

// set reports whether --rados was given.
func (r *radosFlags) set() bool { return len(r.pools) > 0 }

// checkOnlyWithRados rejects the Ceph flags without --rados.
func (r *radosFlags) checkOnlyWithRados() error {
	if r.set() {
		return nil
	}
	for _, name := range []string{"rados-namespace", "ceph-conf", "ceph-id", "keyring"} {
		if r.flags.Changed(name) {
			return usagef("--%s applies only with --rados", name)
		}
	}
	return nil
}

// checkInit validates the RADOS flags of repo init.
func (r *radosFlags) checkInit(o dedup.InitOptions, shardDirs bool) error {
	if err := r.checkOnlyWithRados(); err != nil || !r.set() {
		return err
	}
	if shardDirs {
		return usagef("--shard-dirs and --rados exclude each other")
	}
	n := o.DataShards + o.ParityShards
	if len(r.pools) != 1 && len(r.pools) != n {
		return usagef("--rados names %d pools; give one pool for all shards or exactly %d (data + parity shards)", len(r.pools), n)
	}
	for _, p := range r.pools {
		if strings.TrimSpace(p) == "" {
			return usagef("--rados: empty pool name")
		}
	}
	// RADOS refuses a write above osd_max_write_size (90 MB by default),
	// and a shard is written whole.
	if shard := (int64(o.PackSize) + int64(o.DataShards) - 1) / int64(o.DataShards); shard > 64<<20 {
		return usagef("--pack-size %s over %d data shards makes %s shards; RADOS writes are capped at osd_max_write_size (90 MB by default): use a --pack-size of at most %s",
			formatSize(int64(o.PackSize)), o.DataShards, formatSize(shard), formatSize(int64(o.DataShards)*64<<20))
	}
	return nil
}

// replicationWarning is the warning for a pool that already keeps several
// copies (or EC shards) under cairn's own k+m shards.
func replicationWarning(pool string, size, k, m int) string {
	if size <= 1 || k+m <= 1 {
		return ""
	}
	factor := float64(size) * float64(k+m) / float64(k)
	return fmt.Sprintf("warning: pool %s keeps %d copies of every object and cairn adds %d+%d Reed-Solomon shards on top: "+
		"two redundancy layers multiply capacity: each byte backed up takes %.1f bytes of raw capacity. "+
		"Use size-1 pools in distinct failure domains, or --data-shards 1 --parity-shards 0 on a replicated pool (docs/ceph.md)",
		pool, size, k, m, factor)
}

func newRepoConnectCmd(a *app) *cobra.Command {
	var rf radosFlags
	cmd := &cobra.Command{
		Use:   "connect --rados POOL[,POOL...] [DIR]",
		Short: "Make DIR a local handle on an existing repository in RADOS",
		Long: `Create the local part of a repository that lives in RADOS: DIR/cairn.json
(where the shards are) and DIR/index (the local index, rebuilt by reading
every pack header from the pools). The repository's configuration is read
from RADOS, so nothing but the pools (and the Ceph settings) is needed: a
lost appliance, or a second one, is connected this way. DIR defaults to
--repo or $CAIRN_REPO and must not hold a repository yet.

Several directories, on one host or several, may connect to the same
repository and back up into it at once (see docs/ceph.md).`,
		Example: `  cairn repo connect --rados cairn-backup /var/lib/cairn/repo
  cairn repo connect --rados p0,p1,p2,p3,p4,p5 --ceph-conf /etc/ceph/ceph.conf --ceph-id cairn /srv/repo`,
		Args: usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !rf.set() {
				return usagef("repo connect needs --rados POOL[,POOL...]")
			}
			var dir string
			var err error
			if len(args) == 1 {
				dir = args[0]
			} else if dir, err = a.repoDir(); err != nil {
				return err
			}
			pw, err := a.passphrase()
			if err != nil {
				return err
			}
			return a.connectRados(cmd.Context(), dir, &rf, a.options(pw, withIndex))
		},
	}
	rf.register(cmd.Flags(), "comma-separated RADOS pools of the repository, as given to repo init")
	return cmd
}
