package appliance

import (
	"testing"

	"cairn/dedup"
)

// repoOf returns project's repository, released when the test ends.
func repoOf(t *testing.T, a *Appliance, project string) *dedup.Repository {
	t.Helper()
	r, release, err := a.repos.get(t.Context(), project)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(release)
	return r
}
