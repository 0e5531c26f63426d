package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"cairn/dedup"
	"cairn/mount/nbd"
)

// nbdCommands returns the NBD export commands.
func nbdCommands(a *app) []*cobra.Command {
	cmd := &cobra.Command{
		Use:   "nbd",
		Short: "Export checkpoints as network block devices (NBD)",
		Long: `Export checkpoints over the NBD protocol, so that a hypervisor can boot a
checkpoint at once or a tool such as qemu-img or nbdcopy can read it.
See docs/nbd.md.`,
		Example: `  cairn nbd serve --listen 127.0.0.1:10809
  nbdinfo --list nbd://127.0.0.1:10809
  cairn nbd discard 0197c2a4`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRunE,
	}
	cmd.AddCommand(newNBDServeCmd(a), newNBDDiscardCmd(a))
	return []*cobra.Command{cmd}
}

// nbdServeFlags are the flags of 'cairn nbd serve'.
type nbdServeFlags struct {
	listen      string
	writable    bool
	overlayDir  string
	tlsCert     string
	tlsKey      string
	tlsRequired bool
	secretFile  string
	idleTimeout time.Duration
}

func newNBDServeCmd(a *app) *cobra.Command {
	var f nbdServeFlags
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve every checkpoint as an NBD export until interrupted",
		Long: `Serve the repository's checkpoints over NBD until SIGINT or SIGTERM. Each
checkpoint answers to its ID, a unique prefix of it, and SOURCE/ID; the
server prints the address and the exports (with --json, one object).

Exports are read-only unless --writable: writes then go to a copy-on-write
overlay per checkpoint in --overlay-dir (default DIR/overlays), never to the
repository; the overlay survives restarts until 'cairn nbd discard'.

--listen takes HOST:PORT or unix:PATH. --tls-cert and --tls-key enable TLS
(NBD_OPT_STARTTLS); --tls-required refuses clients that do not use it.
--secret-file makes exports reachable only as SECRET/ID and hides the list.
--idle-timeout closes a connection with no request for that long (default
0: never, as a VM booted from an export may leave it unused for hours).
At 256 connections a new client takes the place of an idle one.
The repository's index is not needed, so a backup may run meanwhile.`,
		Example: `  cairn nbd serve
  qemu-img convert -f raw nbd://127.0.0.1:10809/0197c2a4 /tmp/vm1.raw
  cairn nbd serve --listen 0.0.0.0:10809 --writable --tls-cert c.pem --tls-key k.pem --tls-required
  cairn nbd serve --listen unix:/run/cairn/nbd.sock --secret-file /etc/cairn/nbd.secret`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.nbdServe(cmd.Context(), f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.listen, "listen", "127.0.0.1:10809", "address to listen on: HOST:PORT or unix:PATH")
	fl.BoolVar(&f.writable, "writable", false, "accept writes into a local copy-on-write overlay per checkpoint")
	fl.StringVar(&f.overlayDir, "overlay-dir", "", "directory of the overlays (default DIR/overlays)")
	fl.StringVar(&f.tlsCert, "tls-cert", "", "PEM certificate (chain) for TLS")
	fl.StringVar(&f.tlsKey, "tls-key", "", "PEM private key for TLS")
	fl.BoolVar(&f.tlsRequired, "tls-required", false, "refuse clients that do not start TLS")
	fl.StringVar(&f.secretFile, "secret-file", "", "file holding a secret: exports answer only to SECRET/ID")
	fl.DurationVar(&f.idleTimeout, "idle-timeout", 0, "close a connection with no request for this long, e.g. 5m (0: never)")
	cmd.MarkFlagsRequiredTogether("tls-cert", "tls-key")
	return cmd
}

func (a *app) nbdServe(ctx context.Context, f nbdServeFlags) error {
	if f.idleTimeout < 0 {
		return usagef("--idle-timeout %v: want a duration of 0 or more", f.idleTimeout)
	}
	tlsCfg, err := loadTLS(f)
	if err != nil {
		return err
	}
	secret, err := readSecret(f.secretFile)
	if err != nil {
		return err
	}
	overlayDir := f.overlayDir
	if f.writable && overlayDir == "" {
		if overlayDir, err = a.defaultOverlayDir(); err != nil {
			return err
		}
	}
	return a.withRepo(ctx, readOnly, func(r *dedup.Repository) (err error) {
		cat, err := nbd.NewCheckpointCatalog(r, nbd.CatalogOptions{Writable: f.writable, OverlayDir: overlayDir, Secret: secret})
		if err != nil {
			return err
		}
		defer func() {
			if cerr := cat.Close(); cerr != nil && err == nil {
				err = fmt.Errorf("close overlays: %w", cerr)
			}
		}()
		cps, err := r.Checkpoints(ctx)
		if err != nil {
			return err
		}
		l, err := nbdListen(f.listen)
		if err != nil {
			return err
		}
		var logMu sync.Mutex
		srv := nbd.NewServer(cat, nbd.Options{TLS: tlsCfg, TLSRequired: f.tlsRequired, IdleTimeout: f.idleTimeout, Logf: func(format string, args ...any) {
			logMu.Lock()
			defer logMu.Unlock()
			a.notef(format, args...)
		}})
		if err := a.printNBDServe(l, cps, f, overlayDir, secret != ""); err != nil {
			l.Close()
			return err
		}
		return a.runNBDServer(ctx, srv, l)
	})
}

// runNBDServer serves until ctx ends (SIGINT, SIGTERM) or the listener
// fails, then drains the connections for up to 10 s.
func (a *app) runNBDServer(ctx context.Context, srv *nbd.Server, l net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(context.WithoutCancel(ctx), l) }()
	var serveErr error
	served := false
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
		served = true
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		a.notef("nbd: connections cut after the drain timeout: %v", err)
	}
	if !served {
		serveErr = <-errc
	}
	if errors.Is(serveErr, nbd.ErrServerClosed) {
		serveErr = nil
	}
	if serveErr == nil {
		a.notef("nbd server stopped")
	}
	return serveErr
}

func newNBDDiscardCmd(a *app) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "discard CHECKPOINT",
		Short: "Delete the writable overlay of a checkpoint",
		Long: `Delete the copy-on-write overlay that 'cairn nbd serve --writable' keeps
for CHECKPOINT (its ID or a unique prefix among the overlays), dropping
every write made through NBD. The checkpoint itself is untouched. A server
still serving the overlay makes this fail.`,
		Example: `  cairn nbd discard 0197c2a4`,
		Args:    usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if dir == "" {
				var err error
				if dir, err = a.defaultOverlayDir(); err != nil {
					return err
				}
			}
			ids, err := nbd.Overlays(dir)
			if err != nil {
				return err
			}
			id, err := matchOverlay(ids, args[0])
			if err != nil {
				return fmt.Errorf("%s: %w", dir, err)
			}
			if err := nbd.DiscardOverlay(dir, id); err != nil {
				if errors.Is(err, nbd.ErrOverlayBusy) {
					return fmt.Errorf("overlay of %s: %w (stop the 'cairn nbd serve' using it first)", id, nbd.ErrOverlayBusy)
				}
				return err
			}
			if a.jsonOut {
				return writeJSON(a.stdout, map[string]any{"id": id, "discarded": true})
			}
			if !a.quiet {
				fmt.Fprintf(a.stdout, "discarded the overlay of %s\n", id)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "overlay-dir", "", "directory of the overlays (default DIR/overlays)")
	return cmd
}

// matchOverlay picks the overlay an ID or unique prefix names.
func matchOverlay(ids []string, prefix string) (string, error) {
	var found []string
	for _, id := range ids {
		if id == prefix {
			return id, nil
		}
		if strings.HasPrefix(id, prefix) {
			found = append(found, id)
		}
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("checkpoint %s: %w", prefix, nbd.ErrNoOverlay)
	case 1:
		return found[0], nil
	}
	return "", fmt.Errorf("%s matches %d overlays: %w", prefix, len(found), dedup.ErrAmbiguousID)
}
