package api

import (
	"fmt"
	"net/http"
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
	v, err := s.a.CreateScheduledOperation(p, o.Name, o.Description, o.OperationType, o.TriggerID, o.OperationDefinition)
	one(w, 200, "scheduled_operation", v, err)
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
