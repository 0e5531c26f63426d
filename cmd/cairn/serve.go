package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"cairn/api"
	"cairn/appliance"
	"cairn/console"
	"cairn/dedup"
	"cairn/mount/files"
)

// serveCommands returns the appliance daemon command.
func serveCommands(a *app) []*cobra.Command {
	return []*cobra.Command{newServeCmd(a)}
}

func newServeCmd(a *app) *cobra.Command {
	var cfgFile, listen, dataDir string
	var migrate, stayUp bool
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the appliance: the Karbor-compatible API, schedules and job workers",
		Long: `Run the cairn appliance until SIGINT or SIGTERM. Without --config it runs
the embedded default: one repository per project under
DATA_DIR/projects/PROJECT/repo (each created on the project's first
protection, unencrypted), noauth (the project in the URL is taken as given),
protectable files in DATA_DIR/volumes and state under DATA_DIR/state.

Projects never share a repository: each has its own chunk-ID key, index and,
when encrypted, data key, so no project can learn what another stores.
A data directory written by an earlier cairn, with one repository shared by
all projects in DATA_DIR/repo, is refused until 'cairn serve --migrate' has
copied each project's checkpoints into its own repository (it prints what it
copied and then exits; run it again if it is interrupted).
With "auth": "keystone" in the configuration, every request needs a
Keystone token scoped to the project in its URL (or an admin role).
The web console is served at / on the same address (docs/console.md).
See docs/api.md for the configuration keys.`,
		Example: `  cairn serve --data-dir /var/lib/cairn
  karbor --os-no-client-auth --os-auth-token x --karbor-url http://127.0.0.1:8799/v1/demo provider-list`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			var cfg appliance.Config
			var cfgErr error
			if cfgFile != "" {
				cfg, cfgErr = appliance.LoadConfig(cfgFile)
			}
			if listen != "" {
				cfg.Listen = listen
			}
			if dataDir != "" {
				cfg.DataDir = dataDir
			}
			if cfgErr != nil && !stayUp {
				return usageError{cfgErr}
			}
			if migrate {
				if cfgErr != nil {
					return usageError{cfgErr}
				}
				return runMigrate(cmd.Context(), a, cfg)
			}
			if cfgErr == nil {
				cfgErr = runServe(cmd.Context(), a, cfg)
				if cfgErr == nil || !stayUp || !errors.Is(cfgErr, errStart) {
					return cfgErr
				}
			}
			return runDegraded(cmd.Context(), a, cfg, cfgErr)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfgFile, "config", "", "JSON configuration file (default: the embedded default)")
	f.StringVar(&listen, "listen", "", "API address (default 127.0.0.1:8799)")
	f.StringVar(&dataDir, "data-dir", "", "data directory (default /var/lib/cairn)")
	f.BoolVar(&stayUp, "stay-up", false, "if the configuration is bad or the appliance cannot start, keep serving /healthz (503 with the reason) instead of exiting")
	f.BoolVar(&migrate, "migrate", false, "copy the checkpoints of an earlier release's shared repository into per-project repositories, then exit")
	return cmd
}

// runMigrate runs the per-project migration and prints its report.
func runMigrate(ctx context.Context, a *app, cfg appliance.Config) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	pl := a.newProgress("migrating")
	start := time.Now()
	rep, err := appliance.Migrate(ctx, cfg, appliance.Options{Log: log}, func(done, total int) {
		pl.count(done, total, "backups", time.Since(start))
	})
	a.doneProgress(pl)
	if rep != nil {
		if a.jsonOut {
			_ = writeJSON(a.stdout, rep)
		} else {
			fmt.Fprintf(a.stdout, "copied %d backups (%d copied by an earlier run) into %d project repositories\n", rep.Copied, rep.Skipped, len(rep.Projects))
			for _, f := range rep.Failed {
				fmt.Fprintf(a.stdout, "failed: %s\n", f)
			}
			if rep.MovedTo != "" {
				fmt.Fprintf(a.stdout, "the shared repository is now %s: delete it once the appliance serves every checkpoint\n", rep.MovedTo)
			}
		}
	}
	return err
}

func runServe(ctx context.Context, a *app, cfg appliance.Config) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewJSONHandler(a.stderr, nil))
	ap, err := appliance.Open(ctx, cfg, appliance.Options{Log: log})
	if err != nil {
		return fmt.Errorf("%w: %w", errStart, err)
	}
	cfg = ap.Config()
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		_ = ap.Close()
		return fmt.Errorf("listen: %w", err)
	}
	auth, err := newAuthenticator(ctx, cfg, log)
	if err != nil {
		_ = ln.Close()
		_ = ap.Close()
		return fmt.Errorf("%w: %w", errStart, err)
	}
	// The console is served beside the API on one listener: same origin,
	// so its fetches need no CORS and its CSP can say connect-src 'self'.
	host, _, _ := net.SplitHostPort(ln.Addr().String())
	apiSrv := api.NewWithOptions(ap, auth, log, api.Options{Files: daemonFiles(log), Exports: daemonExporter(host, log)})
	srv := &http.Server{Handler: console.Handler(apiSrv), ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- ap.Run(ctx) }()
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	log.Info("serving", "listen", ln.Addr().String(), "data_dir", cfg.DataDir, "repository", cfg.Repository, "auth", cfg.Auth)
	if a.jsonOut {
		_ = writeJSON(a.stdout, map[string]string{"listen": ln.Addr().String()})
	}
	var err2 error
	select {
	case <-ctx.Done():
	case err2 = <-serveErr:
		stop()
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	if err := apiSrv.Close(); err != nil {
		log.Error("stop nbd exports", "err", err)
	}
	<-done
	log.Info("stopped")
	if err := ap.Close(); err != nil {
		return err
	}
	if err2 != nil && !errors.Is(err2, http.ErrServerClosed) {
		return err2
	}
	return nil
}

// daemonFiles reads checkpoints' file systems for the API's file
// browsing, as cairn files does (root, FUSE and loop devices).
func daemonFiles(log *slog.Logger) api.FileReader {
	notef := func(format string, args ...any) { log.Info("files: " + fmt.Sprintf(format, args...)) }
	return func(ctx context.Context, repo *dedup.Repository, backupID, file string, fn func(*os.Root) error) error {
		return files.With(ctx, repo, backupID, file, notef, fn)
	}
}

// newAuthenticator returns the token check of cfg.Auth. Keystone's
// service user logs in here, so wrong credentials stop the start.
func newAuthenticator(ctx context.Context, cfg appliance.Config, log *slog.Logger) (api.Authenticator, error) {
	if cfg.Auth != "keystone" {
		return api.NoAuth{}, nil
	}
	k := cfg.Keystone
	pw, err := os.ReadFile(k.PasswordFile)
	if err != nil {
		return nil, fmt.Errorf("keystone password file: %w", err)
	}
	return api.NewKeystone(ctx, api.KeystoneOptions{AuthURL: k.AuthURL, Username: k.Username,
		Password: strings.TrimRight(string(pw), "\r\n"), ProjectName: k.ProjectName,
		UserDomainName: k.UserDomainName, ProjectDomainName: k.ProjectDomainName,
		AdminRoles: k.AdminRoles, AdminProject: k.AdminProject, AdminProjectDomain: k.AdminProjectDomain, CacheTTL: time.Duration(k.CacheTTL)}, log)
}
