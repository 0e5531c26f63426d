package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/spf13/pflag"

	"cairn/blockdev/rbd"
	"cairn/dedup"
	"cairn/mount/nbd"
)

// liveFlags are the flags of 'cairn restore --live'.
type liveFlags struct {
	live             bool
	listen           string
	exitWhenComplete bool
}

func (l *liveFlags) register(f *pflag.FlagSet) {
	f.BoolVar(&l.live, "live", false, "serve the target as a writable NBD export at once and fill it in the background (docs/nbd.md)")
	f.StringVar(&l.listen, "listen", "127.0.0.1:10809", "with --live: address to serve on, HOST:PORT or unix:PATH")
	f.BoolVar(&l.exitWhenComplete, "exit-when-complete", false, "with --live: stop once the target is complete and no client is connected")
}

// check refuses live-only flags without --live.
func (l *liveFlags) check(f *pflag.FlagSet, to string) error {
	if !l.live {
		if f.Changed("listen") || f.Changed("exit-when-complete") {
			return usagef("--listen and --exit-when-complete need --live")
		}
		return nil
	}
	if rbd.IsSpec(to) {
		return usagef("--live restores to a file; restore that file to RBD afterwards (docs/nbd.md)")
	}
	return nil
}

type liveStartJSON struct {
	Listen   string `json:"listen"`
	Network  string `json:"network"`
	URI      string `json:"uri"`
	ID       string `json:"id"`
	To       string `json:"to"`
	Size     int64  `json:"size"`
	Resumed  bool   `json:"resumed"`
	Hydrated int64  `json:"hydrated_bytes"`
}

type liveDoneJSON struct {
	ID       string  `json:"id"`
	To       string  `json:"to"`
	Size     int64   `json:"size"`
	Complete bool    `json:"complete"`
	Fetched  int64   `json:"fetched_bytes"`
	Writes   int64   `json:"writes"`
	Seconds  float64 `json:"seconds"`
	MBPerSec float64 `json:"mb_per_s"`
}

// restoreLive restores checkpoint id to the file to while serving it over
// NBD, until SIGINT/SIGTERM (or completion with --exit-when-complete).
func (a *app) restoreLive(ctx context.Context, id, to string, force bool, lf liveFlags) error {
	if abs, err := filepath.Abs(to); err == nil {
		to = abs
	}
	return a.withRepo(ctx, readOnly, func(r *dedup.Repository) (err error) {
		rd, err := r.OpenCheckpoint(ctx, id)
		if err != nil {
			return err
		}
		cp := rd.Checkpoint()
		d, err := nbd.OpenLive(ctx, to, cp.ID, rd, nbd.LiveOptions{Force: force})
		if err != nil {
			return err
		}
		defer func() {
			if cerr := d.Close(); cerr != nil {
				err = errors.Join(err, fmt.Errorf("close live restore: %w", cerr))
			}
		}()
		l, err := nbdListen(lf.listen)
		if err != nil {
			return err
		}
		var logMu sync.Mutex
		srv := nbd.NewServer(nbd.LiveCatalog(cp.ID, nbd.Describe(cp), d), nbd.Options{Logf: func(format string, args ...any) {
			logMu.Lock()
			defer logMu.Unlock()
			a.notef(format, args...)
		}})
		if err := a.printLiveStart(l.Addr().String(), l.Addr().Network(), nbdURI(l, cp.ID, false), cp, to, d.Stats()); err != nil {
			l.Close()
			return err
		}
		serveCtx, stopServe := context.WithCancel(ctx)
		defer stopServe()
		copyCtx, stopCopy := context.WithCancel(ctx)
		line := a.newProgress("hydrate")
		res := make(chan error, 1)
		go func() { res <- a.hydrateLive(copyCtx, d, srv, line, cp, to, lf, stopServe) }()
		err = a.runNBDServer(serveCtx, srv, l)
		stopCopy()
		copyErr := <-res
		a.doneProgress(line)
		if copyErr != nil && !errors.Is(copyErr, context.Canceled) {
			return errors.Join(err, copyErr)
		}
		if err == nil && !d.Complete() {
			st := d.Stats()
			err = fmt.Errorf("stopped with %.0f%% of %s in the target (run the same command to resume): %w",
				100*float64(st.Hydrated)/float64(max(st.Size, 1)), to, context.Canceled)
		}
		return err
	})
}

// hydrateLive runs the background copy with a progress line, reports the
// completion, and with --exit-when-complete then stops the server once no
// client is connected. A failed copy stops the server too.
func (a *app) hydrateLive(ctx context.Context, d *nbd.LiveDevice, srv *nbd.Server, line *progressLine, cp *dedup.Checkpoint, to string, lf liveFlags, stopServe func()) error {
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- d.Hydrate(ctx, nbd.HydrateOptions{Workers: 4}) }()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	var err error
	for waiting := true; waiting; {
		select {
		case <-tick.C:
			if line.enabled {
				line.draw(formatLiveProgress(d.Stats(), time.Since(start)))
			}
		case err = <-done:
			waiting = false
		}
	}
	line.clear()
	if err != nil {
		if ctx.Err() == nil {
			stopServe()
		}
		return err
	}
	if err := a.printLiveDone(cp, to, d.Stats(), time.Since(start)); err != nil {
		return err
	}
	if !lf.exitWhenComplete {
		return nil
	}
	for srv.Conns() > 0 {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
	stopServe()
	return nil
}

// formatLiveProgress renders "hydrate  1.2 GiB / 4.0 GiB  30%  123.4 MB/s  ETA 0:23".
func formatLiveProgress(st nbd.LiveStats, elapsed time.Duration) string {
	rate := 0.0
	if s := elapsed.Seconds(); s > 0 {
		rate = float64(st.Fetched) / s
	}
	eta := "--:--"
	if rate > 0 {
		eta = formatClock(time.Duration(float64(st.Size-st.Hydrated) / rate * float64(time.Second)))
	}
	return fmt.Sprintf("hydrate  %s / %s  %3.0f%%  %s  ETA %s", formatSize(st.Hydrated), formatSize(st.Size),
		100*float64(st.Hydrated)/float64(max(st.Size, 1)), formatRate(rate), eta)
}

func (a *app) printLiveStart(addr, network, uri string, cp *dedup.Checkpoint, to string, st nbd.LiveStats) error {
	if a.jsonOut {
		return writeJSON(a.stdout, liveStartJSON{Listen: addr, Network: network, URI: uri, ID: cp.ID, To: to,
			Size: cp.Size, Resumed: st.Resumed, Hydrated: st.Hydrated})
	}
	verb := "live restore of"
	if st.Resumed {
		verb = "resumed live restore of"
	}
	_, err := fmt.Fprintf(a.stdout, "listening on %s (%s %s to %s, %.0f%% in the target)\nexport %s\n",
		addr, verb, cp.ID, to, 100*float64(st.Hydrated)/float64(max(st.Size, 1)), uri)
	return err
}

func (a *app) printLiveDone(cp *dedup.Checkpoint, to string, st nbd.LiveStats, d time.Duration) error {
	if a.jsonOut {
		return writeJSON(a.stdout, liveDoneJSON{ID: cp.ID, To: to, Size: cp.Size, Complete: true,
			Fetched: st.Fetched, Writes: st.Writes, Seconds: d.Seconds(), MBPerSec: mbPerSec(st.Fetched, d)})
	}
	_, err := fmt.Fprintf(a.stdout, "target complete: %s holds checkpoint %s (+ %d writes made through the export)\n",
		to, cp.ID, st.Writes)
	return err
}
