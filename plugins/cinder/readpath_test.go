package cinder

import (
	"errors"
	"testing"

	"cairn/plugins"
)

func TestChoosePath(t *testing.T) {
	for _, tc := range []struct {
		name             string
		want, configured string
		rbd, canAttach   bool
		path             string
		err              error
	}{
		{name: "RBD reads directly by default", rbd: true, canAttach: true, path: ReadDirect},
		{name: "RBD without a server", rbd: true, path: ReadDirect},
		{name: "another backend goes through the attachment", canAttach: true, path: ReadAttach},
		{name: "another backend without a server", err: ErrNotRBD},
		{name: "option attach on RBD", want: ReadAttach, rbd: true, canAttach: true, path: ReadAttach},
		{name: "config attach on RBD", configured: ReadAttach, rbd: true, canAttach: true, path: ReadAttach},
		{name: "option beats config", want: ReadDirect, configured: ReadAttach, rbd: true, canAttach: true, path: ReadDirect},
		{name: "option attach without a server", want: ReadAttach, rbd: true, err: plugins.ErrInvalidParameter},
		{name: "config attach without a server", configured: ReadAttach, err: plugins.ErrInvalidParameter},
		{name: "direct on another backend", want: ReadDirect, canAttach: true, err: ErrNotRBD},
		{name: "config direct on another backend", configured: ReadDirect, canAttach: true, err: ErrNotRBD},
		{name: "unknown path", want: "nbd", rbd: true, canAttach: true, err: plugins.ErrInvalidParameter},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ChoosePath(tc.want, tc.configured, tc.rbd, tc.canAttach)
			if tc.err != nil {
				if !errors.Is(err, tc.err) || got != "" {
					t.Fatalf("ChoosePath = %q, %v; want error %v", got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.path {
				t.Fatalf("ChoosePath = %q, %v; want %s", got, err, tc.path)
			}
		})
	}
}
