package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"cairn/internal/openstack"
	"cairn/plugins"
	"cairn/plugins/cinder"
	"cairn/plugins/glance"
	"cairn/plugins/nova"
)

// adminCommands are the operator's tools for the cloud cairn protects.
func adminCommands(a *app) []*cobra.Command {
	admin := &cobra.Command{
		Use:   "admin",
		Short: "Operator tools for the OpenStack cloud cairn protects",
		Long: `admin holds the commands an operator of the cloud runs, with an admin
user's credentials from a clouds.yaml entry, to look after what cairn does
inside OpenStack rather than inside its repositories.`,
		Example: `  # what cairn left behind in the cloud, every project
  cairn admin leaks --os-cloud admin`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	var o leaksOptions
	leaks := &cobra.Command{
		Use:   "leaks",
		Short: "List what cairn left in the cloud: Cinder, Glance, Nova and Ceph objects",
		Long: `leaks lists, across every project (it needs an admin user), the objects
cairn made in the cloud that nothing needs any more:

  - snapshot: cairn snapshots (metadata cairn.managed=true) other than the
    one rotation snapshot per volume and repository that the next
    incremental diffs against, and cairn snapshots that are not available;
  - volume: volumes still carrying cairn.journal metadata (restores cut
    off before they finished), temporary volumes of the attach read path
    (metadata cairn.temporary_of), and the volumes attached to a listed
    server;
  - attachment: attachments without an instance on volumes cairn
    protects: cairn's attachments live only while it reads or writes a
    volume;
  - image: Glance images still carrying the property cairn_journal:
    image restores cut off before they finished (queued, saving, killed,
    or active with the mark left);
  - server: Nova servers still carrying cairn.journal metadata: server
    restores cut off before they finished (Nova deletes the ports it made
    for a server with it: ports are not listed);
  - rbd_group, rbd_group_snapshot: RBD groups named cairn-SERVER-RANDOM,
    and their snapshots, in the pools named by --pool: server protections
    cut off before they removed them (while one exists, Cinder cannot
    delete its volumes).

A finished restore's image or server carries no such mark and is not
listed. Each leak's reason says how to remove it.

RBD groups are read through librados (--ceph-conf, --ceph-id, --pool);
when no Ceph configuration is found at the default place, the default
pool does not exist, or cairn is built without Ceph support, the command
skips them and says so (on stderr; "skipped" with --json).

While a protection or restore runs, its objects are listed too: run it
when none runs. The appliance removes what its journal recorded at its
next start; anything listed after that can be deleted with the openstack
and rbd CLIs. It exits 1 when it lists a leak, 0 when there is none.

Credentials: --os-cloud (an entry of clouds.yaml), else $OS_CLOUD, else the
OS_* variables, as the openstack CLI reads them.`,
		Example: `  . admin-openrc.sh
  cairn admin leaks
  cairn admin leaks --all --json
  cairn admin leaks --ceph-id cinder --pool volumes --pool volumes-ssd`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.cloud == "" {
				o.cloud = a.getenv("OS_CLOUD")
			}
			o.confGiven = cmd.Flags().Changed("ceph-conf")
			o.poolsGiven = cmd.Flags().Changed("pool")
			return a.adminLeaks(cmd.Context(), o)
		},
	}
	f := leaks.Flags()
	f.StringVar(&o.cloud, "os-cloud", "", "entry of clouds.yaml to use (default $OS_CLOUD, else the OS_* variables)")
	f.BoolVar(&o.all, "all", false, "also list the rotation snapshots cairn keeps on purpose")
	f.StringVar(&o.ceph.conf, "ceph-conf", "", "Ceph configuration file, to look for RBD groups (default $CEPH_CONF or /etc/ceph/ceph.conf)")
	f.StringVar(&o.ceph.id, "ceph-id", "", "Ceph client ID, e.g. cinder (default admin; $CEPH_ARGS also applies)")
	f.StringVar(&o.ceph.keyring, "keyring", "", "Ceph keyring file (default: from the Ceph configuration)")
	f.StringArrayVar(&o.pools, "pool", []string{defaultLeakPool},
		"Ceph pool of Cinder's volumes (Cinder's rbd_pool) to look for RBD groups in; repeat for each RBD backend")
	admin.AddCommand(leaks)
	return []*cobra.Command{admin}
}

// defaultLeakPool is where most deployments keep Cinder's volumes
// (Cinder's rbd_pool); a protection makes its RBD group in the pool of
// the server's first volume.
const defaultLeakPool = "volumes"

// leaksOptions are the flags of `cairn admin leaks`.
type leaksOptions struct {
	cloud      string
	all        bool
	ceph       cephFlags
	confGiven  bool
	pools      []string
	poolsGiven bool
}

type leaksJSON struct {
	Leaks []plugins.Leak `json:"leaks"`
	Kept  []cinder.Kept  `json:"kept,omitempty"`
	// Skipped says what was not looked at, and why.
	Skipped []string `json:"skipped,omitempty"`
}

func (a *app) adminLeaks(ctx context.Context, o leaksOptions) error {
	cl, err := openstack.New(openstack.Config{Cloud: o.cloud, FromEnv: o.cloud == ""})
	if err != nil {
		return usageError{err}
	}
	c, err := cl.Cinder(ctx, "")
	if err != nil {
		return err
	}
	inv, err := c.Inventory(ctx)
	if err != nil {
		return err
	}
	n, err := cl.Nova(ctx, "")
	if err != nil {
		return err
	}
	servers, err := n.AllServers(ctx)
	if err != nil {
		return err
	}
	g, err := cl.Glance(ctx, "")
	if err != nil {
		return err
	}
	images, err := g.AllImages(ctx)
	if err != nil {
		return err
	}
	groups, skipped, err := a.rbdGroups(ctx, o)
	if err != nil {
		return err
	}
	cinderLeaks, kept := cinder.Leaks(inv)
	leaks := plugins.MergeLeaks(cinderLeaks, glance.Leaks(images), nova.ServerLeaks(servers), nova.GroupLeaks(groups, inv.Volumes))
	if !o.all {
		kept = nil
	}
	for _, s := range skipped {
		fmt.Fprintln(a.stderr, "cairn: skipped "+s)
	}
	if a.jsonOut {
		if leaks == nil {
			leaks = []plugins.Leak{}
		}
		if err := writeJSON(a.stdout, leaksJSON{Leaks: leaks, Kept: kept, Skipped: skipped}); err != nil {
			return err
		}
	} else {
		t := newTable(a.stdout)
		if len(leaks) > 0 {
			fmt.Fprintln(t, "KIND\tID\tVOLUME\tPROJECT\tSTATUS\tREASON")
			for _, l := range leaks {
				fmt.Fprintf(t, "%s\t%s\t%s\t%s\t%s\t%s\n", l.Kind, l.ID, l.Volume, l.Project, l.Status, l.Reason)
			}
		}
		if len(kept) > 0 {
			fmt.Fprintln(t, "KEPT SNAPSHOT\tVOLUME\tREPOSITORY")
			for _, k := range kept {
				fmt.Fprintf(t, "%s\t%s\t%s\n", k.ID, k.Volume, k.Repository)
			}
		}
		if err := t.Flush(); err != nil {
			return err
		}
		if len(leaks) == 0 && !a.quiet {
			fmt.Fprintf(a.stdout, "no leaks: %d volumes, %d snapshots, %d attachments, %d images, %d servers, %d RBD groups looked at\n",
				len(inv.Volumes), len(inv.Snapshots), len(inv.Attachments), len(images), len(servers), len(groups))
		}
	}
	if len(leaks) > 0 {
		return fmt.Errorf("%d objects of cairn's left in the cloud: restart the appliance (its start removes what its journal recorded), or remove them as each reason says", len(leaks))
	}
	return nil
}
