package lru

import "testing"

func TestCache(t *testing.T) {
	c := New[string, int](10)
	c.Add("a", 1, 4)
	c.Add("b", 2, 4)
	if v, ok := c.Get("a"); !ok || v != 1 {
		t.Fatalf("a: %v %v", v, ok)
	}
	c.Add("c", 3, 4) // over the limit: b is the least recently used
	if _, ok := c.Get("b"); ok {
		t.Fatal("b survived eviction")
	}
	for _, k := range []string{"a", "c"} {
		if _, ok := c.Get(k); !ok {
			t.Fatalf("%s evicted", k)
		}
	}
	c.Add("huge", 4, 11)
	if _, ok := c.Get("huge"); ok {
		t.Fatal("an entry costlier than the limit was kept")
	}
	c.Add("a", 5, 1) // a new cost and value for a present key
	if v, _ := c.Get("a"); v != 5 {
		t.Fatalf("a = %d after an update", v)
	}
	c.Remove("a")
	if _, ok := c.Get("a"); ok {
		t.Fatal("a present after Remove")
	}
	c.Add("d", 6, 6) // fits only because a's cost was released
	if _, ok := c.Get("c"); !ok {
		t.Fatal("c evicted although the cache had room")
	}
}

func TestDropped(t *testing.T) {
	var got []int
	c := NewDropping[string, int](10, func(v int) { got = append(got, v) })
	c.Add("a", 1, 4)
	c.Add("b", 2, 4)
	c.Add("a", 3, 4)    // replaces 1
	c.Add("c", 4, 4)    // evicts b, the least recently used
	c.Add("big", 5, 11) // refused
	c.Remove("a")       // 3
	c.Remove("gone")
	want := []int{1, 2, 5, 3}
	if len(got) != len(want) {
		t.Fatalf("dropped %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("dropped %v, want %v", got, want)
		}
	}
	if v, ok := c.Get("c"); !ok || v != 4 {
		t.Fatalf("c = %v, %v", v, ok)
	}
}
