package serverstate

import (
	"maps"
	"testing"

	"github.com/memkit/memkit/memclient"
)

func status(addr string, up bool) memclient.ServerStatus {
	return memclient.ServerStatus{Addr: addr, Up: up}
}

// TestMerge checks the merge rule: a watched client's status wins over a
// ServerEvent's, a server down in any watched client is down, and servers
// only the events know keep their state.
func TestMerge(t *testing.T) {
	for _, tc := range []struct {
		name     string
		events   map[string]bool
		statuses [][]memclient.ServerStatus
		want     map[string]bool
	}{
		{"nothing", map[string]bool{}, nil, map[string]bool{}},
		{"events only", map[string]bool{"a": true, "b": false}, nil, map[string]bool{"a": true, "b": false}},
		{"clients only", map[string]bool{},
			[][]memclient.ServerStatus{{status("a", true), status("b", false)}},
			map[string]bool{"a": true, "b": false}},
		{"client wins over events", map[string]bool{"a": false, "b": true, "c": false},
			[][]memclient.ServerStatus{{status("a", true), status("b", false)}},
			map[string]bool{"a": true, "b": false, "c": false}},
		{"down in any client is down", map[string]bool{"a": true},
			[][]memclient.ServerStatus{
				{status("a", true), status("b", false), status("c", true)},
				{status("a", false), status("b", true), status("c", true)},
			},
			map[string]bool{"a": false, "b": false, "c": true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := merge(maps.Clone(tc.events), tc.statuses); !maps.Equal(got, tc.want) {
				t.Errorf("merge(%v, %v) = %v, want %v", tc.events, tc.statuses, got, tc.want)
			}
		})
	}
}

// TestTracker checks the bookkeeping around merge: events recorded,
// clients watched and unwatched, Reset. The clients never connect:
// memclient connects on first use, and ServerStatus counts a server up
// until it fails.
func TestTracker(t *testing.T) {
	var tr Tracker // the zero value is ready
	if got := tr.States(); len(got) != 0 {
		t.Fatalf("States() = %v, want empty", got)
	}
	tr.Observe("a:1", false)
	tr.Observe("b:1", false)
	tr.Observe("b:1", true)
	if got, want := tr.States(), map[string]bool{"a:1": false, "b:1": true}; !maps.Equal(got, want) {
		t.Fatalf("States() = %v, want %v", got, want)
	}

	mc, err := memclient.New("a:1", "c:1")
	if err != nil {
		t.Fatal(err)
	}
	defer mc.Close()
	tr.Watch(mc)
	tr.Watch(mc) // twice is once
	if got, want := tr.States(), map[string]bool{"a:1": true, "b:1": true, "c:1": true}; !maps.Equal(got, want) {
		t.Fatalf("watching: States() = %v, want %v", got, want)
	}
	tr.Unwatch(mc)
	if got, want := tr.States(), map[string]bool{"a:1": false, "b:1": true}; !maps.Equal(got, want) {
		t.Fatalf("unwatched: States() = %v, want %v", got, want)
	}
	tr.Watch(mc)
	tr.Reset()
	if got := tr.States(); len(got) != 0 {
		t.Fatalf("after Reset: States() = %v, want empty", got)
	}
}
