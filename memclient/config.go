package memclient

import (
	"crypto/tls"
	"errors"
	"fmt"
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
	// while those before it carry more than about 64 KB of requests (large
	// values, very deep pipelines). 0 means DefaultMaxConnsPerServer.
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
	// after the server comes back, its keys may hold values older than the
	// ones written during the failover.
	Failover bool
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
