package backup

import (
	"strconv"

	"cairn/blockdev/rbd"
)

// tags are the tags of a new checkpoint read at snapshot snap: the
// request's, the device's (Tagger) and the plan's. The rbd.* names are
// the repository format of every snapshot source (docs/rbd.md): a Cinder
// volume is an RBD image too.
func (r *run) tags(plan Plan, rd Reader, differ Differ, snap Snap) map[string]string {
	t := make(map[string]string, len(r.o.Tags)+16)
	for k, v := range r.o.Tags {
		t[k] = v
	}
	if tg, ok := rd.(Tagger); ok {
		for k, v := range tg.Tags() {
			t[k] = v
		}
	}
	t[rbd.TagImageID] = r.snaps.DeviceID()
	t[rbd.TagSnap], t[rbd.TagSnapID] = snap.Name, strconv.FormatUint(snap.ID, 10)
	t[rbd.TagSnapManaged] = strconv.FormatBool(r.o.Snap == "")
	t[rbd.TagIncrementals] = strconv.Itoa(plan.Incrementals)
	if plan.BaseSnap == "" {
		t[rbd.TagMode], t[rbd.TagFullReason] = "full", plan.FullReason
	} else {
		t[rbd.TagMode], t[rbd.TagBaseSnap] = "incremental", plan.BaseSnap
		t[rbd.TagDiff] = differ.DiffMode()
	}
	if plan.Fallback != "" {
		t[rbd.TagFallback] = plan.Fallback
	}
	return t
}
