package api

import (
	"fmt"
	"net/http"
	"time"

	"cairn/appliance"
)

func (s *Server) createTrigger(w http.ResponseWriter, r *http.Request) {
	p, b, err := request(r, "trigger")
	if err != nil {
		writeError(w, err)
		return
	}
	t := b.(*triggerBody).TriggerInfo
	name := ""
	if t.Name != nil {
		name = *t.Name
	}
	props, err := stringProps(t.Properties)
	if err != nil {
		writeError(w, err)
		return
	}
	v, err := s.a.CreateTrigger(p, name, t.Type, props)
	one(w, 200, "trigger_info", v, err)
}

func (s *Server) updateTrigger(w http.ResponseWriter, r *http.Request) {
	p, b, err := request(r, "trigger", "id")
	if err != nil {
		writeError(w, err)
		return
	}
	t := b.(*triggerBody).TriggerInfo
	props, err := stringProps(t.Properties)
	if err != nil {
		writeError(w, err)
		return
	}
	v, err := s.a.UpdateTrigger(p, r.PathValue("id"), t.Name, props)
	one(w, 200, "trigger_info", v, err)
}

func (s *Server) createOp(w http.ResponseWriter, r *http.Request) {
	p, b, err := request(r, "scheduled_operation")
	if err != nil {
		writeError(w, err)
		return
	}
	o := b.(*opBody).Op
	if err := checkUUID("trigger_id", o.TriggerID); err != nil {
		writeError(w, err)
		return
	}
	// A Keystone user's operation acts through a trust made with the
	// user's own token (appliance.Trustor); noauth has no token to make
	// one with.
	var by *appliance.Trustor
	if id := identityFrom(r.Context()); id != nil && !id.NoAuth {
		by = &appliance.Trustor{UserID: id.UserID, Token: r.Header.Get("X-Auth-Token"), Roles: id.Roles}
	}
	v, err := s.a.CreateScheduledOperation(r.Context(), p, o.Name, o.Description, o.OperationType, o.TriggerID, o.OperationDefinition, by)
	if err != nil {
		writeError(w, err)
		return
	}
	one(w, 200, "scheduled_operation", opView(*v), nil)
}

func (s *Server) deleteOp(w http.ResponseWriter, r *http.Request) {
	p, err := ids(r, "id")
	if err == nil {
		err = s.a.DeleteScheduledOperation(r.Context(), p, r.PathValue("id"))
	}
	if err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// scheduledOperation is a scheduled operation on the wire: Karbor's
// fields and cairn's run times. The trust it acts through stays inside
// the appliance, as in Karbor, whose view has none.
type scheduledOperation struct {
	ID                  string            `json:"id"`
	ProjectID           string            `json:"project_id"`
	Name                string            `json:"name"`
	Description         string            `json:"description"`
	OperationType       string            `json:"operation_type"`
	TriggerID           string            `json:"trigger_id"`
	OperationDefinition map[string]string `json:"operation_definition"`
	Enabled             bool              `json:"enabled"`
	LastRun             time.Time         `json:"last_run,omitzero"`
	NextRun             time.Time         `json:"next_run,omitzero"`
	CreatedAt           time.Time         `json:"created_at"`
}

func opView(o appliance.ScheduledOperation) scheduledOperation {
	return scheduledOperation{ID: o.ID, ProjectID: o.ProjectID, Name: o.Name, Description: o.Description,
		OperationType: o.OperationType, TriggerID: o.TriggerID, OperationDefinition: o.OperationDefinition,
		Enabled: o.Enabled, LastRun: o.LastRun, NextRun: o.NextRun, CreatedAt: o.CreatedAt}
}

func (s *Server) listOps(project string) []scheduledOperation {
	ops := s.a.ScheduledOperations(project)
	out := make([]scheduledOperation, len(ops))
	for i, o := range ops {
		out[i] = opView(o)
	}
	return out
}

func (s *Server) getOp(project, id string) (*scheduledOperation, error) {
	o, err := s.a.GetScheduledOperation(project, id)
	if err != nil {
		return nil, err
	}
	v := opView(*o)
	return &v, nil
}

func (s *Server) showQuota(w http.ResponseWriter, r *http.Request) {
	p, err := project(r)
	if err != nil {
		writeError(w, err)
		return
	}
	v, err := s.a.GetQuota(p, r.PathValue("target"))
	one(w, 200, "quota", v, err)
}

func (s *Server) updateQuota(w http.ResponseWriter, r *http.Request) {
	p, err := project(r)
	if err == nil {
		err = requireAdmin(r)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	b, err := body(r, "quota")
	if err != nil {
		writeError(w, err)
		return
	}
	q := b.(*quotaBody).Quota
	if q.Plans == nil {
		writeError(w, fmt.Errorf("%w: quota needs \"plans\"", errBadBody))
		return
	}
	v, err := s.a.UpdateQuota(p, r.PathValue("target"), *q.Plans)
	one(w, 200, "quota", v, err)
}
