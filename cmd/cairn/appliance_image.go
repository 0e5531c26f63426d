package main

import (
	"fmt"
	"log/slog"
	"os/user"
	"strconv"

	"github.com/spf13/cobra"

	"cairn/image"
)

// imageCommands are the commands the appliance image runs on itself.
func imageCommands(a *app) []*cobra.Command {
	g := &cobra.Command{
		Use:   "appliance",
		Short: "Steps of the cairn appliance image (docs/appliance.md)",
		Long: `Commands the appliance image (make image) runs on itself at boot. They
expect the image's layout: /etc/cairn, the cairn user, /var/lib/cairn.`,
		Example: `  cairn appliance configure`,
		Args:    cobra.ArbitraryArgs,
		RunE:    groupRunE,
	}
	g.AddCommand(newConfigureCmd(a))
	return []*cobra.Command{g}
}

func newConfigureCmd(a *app) *cobra.Command {
	var o image.Options
	var owner string
	cmd := &cobra.Command{
		Use:   "configure",
		Short: "Read the cloud's configuration and write /etc/cairn (run at boot, as root)",
		Long: `Read the configuration the cloud gives this server (a config drive labelled
config-2, a NoCloud drive labelled cidata, or the metadata service), write
cairn serve's config to /etc/cairn/cairn.json and the secrets of the user
data to files of their own (0600, owned by --user), and mount the data
volume the user data names on the data directory, formatting it when blank.
When there is no usable configuration it writes a cairn.json holding the
reason, which cairn serve --stay-up reports on /healthz, and exits 1.
Nothing of the user data is logged. The image runs it before cairn serve
(cairn-configure.service).`,
		Example: `  cairn appliance configure
  cairn appliance configure --etc-dir /tmp/etc --metadata-url http://127.0.0.1:8080/openstack/latest`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			u, err := user.Lookup(owner)
			if err != nil {
				return usageError{fmt.Errorf("user %q: %w", owner, err)}
			}
			o.UID, _ = strconv.Atoi(u.Uid)
			o.GID, _ = strconv.Atoi(u.Gid)
			o.Log = slog.New(slog.NewTextHandler(a.stderr, nil))
			p, err := image.Configure(cmd.Context(), o)
			if err != nil {
				return fmt.Errorf("wrote a degraded %s/%s: %w", o.EtcDir, image.ConfigName, err)
			}
			fmt.Fprintf(a.stdout, "configured: server %s, data directory %s, listening on %s\n", p.Config.ServerID, p.Config.DataDir, p.Config.Listen)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&owner, "user", "cairn", "the daemon's user: owner of the secrets and of the data directory")
	f.StringVar(&o.EtcDir, "etc-dir", image.EtcDir, "where to write the config and the secrets")
	f.StringVar(&o.MetadataURL, "metadata-url", image.MetadataURL, "the OpenStack metadata service")
	f.DurationVar(&o.MetadataWait, "metadata-wait", 0, "how long to try the metadata service when no drive is attached (default 1m)")
	f.DurationVar(&o.DataVolumeWait, "data-volume-wait", 0, "how long to wait for the data volume to appear (default 1m)")
	return cmd
}
