package main

import (
	"context"
	"fmt"
	"os/user"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"cairn/dedup"
	"cairn/mount/files"
	"cairn/mount/fusefs"
)

// mountCommands returns the FUSE mount and file-level restore commands.
func mountCommands(a *app) []*cobra.Command {
	return []*cobra.Command{newMountCmd(a), newFilesCmd(a)}
}

func newMountCmd(a *app) *cobra.Command {
	var (
		allowOther string
		debug      bool
	)
	cmd := &cobra.Command{
		Use:   "mount MOUNTPOINT",
		Short: "Mount the repository's checkpoints read-only with FUSE",
		Long: `Mount the checkpoints of the repository read-only on MOUNTPOINT, an
existing directory, and serve them until interrupted (Ctrl-C, SIGTERM) or
unmounted with 'fusermount3 -u MOUNTPOINT'; either way cairn unmounts
cleanly and exits 0. The repository's index is not needed, so backups may
run meanwhile.

  MOUNTPOINT/<source>/<created UTC>_<short id>/disk.raw    the whole volume
  MOUNTPOINT/<source>/<created UTC>_<short id>/part1.raw   each partition
  MOUNTPOINT/<source>/<created UTC>_<short id>/info.json   metadata
  MOUNTPOINT/<source>/latest                               newest checkpoint
  MOUNTPOINT/by-id/<checkpoint id>                         by full ID

<source> is the source path with the leading '/' dropped and '/' replaced
by '_'. New checkpoints appear when a directory is listed. Files inside a
partition are reached by loop-mounting it read-only, e.g.
  mount -o loop,ro,noload MOUNTPOINT/<source>/latest/part1.raw /mnt/x
or with 'cairn files'. See docs/mount.md.

Files are 0400 and directories 0500, and only the user who mounted gets
in. --allow-other GROUP lets the members of GROUP (a name or a number) read
the tree too: files become 0440 and directories 0550, of group GROUP. A
volume image holds everything the volume did, so access goes to one named
group, never to every user.`,
		Example: `  cairn mount /mnt/cairn &
  ls /mnt/cairn/var_lib_vm1.img/
  sha256sum /mnt/cairn/var_lib_vm1.img/latest/disk.raw
  fusermount3 -u /mnt/cairn`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			o := fusefs.Options{Log: a.notef, Debug: debug}
			if cmd.Flags().Changed("allow-other") {
				gid, err := lookupGroup(allowOther)
				if err != nil {
					return err
				}
				o.AllowOther, o.GID = true, gid
			}
			return a.withRepo(ctx, readOnly, func(r *dedup.Repository) error {
				srv, err := fusefs.Mount(ctx, r, args[0], o)
				if err != nil {
					return err
				}
				if a.jsonOut {
					if err := writeJSON(a.stdout, map[string]string{"mountpoint": srv.Dir(), "repository": r.Dir()}); err != nil {
						a.notef("%v", err)
					}
				}
				a.notef("mounted %s on %s; Ctrl-C or `fusermount3 -u %s` unmounts", r.Dir(), srv.Dir(), srv.Dir())
				if err := serveMount(ctx, srv, a.notef); err != nil {
					return err
				}
				a.notef("unmounted %s", srv.Dir())
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&allowOther, "allow-other", "", "let the members of `GROUP` (name or number) read the mount: files 0440, directories 0550")
	f.BoolVar(&debug, "debug", false, "log every FUSE request on stderr")
	_ = f.MarkHidden("debug")
	return cmd
}

// lookupGroup resolves --allow-other's GROUP, a group name or a number.
func lookupGroup(s string) (uint32, error) {
	if s == "" {
		return 0, usagef("--allow-other needs a GROUP whose members may read the mount")
	}
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		return uint32(n), nil
	}
	g, err := user.LookupGroup(s)
	if err != nil {
		return 0, usagef("--allow-other %s: %v (name an existing group, or give a number)", s, err)
	}
	n, err := strconv.ParseUint(g.Gid, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("group %s has a non-numeric ID %q", s, g.Gid)
	}
	return uint32(n), nil
}

// serveMount returns when srv has been unmounted: from outside
// (fusermount3 -u), or by serveMount itself once ctx ends (SIGINT, SIGTERM).
func serveMount(ctx context.Context, srv *fusefs.Server, notef func(string, ...any)) error {
	done := make(chan struct{})
	go func() {
		srv.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	return files.StopMount(srv, done, 10*time.Second, notef)
}
