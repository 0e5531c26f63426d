package plugins

import (
	"slices"
	"testing"
)

func TestMergeLeaks(t *testing.T) {
	for _, tc := range []struct {
		name  string
		lists [][]Leak
		want  []string // kind:id:reason
	}{
		{name: "none"},
		{name: "sorted by kind then ID",
			lists: [][]Leak{{{Kind: "volume", ID: "b", Reason: "1"}, {Kind: "image", ID: "z", Reason: "1"}}, {{Kind: "volume", ID: "a", Reason: "2"}}},
			want:  []string{"image:z:1", "volume:a:2", "volume:b:1"}},
		{name: "an object two lists name once, as the first has it",
			lists: [][]Leak{{{Kind: "volume", ID: "r", Reason: "journal"}}, {{Kind: "volume", ID: "r", Reason: "server's"}, {Kind: "server", ID: "r", Reason: "s"}}},
			want:  []string{"server:r:s", "volume:r:journal"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, l := range MergeLeaks(tc.lists...) {
				got = append(got, l.Kind+":"+l.ID+":"+l.Reason)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %v; want %v", got, tc.want)
			}
		})
	}
}
