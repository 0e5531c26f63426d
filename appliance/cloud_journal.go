package appliance

import (
	"context"
	"encoding/json"
	"errors"

	"cairn/plugins/cinder"
)

// cloudJournal keeps the OpenStack plugins' journal (what they are about
// to create in the cloud) in the state database, kind "cloud_journal":
// each Record is a committed, fsynced transaction, so an entry made
// before a snapshot is created survives a crash right after.
type cloudJournal struct {
	a *Appliance // its state store opens after the plugins are built
}

var _ cinder.Journal = (*cloudJournal)(nil)

// errNoState: a plugin used the journal before Open opened the state.
var errNoState = errors.New("cloud journal: the state database is not open")

func (j *cloudJournal) Record(_ context.Context, e cinder.Entry) error {
	if j.a.st == nil {
		return errNoState
	}
	return j.a.st.put("cloud_journal", e.ID, e)
}

func (j *cloudJournal) Forget(_ context.Context, id string) error {
	if j.a.st == nil {
		return errNoState
	}
	return j.a.st.delete("cloud_journal", id)
}

func (j *cloudJournal) Entries(_ context.Context, project string) ([]cinder.Entry, error) {
	if j.a.st == nil {
		return nil, errNoState
	}
	var out []cinder.Entry
	err := j.a.st.loadAll("cloud_journal", func(_ string, b []byte) error {
		var e cinder.Entry
		if err := json.Unmarshal(b, &e); err != nil {
			return err
		}
		if e.Project == project {
			out = append(out, e)
		}
		return nil
	})
	return out, err
}
