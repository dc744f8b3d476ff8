package main

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"time"
)

// cacheCounters are the object cache's counters, for /debug/cache.
type cacheCounters struct {
	Hits       uint64            `json:"hits"`
	Misses     uint64            `json:"misses"`
	Loads      uint64            `json:"loads"`
	LoadErrors uint64            `json:"load_errors"`
	HitRatio   string            `json:"hit_ratio"`
	Extra      map[string]uint64 `json:"extra,omitempty"` // objcache's other counters
}

// ExtraNames returns the names of the Extra counters, sorted.
func (c cacheCounters) ExtraNames() []string {
	return slices.Sorted(maps.Keys(c.Extra))
}

// serverInfo is one memcached server's "stats" and the client's view of it.
type serverInfo struct {
	Addr        string `json:"addr"`
	Weight      int    `json:"weight"`
	State       string `json:"state"` // up, down (the client marked it), or error (stats failed)
	Items       uint64 `json:"curr_items"`
	GetHits     uint64 `json:"get_hits"`
	GetMisses   uint64 `json:"get_misses"`
	HitRatio    string `json:"hit_ratio"`
	Evictions   uint64 `json:"evictions"`
	Connections uint64 `json:"curr_connections"`
	Memory      string `json:"memory"`
	Requests    uint64 `json:"client_requests"`
	Errors      uint64 `json:"client_errors"`
	Timeouts    uint64 `json:"client_timeouts"`
	LastError   string `json:"last_error,omitempty"`
}

// debugInfo is the /debug/cache page.
type debugInfo struct {
	Mode      string        `json:"mode"`
	Cache     cacheCounters `json:"cache"`
	DBQueries int64         `json:"db_queries"`
	Servers   []serverInfo  `json:"servers"`
}

// debugCache is GET /debug/cache: the object cache's counters, the number
// of database queries run, and each memcached server's stats, like
// `watch "echo stats | nc host port"` for the whole cluster. HTML by
// default, JSON with ?format=json.
func (a *app) debugCache(w http.ResponseWriter, r *http.Request) {
	info := a.debugInfo(r.Context())
	if r.URL.Query().Get("format") == "json" {
		writeJSON(w, http.StatusOK, info)
		return
	}
	a.render(w, r, "debug", info)
}

func (a *app) debugInfo(ctx context.Context) debugInfo {
	info := debugInfo{DBQueries: a.db.Queries(), Servers: []serverInfo{}}
	if a.cache == nil {
		info.Mode = "in-process memo, no memcached"
		info.Cache = cacheCounters{Hits: a.local.hits.Load(), Misses: a.local.misses.Load(),
			Loads: a.local.loads.Load(), LoadErrors: a.local.loadErrors.Load()}
		info.Cache.HitRatio = ratio(info.Cache.Hits, info.Cache.Misses)
		return info
	}
	info.Mode = "objcache on memcached"
	st := a.cache.Stats()
	info.Cache = cacheCounters{Hits: st.Hits, Misses: st.Misses, Loads: st.Loads, LoadErrors: st.LoadErrors,
		HitRatio: ratio(st.Hits, st.Misses), Extra: map[string]uint64{
			"stale served": st.StaleServed, "lease waits": st.LeaseWaits, "decode errors": st.DecodeErrors,
			"coalesced": st.Coalesced, "early refreshes": st.Refreshes, "negative hits": st.NegativeHits,
			"memcached errors": st.Errors,
		}}

	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	stats, _ := a.client.Stats(ctx) // servers that failed are missing; their status says why
	for _, ss := range a.client.ServerStatus() {
		si := serverInfo{Addr: ss.Addr, Weight: ss.Weight, State: "up", Requests: ss.Requests,
			Errors: ss.Errors, Timeouts: ss.Timeouts, LastError: ss.LastError}
		m, ok := stats[ss.Addr]
		switch {
		case !ss.Up:
			si.State = "down since " + ss.DownSince.Format(time.TimeOnly)
		case !ok:
			si.State = "error"
		}
		if ok {
			n := func(k string) uint64 { v, _ := strconv.ParseUint(m[k], 10, 64); return v }
			si.Items, si.GetHits, si.GetMisses = n("curr_items"), n("get_hits"), n("get_misses")
			si.Evictions, si.Connections = n("evictions"), n("curr_connections")
			si.HitRatio = ratio(si.GetHits, si.GetMisses)
			si.Memory = size(n("bytes")) + " / " + size(n("limit_maxbytes"))
		}
		info.Servers = append(info.Servers, si)
	}
	return info
}

// size formats a byte count for people.
func size(b uint64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(b)/(1<<10))
	}
	return fmt.Sprintf("%d B", b)
}

func ratio(hits, misses uint64) string {
	if hits+misses == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(hits)/float64(hits+misses))
}
