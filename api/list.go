package api

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

var notFilters = map[string]bool{"limit": true, "marker": true, "sort": true, "sort_key": true, "sort_dir": true,
	"all_tenants": true, "start_date": true, "end_date": true, "parameters": true}

// maxLimit caps every list, as Karbor's osapi_max_limit does: a client
// pages through longer ones with marker.
const maxLimit = 1000

// listing is one collection to page through. view turns an item into what
// the API shows (nil: the item itself). key, when set, gives an item's
// created_at and id without encoding it, so the default order (newest
// first) costs a typed sort and only the returned page is encoded: a list
// of 10,000 checkpoints must not encode them all.
type listing[T any] struct {
	items []T
	view  func(T) any
	key   func(T) (time.Time, string)
	// raw, when set, gives an item's JSON in place of encoding view's.
	raw func(T) json.RawMessage
}

// page applies Karbor's list query (filters on top-level fields, sort,
// marker, limit) to l and returns the page as JSON objects.
func page[T any](r *http.Request, l listing[T]) ([]any, error) {
	q := r.URL.Query()
	limit := maxLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%w: limit %q: want a non-negative integer", errBadBody, v)
		}
		limit = min(n, maxLimit)
	}
	encode := func(it T) json.RawMessage {
		if l.raw != nil {
			return l.raw(it)
		}
		var v any = it
		if l.view != nil {
			v = l.view(it)
		}
		b, _ := json.Marshal(v) // API objects always encode
		return b
	}
	object := func(it T) map[string]any {
		var m map[string]any
		_ = json.Unmarshal(encode(it), &m)
		return m
	}
	objs := []any{}
	if l.key != nil && q.Get("sort") == "" && q.Get("sort_key") == "" {
		items := l.items
		newest := func(a, b T) int {
			ta, ia := l.key(a)
			tb, ib := l.key(b)
			if c := tb.Compare(ta); c != 0 {
				return c
			}
			return strings.Compare(ib, ia)
		}
		// Lists the appliance keeps in this order (checkpoints) cost a
		// walk here, not a sort of thousands per request.
		if !slices.IsSortedFunc(items, newest) {
			slices.SortStableFunc(items, newest)
		}
		if m := q.Get("marker"); m != "" {
			idx := slices.IndexFunc(items, func(it T) bool { _, id := l.key(it); return id == m })
			if idx < 0 {
				return nil, fmt.Errorf("%w: marker %q not found", errBadBody, m)
			}
			items = items[idx+1:]
		}
		filtered := hasFilters(q)
		for _, it := range items {
			if len(objs) >= limit {
				break
			}
			if !filtered {
				objs = append(objs, encode(it)) // nothing to match: no map
				continue
			}
			if o := object(it); matches(o, q) {
				objs = append(objs, o)
			}
		}
		return objs, nil
	}

	var all []map[string]any
	for _, it := range l.items {
		if o := object(it); matches(o, q) {
			all = append(all, o)
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
	sort.SliceStable(all, func(i, j int) bool {
		for n, k := range keys {
			c := compareValues(all[i][k], all[j][k])
			if c == 0 {
				continue
			}
			return (c < 0) == (dirs[n] == "asc")
		}
		return false
	})
	if m := q.Get("marker"); m != "" {
		idx := slices.IndexFunc(all, func(o map[string]any) bool { return o["id"] == m })
		if idx < 0 {
			return nil, fmt.Errorf("%w: marker %q not found", errBadBody, m)
		}
		all = all[idx+1:]
	}
	for _, o := range all[:min(limit, len(all))] {
		objs = append(objs, o)
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

// hasFilters reports whether q filters items (beyond paging and sorting).
func hasFilters(q map[string][]string) bool {
	for k, vs := range q {
		if !notFilters[k] && len(vs) > 0 && vs[0] != "" || (k == "start_date" || k == "end_date") && len(vs) > 0 && vs[0] != "" {
			return true
		}
	}
	return false
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
