// Package serverwatch is a test helper of the metrics adapters: a
// client's Observer that also hears of every server event, so that a test
// waits for a server to go down or up on it instead of polling.
package serverwatch

import (
	"context"
	"testing"
	"time"

	"github.com/memkit/memkit/memclient"
)

// Watch is a memclient.Observer that passes every report to its
// Observer and every server event, besides, to Events.
type Watch struct {
	memclient.Observer
	Events chan memclient.ServerEvent
}

// New returns a Watch of obs, with room for 100 unheard events.
func New(obs memclient.Observer) Watch {
	return Watch{obs, make(chan memclient.ServerEvent, 100)}
}

// ObserveServer tells the Observer, then Events unless it is full; part
// of memclient.Observer.
func (w Watch) ObserveServer(ctx context.Context, ev memclient.ServerEvent) {
	w.Observer.ObserveServer(ctx, ev)
	select {
	case w.Events <- ev:
	default: // nobody listens any more: never block the client
	}
}

// Await waits for a server event about addr with the given state,
// running poke (traffic that makes the client notice) while it waits. It
// stops t (Fatal) after 20 seconds without one.
func (w Watch) Await(t testing.TB, addr string, up bool, poke func()) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		poke()
		select {
		case ev := <-w.Events:
			if ev.Server == addr && ev.Up == up {
				return
			}
		case <-deadline:
			t.Fatalf("no event: server %s up=%v", addr, up)
		default:
		}
	}
}
