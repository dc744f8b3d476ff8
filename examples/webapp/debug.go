package main

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// The /debug/cache dashboard: what the object cache counts, what each
// memcached server says of itself, and the recorder's charts.

// cacheCounters are the object cache's counters (objcache.Stats; in the
// in-memory mode, the local memo's, which counts hits, misses, loads,
// load errors and not-founds the same way).
type cacheCounters struct {
	Hits            uint64 `json:"hits"`
	Misses          uint64 `json:"misses"`
	Loads           uint64 `json:"loads"`
	LoadErrors      uint64 `json:"load_errors"` // loads that failed; a not-found is not one
	NotFound        uint64 `json:"not_found"`   // loads that found nothing (a missing product)
	NegativeHits    uint64 `json:"negative_hits"`
	StaleServed     uint64 `json:"stale_served"`
	FailSafeServed  uint64 `json:"failsafe_served"`
	LeaseWaits      uint64 `json:"lease_waits"`
	Coalesced       uint64 `json:"coalesced"`
	Refreshes       uint64 `json:"early_refreshes"`
	DecodeErrors    uint64 `json:"decode_errors"`
	Errors          uint64 `json:"memcached_errors"`
	BatchLoads      uint64 `json:"batch_loads"`
	BatchKeys       uint64 `json:"batch_keys"`
	BackgroundLoads uint64 `json:"background_loads"`
	// HitRatio is the application's: hits / (hits + misses), 0 to 1; null
	// before the first lookup. Negative hits and stale values served are
	// counted apart.
	HitRatio *float64 `json:"hit_ratio"`
}

// memcachedTotals are the servers' own get counters, summed.
type memcachedTotals struct {
	GetHits   uint64   `json:"get_hits"`
	GetMisses uint64   `json:"get_misses"`
	HitRatio  *float64 `json:"hit_ratio"` // get_hits / (get_hits + get_misses), 0 to 1
	Note      string   `json:"note"`
}

// leaseNote says why memcached's hit ratio is not the application's.
const leaseNote = "memcached counts a lease lookup that finds no value and leaves a placeholder " +
	"(a miss for objcache, which then loads the value) as a get hit, so its ratio reads higher than the application's."

// serverInfo is one memcached server: its "stats" and the client's view
// of it.
type serverInfo struct {
	Addr   string `json:"addr"`
	Weight int    `json:"weight"`
	Gutter bool   `json:"gutter,omitempty"`
	// Up is the client's view: false while it has the server marked down.
	Up bool `json:"up"`
	// State is "up", "down" (the client marked it down) or "no stats"
	// (the client has it up but its stats failed).
	State     string     `json:"state"`
	DownSince *time.Time `json:"down_since,omitempty"`
	LastError string     `json:"last_error,omitempty"`
	// From the server's stats (zero when they failed).
	Items       uint64   `json:"curr_items"`
	GetHits     uint64   `json:"get_hits"`
	GetMisses   uint64   `json:"get_misses"`
	HitRatio    *float64 `json:"hit_ratio"` // get_hits / (get_hits + get_misses); null without gets
	Evictions   uint64   `json:"evictions"`
	Connections uint64   `json:"curr_connections"`
	Bytes       uint64   `json:"bytes"`
	LimitBytes  uint64   `json:"limit_maxbytes"`
	Uptime      uint64   `json:"uptime_seconds"`
	Version     string   `json:"version,omitempty"`
	// The client's counters.
	Requests uint64 `json:"client_requests"`
	Errors   uint64 `json:"client_errors"`
	Timeouts uint64 `json:"client_timeouts"`
}

// debugInfo is GET /debug/cache?format=json.
type debugInfo struct {
	Mode      string           `json:"mode"` // "memcached" or "in-memory"
	Time      time.Time        `json:"time"`
	Cache     cacheCounters    `json:"cache"`
	DBQueries int64            `json:"db_queries"`
	Memcached *memcachedTotals `json:"memcached,omitempty"`
	Servers   []serverInfo     `json:"servers"`
	Series    series           `json:"series"`
}

// debugCache is GET /debug/cache: the dashboard (HTML), its live part
// alone (?part=live, which the page's script fetches every second), or
// everything as JSON (?format=json).
func (a *app) debugCache(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	info := a.debugInfo(r.Context())
	q := r.URL.Query()
	switch {
	case q.Get("format") == "json":
		writeJSON(w, http.StatusOK, info)
	case q.Get("part") == "live":
		a.renderPart(w, r, "live", newDashboard(info))
	default:
		a.render(w, r, "debug", newDashboard(info))
	}
}

func (a *app) debugInfo(ctx context.Context) debugInfo {
	info := debugInfo{Time: time.Now().UTC(), DBQueries: a.db.Queries(), Servers: []serverInfo{}, Series: a.rec.series()}
	if a.cache == nil {
		info.Mode = "in-memory"
		l := a.local
		info.Cache = cacheCounters{Hits: l.hits.Load(), Misses: l.misses.Load(), Loads: l.loads.Load(),
			LoadErrors: l.loadErrors.Load(), NotFound: l.notFound.Load()}
		info.Cache.HitRatio = ratio(info.Cache.Hits, info.Cache.Misses)
		return info
	}
	info.Mode = "memcached"
	st := a.cache.Stats()
	info.Cache = cacheCounters{Hits: st.Hits, Misses: st.Misses, Loads: st.Loads, LoadErrors: st.LoadErrors,
		NotFound: st.NotFound, NegativeHits: st.NegativeHits, StaleServed: st.StaleServed,
		FailSafeServed: st.FailSafeServed, LeaseWaits: st.LeaseWaits, Coalesced: st.Coalesced,
		Refreshes: st.Refreshes, DecodeErrors: st.DecodeErrors, Errors: st.Errors,
		BatchLoads: st.BatchLoads, BatchKeys: st.BatchKeys, BackgroundLoads: st.BackgroundLoads,
		HitRatio: ratio(st.Hits, st.Misses)}

	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	stats, _ := a.client.Stats(ctx) // servers that failed are missing; their status says why
	totals := &memcachedTotals{Note: leaseNote}
	for _, ss := range a.client.ServerStatus() {
		si := serverInfo{Addr: ss.Addr, Weight: max(ss.Weight, 1), Gutter: ss.Gutter, Up: ss.Up, State: "up",
			LastError: ss.LastError, Requests: ss.Requests, Errors: ss.Errors, Timeouts: ss.Timeouts}
		m, ok := stats[ss.Addr]
		switch {
		case !ss.Up:
			si.State = "down"
			since := ss.DownSince.UTC()
			si.DownSince = &since
		case !ok:
			si.State = "no stats"
		}
		if ok {
			n := func(k string) uint64 { v, _ := strconv.ParseUint(m[k], 10, 64); return v }
			si.Items, si.GetHits, si.GetMisses = n("curr_items"), n("get_hits"), n("get_misses")
			si.Evictions, si.Connections = n("evictions"), n("curr_connections")
			si.Bytes, si.LimitBytes, si.Uptime, si.Version = n("bytes"), n("limit_maxbytes"), n("uptime"), m["version"]
			si.HitRatio = ratio(si.GetHits, si.GetMisses)
			totals.GetHits += si.GetHits
			totals.GetMisses += si.GetMisses
		}
		info.Servers = append(info.Servers, si)
	}
	totals.HitRatio = ratio(totals.GetHits, totals.GetMisses)
	info.Memcached = totals
	return info
}

// ratio is hits/(hits+misses), or nil with neither.
func ratio(hits, misses uint64) *float64 {
	if hits+misses == 0 {
		return nil
	}
	r := float64(hits) / float64(hits+misses)
	return &r
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
