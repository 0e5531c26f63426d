package api

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

var notFilters = map[string]bool{"limit": true, "marker": true, "sort": true, "sort_key": true, "sort_dir": true,
	"all_tenants": true, "project_id": true, "start_date": true, "end_date": true, "parameters": true}

// page applies Karbor's list query (filters on top-level fields, sort,
// marker, limit) to items and returns them as JSON objects.
func page[T any](r *http.Request, items []T) ([]map[string]any, error) {
	q := r.URL.Query()
	var objs []map[string]any
	for _, it := range items {
		b, _ := json.Marshal(it)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		if matches(m, q) {
			objs = append(objs, m)
		}
	}
	keys, dirs := []string{"created_at", "id"}, []string{"desc", "desc"}
	if s := q.Get("sort"); s != "" {
		keys, dirs = nil, nil
		for _, part := range strings.Split(s, ",") {
			k, d, _ := strings.Cut(part, ":")
			if d == "" {
				d = "desc"
			}
			keys, dirs = append(keys, k), append(dirs, d)
		}
	} else if k := q.Get("sort_key"); k != "" {
		d := q.Get("sort_dir")
		if d == "" {
			d = "desc"
		}
		keys, dirs = []string{k, "id"}, []string{d, d}
	}
	for _, d := range dirs {
		if d != "asc" && d != "desc" {
			return nil, fmt.Errorf("%w: sort direction %q: want asc or desc", errBadBody, d)
		}
	}
	sort.SliceStable(objs, func(i, j int) bool {
		for n, k := range keys {
			c := compareValues(objs[i][k], objs[j][k])
			if c == 0 {
				continue
			}
			return (c < 0) == (dirs[n] == "asc")
		}
		return false
	})
	if m := q.Get("marker"); m != "" {
		idx := -1
		for i, o := range objs {
			if o["id"] == m {
				idx = i
			}
		}
		if idx < 0 {
			return nil, fmt.Errorf("%w: marker %q not found", errBadBody, m)
		}
		objs = objs[idx+1:]
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%w: limit %q: want a non-negative integer", errBadBody, l)
		}
		if n < len(objs) {
			objs = objs[:n]
		}
	}
	if objs == nil {
		objs = []map[string]any{}
	}
	return objs, nil
}

// compareValues orders two JSON values: numbers numerically, RFC 3339
// times chronologically (their text does not sort: "05Z" > "05.5Z"), the
// rest by their text.
func compareValues(a, b any) int {
	if x, ok := a.(float64); ok {
		if y, ok := b.(float64); ok {
			return cmp.Compare(x, y)
		}
	}
	if x, ok := a.(string); ok {
		if y, ok := b.(string); ok {
			tx, errx := time.Parse(time.RFC3339Nano, x)
			ty, erry := time.Parse(time.RFC3339Nano, y)
			if errx == nil && erry == nil {
				return tx.Compare(ty)
			}
			return strings.Compare(x, y)
		}
	}
	return strings.Compare(fmt.Sprint(a), fmt.Sprint(b))
}

func matches(m map[string]any, q map[string][]string) bool {
	for k, vs := range q {
		if notFilters[k] || len(vs) == 0 || vs[0] == "" {
			continue
		}
		v := m[k]
		if k == "plan_id" {
			if p, ok := m["protection_plan"].(map[string]any); ok {
				v = p["id"]
			}
		}
		if fmt.Sprint(v) != vs[0] {
			return false
		}
	}
	if s, e := q["start_date"], q["end_date"]; len(s) > 0 || len(e) > 0 {
		c, _ := m["created_at"].(string)
		if len(s) > 0 && s[0] != "" && c[:min(len(c), 10)] < s[0] {
			return false
		}
		if len(e) > 0 && e[0] != "" && c[:min(len(c), 10)] > e[0] {
			return false
		}
	}
	return true
}
