//go:build ceph

// Package cephconn opens librados connections for every part of cairn that
// talks to Ceph (the RBD source and target, the RADOS shard store), so they
// all honour the same flags and environment and fail with the same advice.
package cephconn

import (
	"context"
	"fmt"
	"strings"

	"github.com/ceph/go-ceph/rados"
)

// Options say how to reach the cluster. Empty fields fall back to librados's
// defaults: $CEPH_CONF or /etc/ceph/ceph.conf, client.admin, the keyring the
// configuration names. $CEPH_ARGS is applied last.
type Options struct {
	Conf    string // path of a ceph.conf
	ID      string // client ID: "cairn" or "client.cairn"
	Keyring string // path of a keyring file
}

// Dial reads the configuration and connects. librados takes no context and
// waits up to client_mount_timeout for the monitors: when ctx ends first,
// Dial returns ctx's error and the abandoned attempt shuts itself down when
// librados gives up.
func Dial(ctx context.Context, o Options) (*rados.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	id := strings.TrimPrefix(o.ID, "client.")
	var conn *rados.Conn
	var err error
	if id != "" {
		conn, err = rados.NewConnWithUser(id)
	} else {
		conn, err = rados.NewConn()
	}
	if err != nil {
		return nil, fmt.Errorf("ceph: create connection: %w", err)
	}
	// The CLI prints one-line errors; librados's log lines on stderr would
	// interleave with them. The configuration may turn them back on.
	for _, opt := range []string{"log_to_stderr", "err_to_stderr"} {
		_ = conn.SetConfigOption(opt, "false")
	}
	var confErr error
	if o.Conf != "" {
		if err := conn.ReadConfigFile(o.Conf); err != nil {
			conn.Shutdown()
			return nil, fmt.Errorf("ceph: read config %s: %w", o.Conf, err)
		}
	} else {
		// $CEPH_CONF, /etc/ceph/ceph.conf, ~/.ceph/config, ./ceph.conf;
		// none is fine when $CEPH_ARGS names the monitors.
		confErr = conn.ReadDefaultConfigFile()
	}
	if o.Keyring != "" {
		if err := conn.SetConfigOption("keyring", o.Keyring); err != nil {
			conn.Shutdown()
			return nil, fmt.Errorf("ceph: keyring %s: %w", o.Keyring, err)
		}
	}
	if err := conn.ParseDefaultConfigEnv(); err != nil {
		conn.Shutdown()
		return nil, fmt.Errorf("ceph: parse CEPH_ARGS: %w", err)
	}
	// Unbuffered: the hand-over succeeds only while the caller still waits,
	// so exactly one side owns (and shuts down) the connection.
	done := make(chan error)
	go func() {
		err := conn.Connect()
		select {
		case done <- err:
		case <-ctx.Done():
			conn.Shutdown()
		}
	}()
	select {
	case err = <-done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if err != nil {
		conn.Shutdown()
		if confErr != nil {
			return nil, fmt.Errorf("ceph: connect: %w (no ceph.conf found: pass --ceph-conf or set CEPH_CONF: %v)", err, confErr)
		}
		return nil, fmt.Errorf("ceph: connect: %w", err)
	}
	return conn, nil
}
