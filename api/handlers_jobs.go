package api

import (
	"encoding/json"
	"net/http"
	"slices"
	"time"

	"cairn/appliance"
)

// checkpointView is Karbor's checkpoint shape: resource_graph is a JSON
// string (the client prints it with json formatting), here the list of
// resources with their protection status, exact sizes and the edges of
// the dependency graph (depends_on).
type checkpointView struct {
	appliance.Checkpoint
	ResourceGraph string `json:"resource_graph"`
}

func viewCheckpoint(c appliance.Checkpoint) checkpointView {
	g, _ := json.Marshal(c.Resources)
	return checkpointView{Checkpoint: c, ResourceGraph: string(g)}
}

func (s *Server) listCheckpoints(w http.ResponseWriter, r *http.Request) {
	p, err := ids(r, "pid")
	if err == nil {
		p, err = listScope(r, p)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	cps, err := s.a.Checkpoints(p, r.PathValue("pid"))
	if err != nil {
		writeError(w, err)
		return
	}
	if st := r.URL.Query().Get("status"); st != "" {
		// The console polls for running jobs every second: narrowing by
		// the typed field first spares encoding every checkpoint to match
		// it (page matches again, on the few left).
		cps = slices.DeleteFunc(cps, func(c *appliance.Checkpoint) bool { return c.Status != st })
	}
	objs, err := page(r, listing[*appliance.Checkpoint]{items: cps,
		raw: s.cpJSON.get, // Checkpoints hands out published copies
		key: func(c *appliance.Checkpoint) (time.Time, string) { return c.CreatedAt, c.ID }})
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"checkpoints": objs})
}

func (s *Server) showCheckpoint(w http.ResponseWriter, r *http.Request) {
	p, err := ids(r, "pid", "id")
	if err != nil {
		writeError(w, err)
		return
	}
	c, err := s.a.Checkpoint(p, r.PathValue("pid"), r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	one(w, 200, "checkpoint", viewCheckpoint(*c), nil)
}

func (s *Server) createCheckpoint(w http.ResponseWriter, r *http.Request) {
	p, b, err := request(r, "checkpoint", "pid")
	if err != nil {
		writeError(w, err)
		return
	}
	cb := b.(*checkpointBody).Checkpoint
	if err := checkUUID("plan_id", cb.PlanID); err != nil {
		writeError(w, err)
		return
	}
	extra := cb.ExtraInfo
	if extra == nil {
		extra = cb.ExtraInf2
	}
	c, err := s.a.CreateCheckpoint(r.Context(), p, r.PathValue("pid"), cb.PlanID, extra, "")
	if err != nil {
		writeError(w, err)
		return
	}
	one(w, 202, "checkpoint", viewCheckpoint(*c), nil)
}

func (s *Server) deleteCheckpoint(w http.ResponseWriter, r *http.Request) {
	p, err := ids(r, "pid", "id")
	if err == nil {
		s.stopCheckpointExports(p, r.PathValue("id"))
		err = s.a.DeleteCheckpoint(r.Context(), p, r.PathValue("pid"), r.PathValue("id"))
	}
	if err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

func (s *Server) createRestore(w http.ResponseWriter, r *http.Request) {
	p, b, err := request(r, "restore")
	if err != nil {
		writeError(w, err)
		return
	}
	rb := b.(*restoreBody).Restore
	if err := firstErr(checkUUID("provider_id", rb.ProviderID), checkUUID("checkpoint_id", rb.CheckpointID)); err != nil {
		writeError(w, err)
		return
	}
	target := ""
	if rb.RestoreTarget != nil {
		target = *rb.RestoreTarget
	}
	v, err := s.a.CreateRestore(r.Context(), p, rb.ProviderID, rb.CheckpointID, target, rb.Parameters)
	one(w, 202, "restore", v, err)
}

func (s *Server) createVerification(w http.ResponseWriter, r *http.Request) {
	p, b, err := request(r, "verification")
	if err != nil {
		writeError(w, err)
		return
	}
	vb := b.(*verificationBody).Verification
	if err := firstErr(checkUUID("provider_id", vb.ProviderID), checkUUID("checkpoint_id", vb.CheckpointID)); err != nil {
		writeError(w, err)
		return
	}
	v, err := s.a.CreateVerification(r.Context(), p, vb.ProviderID, vb.CheckpointID, vb.Parameters)
	one(w, 202, "verification", v, err)
}

func (s *Server) listRuns(kind string) http.HandlerFunc {
	key := map[string]string{"restore": "restores", "verify": "verifications"}[kind]
	return func(w http.ResponseWriter, r *http.Request) {
		p, err := project(r)
		if err == nil {
			p, err = listScope(r, p)
		}
		if err != nil {
			writeError(w, err)
			return
		}
		listOf(w, r, key, s.a.Restores(p, kind))
	}
}

func (s *Server) showRun(kind string) http.HandlerFunc {
	key := map[string]string{"restore": "restore", "verify": "verification"}[kind]
	return func(w http.ResponseWriter, r *http.Request) {
		p, err := ids(r, "id")
		if err != nil {
			writeError(w, err)
			return
		}
		v, err := s.a.GetRestore(p, kind, r.PathValue("id"))
		one(w, 200, key, v, err)
	}
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
