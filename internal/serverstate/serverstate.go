// Package serverstate is the bookkeeping behind the server-up gauge of
// the metrics adapters (adapters/prometheus and adapters/otel): which
// servers the ServerEvents said were up or down, which clients are
// watched, and the two merged at each collection.
package serverstate

import (
	"sync"

	"github.com/memkit/memkit/memclient"
)

// Tracker records the up or down state of each server, as ServerEvents
// give it, and the watched clients whose ServerStatus is read at each
// collection. The zero value is ready to use; it is safe for concurrent
// use.
type Tracker struct {
	mu      sync.Mutex                     // protects up and clients
	up      map[string]bool                // by server, from ServerEvents
	clients map[*memclient.Client]struct{} // watched: read at each collection
}

// Observe records that a ServerEvent reported server up or down.
func (t *Tracker) Observe(server string, up bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.up == nil {
		t.up = make(map[string]bool)
	}
	t.up[server] = up
}

// Watch makes States read mc.ServerStatus. mc must not be nil.
func (t *Tracker) Watch(mc *memclient.Client) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.clients == nil {
		t.clients = make(map[*memclient.Client]struct{})
	}
	t.clients[mc] = struct{}{}
}

// Unwatch stops States reading mc.ServerStatus. Its servers keep the
// state their last ServerEvent gave them, if any.
func (t *Tracker) Unwatch(mc *memclient.Client) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.clients, mc)
}

// Reset forgets the watched clients and the states ServerEvents gave.
func (t *Tracker) Reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	clear(t.clients)
	clear(t.up)
}

// States returns each known server's state: the ServerEvents seen,
// merged with the watched clients' ServerStatus, which wins (see merge).
// The clients are read without the Tracker's lock held.
func (t *Tracker) States() map[string]bool {
	t.mu.Lock()
	events := make(map[string]bool, len(t.up))
	for s, up := range t.up {
		events[s] = up
	}
	clients := make([]*memclient.Client, 0, len(t.clients))
	for mc := range t.clients {
		clients = append(clients, mc)
	}
	t.mu.Unlock()

	statuses := make([][]memclient.ServerStatus, 0, len(clients))
	for _, mc := range clients {
		statuses = append(statuses, mc.ServerStatus())
	}
	return merge(events, statuses)
}

// merge returns states (which it updates) with each server of statuses,
// one ServerStatus list per watched client, set to its status there: a
// watched client's status wins over a ServerEvent's, and a server that
// several watched clients share is up only when it is up in all of them.
func merge(states map[string]bool, statuses [][]memclient.ServerStatus) map[string]bool {
	watched := make(map[string]bool)
	for _, list := range statuses {
		for _, st := range list {
			if up, seen := watched[st.Addr]; seen {
				st.Up = st.Up && up
			}
			watched[st.Addr] = st.Up
		}
	}
	for s, up := range watched {
		states[s] = up
	}
	return states
}
