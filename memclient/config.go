package memclient

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Defaults for the Config fields whose zero value means "use the default".
const (
	DefaultTimeout           = time.Second
	DefaultDialTimeout       = time.Second
	DefaultMaxConnsPerServer = 4
	DefaultMaxItemSize       = 1 << 20
	DefaultRetryInterval     = time.Second
	DefaultMaxRetryInterval  = 30 * time.Second
	DefaultFailureThreshold  = 3
	DefaultGutterTTL         = 10 * time.Second
	DefaultMaxPendingDeletes = 100_000
)

// Distribution selects how keys are spread over servers.
type Distribution int

const (
	// DistributionKetama is libmemcached's weighted ketama consistent
	// hashing (MD5, 160 points per server scaled by weight), the same as
	// pylibmc with ketama_weighted and twemproxy with ketama/md5.
	DistributionKetama Distribution = iota
	// DistributionModula is python-memcached's: crc32-based hash modulo a
	// bucket list in which each server appears weight times.
	DistributionModula
	// DistributionRendezvous is pymemcache's HashClient default placement:
	// rendezvous (highest random weight) hashing, each server scored by
	// murmur3_32 (seed 0) of "host:port-key", the highest score winning. A
	// pymemcache HashClient given the same servers, in any order, places
	// str keys where memkit does (it places a bytes key by its repr,
	// "b'key'", elsewhere than the same key as str). It has no weights
	// (Server.Weight must be 0 or 1) and takes no Hash.
	DistributionRendezvous
	// DistributionLibmemcachedModula is libmemcached's default placement:
	// hash(key) modulo the number of servers, with libmemcached's default
	// one-at-a-time hash (or the Hash given). It is what pylibmc and
	// php-memcached do unless ketama is turned on, and what libmemcached's
	// own tools (memcp, memcat, ...) always do. Servers must be listed in
	// the same order; it has no weights (Server.Weight must be 0 or 1).
	DistributionLibmemcachedModula
)

func (d Distribution) String() string {
	switch d {
	case DistributionKetama:
		return "ketama"
	case DistributionModula:
		return "modula"
	case DistributionRendezvous:
		return "rendezvous"
	case DistributionLibmemcachedModula:
		return "libmemcached-modula"
	}
	return "Distribution(" + strconv.Itoa(int(d)) + ")"
}

// Hash selects the hash of keys for the distributions that let it be
// chosen: DistributionKetama and DistributionLibmemcachedModula. Both
// peers' hashes read a key's bytes as C chars, which are signed on x86-64
// (the build these are checked against): bytes from 0x80 up enter
// fnv1a_64 and one-at-a-time sign-extended, as they do here.
type Hash int

const (
	// HashDefault is the distribution's own hash: MD5 for ketama,
	// one-at-a-time for libmemcached's modula.
	HashDefault Hash = iota
	// HashMD5 is libmemcached's and twemproxy's md5: the first four bytes
	// of MD5(key), little-endian (twemproxy's "hash: md5").
	HashMD5
	// HashFNV1a64 is libmemcached's and twemproxy's fnv1a_64: the low 32
	// bits of 64-bit FNV-1a (twemproxy's "hash: fnv1a_64", its default).
	HashFNV1a64
)

func (h Hash) String() string {
	switch h {
	case HashDefault:
		return "default"
	case HashMD5:
		return "md5"
	case HashFNV1a64:
		return "fnv1a_64"
	}
	return "Hash(" + strconv.Itoa(int(h)) + ")"
}

// Protocol selects the wire protocol.
type Protocol int

const (
	// ProtocolMeta is memcached's meta protocol (mg, ms, md, ma, mn),
	// memcached >= 1.6.10. It supports leases (GetLease, Invalidate).
	ProtocolMeta Protocol = iota
	// ProtocolText is the classic text protocol, for proxies and older
	// servers. Its replies carry no token: a VALUE is checked against the
	// keys asked for and every reply against the kinds its command can
	// get, but a reply of the right kind shifted onto the next request (a
	// duplicated or lost STORED, DELETED, NOT_FOUND or number, or an END
	// for a multi-key get that found nothing) goes unnoticed until a reply
	// of the wrong kind shows the stream out of step. It can report a wrong
	// outcome; it never returns a value under another key.
	ProtocolText
)

func (p Protocol) String() string {
	switch p {
	case ProtocolMeta:
		return "meta"
	case ProtocolText:
		return "text"
	}
	return "Protocol(" + strconv.Itoa(int(p)) + ")"
}

// Server is one memcached server and its weight.
type Server struct {
	Addr   string // "host:port"
	Weight int    // relative share of keys; 0 means 1
	// Name, when set, names the server on the ketama ring in place of
	// host:port, as a twemproxy configuration does with
	// "host:port:weight name"; DistributionKetama only.
	Name string
}

// Config configures a Client. The zero value of every field but Servers
// means its default.
type Config struct {
	Servers      []Server
	Distribution Distribution // default DistributionKetama
	Hash         Hash         // key hash for Distribution; default HashDefault, the distribution's own
	Protocol     Protocol     // default ProtocolMeta

	// Timeout bounds each call: waiting for a connection, writing, and the
	// reply. A context deadline that comes earlier wins. 0 means
	// DefaultTimeout.
	Timeout time.Duration
	// DialTimeout bounds connecting (and the TLS handshake and auth). A
	// dial is shared by the callers waiting for it and outlives any one
	// of them; each waits no longer than its own Timeout or deadline.
	// 0 means DefaultDialTimeout.
	DialTimeout time.Duration
	// MaxConnsPerServer bounds the connections to one server. Concurrent
	// requests are pipelined over the first one; another is opened only
	// while those before it carry more than about 64 KB of requests and
	// expected replies (large values stored or read, a Get counted at the
	// size of the values its server has been returning; very deep
	// pipelines). 0 means DefaultMaxConnsPerServer.
	MaxConnsPerServer int
	// MaxItemSize is the largest value accepted; larger ones fail with
	// ErrValueTooLarge before anything is written, and larger ones read
	// back fail their key with ErrValueTooLarge without being held. A reply
	// announcing more than max(16 MiB, 4 x MaxItemSize) closes the
	// connection. 0 means DefaultMaxItemSize (memcached's default -I 1m).
	MaxItemSize int

	// TLS, when set, connects with TLS.
	TLS *tls.Config
	// Username and Password, when Username is set, authenticate every new
	// connection with memcached's ASCII auth (memcached -Y): a set whose
	// data is "user password". It is sent with an exptime in the past, so
	// a server without auth keeps nothing readable; it crosses the network
	// in clear text unless TLS is set.
	Username, Password string

	// FailureThreshold is how many consecutive failures (refused or broken
	// connections, timeouts) mark a server down. 0 means
	// DefaultFailureThreshold.
	FailureThreshold int
	// RetryInterval is how long a server stays down before the first
	// background probe; it doubles after each failed probe up to
	// MaxRetryInterval. 0 means DefaultRetryInterval / DefaultMaxRetryInterval.
	RetryInterval, MaxRetryInterval time.Duration
	// Failover sends the keys of a down server to the next live one (ketama:
	// the next point on the ring; modula: python-memcached's rehash chain)
	// instead of failing them with ErrServerUnavailable. Off by default:
	// the moved keys add their load to a neighbour already carrying its
	// own, and after the server comes back its keys may hold values older
	// than the ones written during the failover. Gutter is the recommended
	// way to survive a lost server; with a Gutter, Failover is ignored.
	Failover bool

	// Gutter is a pool of spare servers, on a ring of their own, that take
	// the keys of a server that is down ("Scaling Memcache at Facebook",
	// §3.3): reads that find no live owner, or whose owner fails or does
	// not answer within half the call's time (the other half is the
	// gutter's), go there, and so do writes, with every TTL clamped to
	// GutterTTL, so that a cache-aside application keeps a working cache
	// instead of sending every read of the lost server's keys to its
	// database. Increment,
	// Decrement, Append, Prepend and CompareAndSwap never go there (they
	// fail with ErrServerUnavailable): a counter restarted in an empty
	// gutter would be wrong. Every key written, deleted or invalidated
	// while its server was bypassed is owed to that server as a delete,
	// replayed before it serves again (see MaxPendingDeletes). ServerStatus
	// lists gutter servers after the others, with Gutter set.
	Gutter []Server
	// GutterTTL bounds the TTL of everything stored in the gutter (0 and
	// negative TTLs, never expiring elsewhere, included), and so the age of
	// any value served from it: values go there with a TTL a second
	// shorter (from 2 s up), since memcached's clock ticks once a second
	// and may keep an item a little past its TTL. 0 means
	// DefaultGutterTTL.
	GutterTTL time.Duration
	// Replicas is how many distinct servers hold each key: its own and
	// the next ones on the ring. 0 or 1 means one copy. With more, writes,
	// deletes and touches go to every live replica in parallel and succeed
	// when all do (the error names those that failed; one that was down is
	// owed a delete); reads go to one replica chosen at random, so that a
	// hot key's reads spread, and fall back to another when it fails or
	// misses. Add, Replace and CompareAndSwap decide on one replica (the
	// first live one; for CompareAndSwap the one that served the item,
	// since CAS values are per server) and then copy the value to the
	// others with a set, which may lag for a moment; leases stay on the
	// first live replica; Increment, Decrement, Append and Prepend go to
	// every live replica. A key goes to the gutter only when none of its
	// replicas is live.
	Replicas int
	// WarmUp, when positive, warms new servers after SetServers: for that
	// long a miss on a key whose server changed reads its previous server
	// and, on a hit, adds the value to the new one (mcrouter's
	// WarmUpRoute), and deletes, invalidations and sets also delete the key
	// on its previous server, so that warm-up never brings back a value
	// deleted or overwritten meanwhile. Servers removed by SetServers stay
	// connected until the warm-up ends.
	WarmUp time.Duration
	// MaxPendingDeletes bounds, per server, the deletes owed to it: keys
	// written, deleted or invalidated while it was bypassed, or whose
	// delete or invalidation failed. They are replayed before the server
	// serves again; past the bound, the server is flushed instead
	// (ServerStatus counts the keys that overflowed). 0 means
	// DefaultMaxPendingDeletes.
	MaxPendingDeletes int
	// Observer, when set, is told of every operation and every server
	// marked down or up (see Observer); nil costs nothing.
	Observer Observer
	// Logger, when set, logs servers marked down (Warn, with the reason)
	// and back up (Info). The client logs nothing else, and never keys or
	// values.
	Logger *slog.Logger

	// BehindProxy says the servers are twemproxy (nutcracker) or another
	// proxy that speaks the text protocol but not all of it: it requires
	// ProtocolText. Commands such a proxy does not pass (GetAndTouch,
	// GetLease, Invalidate, FlushAll, Stats, and ASCII auth) then fail with
	// ErrNotSupported before anything is sent, leaving the connection as
	// it was, and health probes use a get, which it answers.
	BehindProxy bool
}

func (c *Config) gutterTTL() time.Duration {
	if c.GutterTTL > 0 {
		return c.GutterTTL
	}
	return DefaultGutterTTL
}

func (c *Config) maxPendingDeletes() int {
	if c.MaxPendingDeletes > 0 {
		return c.MaxPendingDeletes
	}
	return DefaultMaxPendingDeletes
}

func (c *Config) replicas() int {
	return max(c.Replicas, 1)
}

func (c *Config) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return DefaultTimeout
}

func (c *Config) dialTimeout() time.Duration {
	if c.DialTimeout > 0 {
		return c.DialTimeout
	}
	return DefaultDialTimeout
}

func (c *Config) maxConns() int {
	if c.MaxConnsPerServer > 0 {
		return c.MaxConnsPerServer
	}
	return DefaultMaxConnsPerServer
}

func (c *Config) maxItemSize() int {
	if c.MaxItemSize > 0 {
		return c.MaxItemSize
	}
	return DefaultMaxItemSize
}

func (c *Config) failureThreshold() int {
	if c.FailureThreshold > 0 {
		return c.FailureThreshold
	}
	return DefaultFailureThreshold
}

func (c *Config) retryInterval() time.Duration {
	if c.RetryInterval > 0 {
		return c.RetryInterval
	}
	return DefaultRetryInterval
}

func (c *Config) maxRetryInterval() time.Duration {
	if c.MaxRetryInterval > 0 {
		return c.MaxRetryInterval
	}
	return DefaultMaxRetryInterval
}

// ParseServer parses "host:port" or "host:port:weight", optionally
// followed by a space and a name, as twemproxy configurations name servers:
// "10.0.0.1:11211:1 cache-a" (see Server.Name). IPv6 hosts are written in
// brackets: "[::1]:11211:2".
func ParseServer(s string) (Server, error) {
	if s == "" {
		return Server{}, errors.New("memclient: empty server address")
	}
	spec, name := s, ""
	if i := strings.IndexFunc(s, unicode.IsSpace); i >= 0 {
		spec, name = s[:i], strings.TrimSpace(s[i:])
		if name == "" || strings.ContainsFunc(name, badNameRune) {
			return Server{}, fmt.Errorf("memclient: bad server name in %q (one word after the address)", s)
		}
	}
	addr, weight := spec, 1
	if i := strings.LastIndexByte(spec, ':'); i >= 0 {
		// host:port:weight has two colons outside brackets.
		rest := spec[:i]
		if j := strings.LastIndexByte(rest, ':'); j >= 0 && !strings.HasSuffix(rest, "]") && strings.LastIndexByte(rest, ']') < j {
			w, err := strconv.Atoi(spec[i+1:])
			if err != nil || w < 1 {
				return Server{}, fmt.Errorf("memclient: bad weight in %q", s)
			}
			addr, weight = rest, w
		}
	}
	host, port, ok := splitHostPort(addr)
	if !ok || host == "" || port == "" {
		return Server{}, fmt.Errorf("memclient: bad server address %q (want host:port or host:port:weight, then optionally a space and a name)", s)
	}
	if p, err := strconv.Atoi(port); err != nil || p <= 0 || p > 65535 {
		return Server{}, fmt.Errorf("memclient: bad port in %q", s)
	}
	return Server{Addr: addr, Weight: weight, Name: name}, nil
}

// badNameRune reports the runes a server name cannot hold: spaces and
// control characters (twemproxy takes the name to end at a space) and the
// comma that separates servers in ParseServers.
func badNameRune(r rune) bool {
	return unicode.IsSpace(r) || unicode.IsControl(r) || r == ','
}

// ParseServers parses a comma-separated list of servers as ParseServer
// takes them, as a -memcached flag gives them: "a:11211,b:11211:2 cache-b". Blank
// entries are skipped; an empty list gives no servers.
func ParseServers(list string) ([]Server, error) {
	var out []Server
	for _, f := range strings.Split(list, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		s, err := ParseServer(f)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func splitHostPort(addr string) (host, port string, ok bool) {
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		return "", "", false
	}
	host, port = addr[:i], addr[i+1:]
	if strings.HasPrefix(host, "[") {
		if !strings.HasSuffix(host, "]") {
			return "", "", false
		}
		host = host[1 : len(host)-1]
	} else if strings.Contains(host, ":") {
		return "", "", false
	}
	return host, port, true
}

func (s Server) weight() int {
	if s.Weight <= 0 {
		return 1
	}
	return s.Weight
}
