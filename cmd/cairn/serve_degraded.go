package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"cairn/api"
	"cairn/appliance"
)

// errStart marks a serve failure that --stay-up turns into the degraded
// mode: the configuration is unusable or the appliance cannot open. A
// listen error is not one, since a degraded server could not listen either.
var errStart = errors.New("appliance cannot start")

// runDegraded serves api.Degraded on the configured listen address until
// SIGINT or SIGTERM: an appliance VM whose configuration is wrong stays
// reachable and says why, instead of a restart loop nobody can see.
func runDegraded(ctx context.Context, a *app, cfg appliance.Config, why error) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewJSONHandler(a.stderr, nil))
	addr := cfg.Listen
	if addr == "" {
		addr = appliance.DefaultConfig("").Listen
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen: %w (and the appliance cannot start: %v)", err, why)
	}
	reason := why.Error()
	log.Error("degraded: serving only /healthz", "listen", ln.Addr().String(), "reason", reason)
	if a.jsonOut {
		_ = writeJSON(a.stdout, map[string]string{"listen": ln.Addr().String(), "degraded": reason})
	}
	srv := &http.Server{Handler: api.Degraded(reason, cfg.ServerID), ReadHeaderTimeout: 10 * time.Second}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
	case err = <-serveErr:
		return err
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	log.Info("stopped")
	return nil
}
