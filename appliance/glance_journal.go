package appliance

import (
	"context"
	"encoding/json"

	"cairn/plugins/glance"
)

// glanceJournal keeps the Glance plugin's journal (the images restores
// are about to create) in the state database, kind "glance_journal",
// apart from the Cinder plugin's: each plugin's recovery forgets the
// entries it reads.
type glanceJournal struct {
	a *Appliance // its state store opens after the plugins are built
}

var _ glance.Journal = (*glanceJournal)(nil)

func (j *glanceJournal) Record(_ context.Context, e glance.Entry) error {
	if j.a.st == nil {
		return errNoState
	}
	return j.a.st.put("glance_journal", e.ID, e)
}

func (j *glanceJournal) Forget(_ context.Context, id string) error {
	if j.a.st == nil {
		return errNoState
	}
	return j.a.st.delete("glance_journal", id)
}

func (j *glanceJournal) Entries(_ context.Context, project string) ([]glance.Entry, error) {
	if j.a.st == nil {
		return nil, errNoState
	}
	var out []glance.Entry
	err := j.a.st.loadAll("glance_journal", func(_ string, b []byte) error {
		var e glance.Entry
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
