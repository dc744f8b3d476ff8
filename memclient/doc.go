// Package memclient is a memcached client: the meta protocol by default
// (the classic text protocol as an option), concurrent requests pipelined
// over one connection per server, consistent hashing over weighted servers
// compatible with libmemcached and python-memcached, and failure handling
// that fails fast on a dead server.
//
// It works the python-memcached way: Set, Get, Add, Replace, Append,
// Prepend, GetMulti and SetMulti, Increment and Decrement, gets/cas through
// Get and CompareAndSwap, Stats. Every call takes a context first and
// returns no later than its deadline or Config.Timeout, whichever comes
// first, waiting for a connection to be made included.
//
// # Keys and values
//
// Keys are 1 to 250 bytes with no space, control character or DEL (UTF-8 is
// fine); anything else fails with ErrMalformedKey before a byte is written,
// so no key can inject protocol. Values over Config.MaxItemSize fail with
// ErrValueTooLarge, as do values the server refuses as too large, and
// values read back that are larger (another client may store them on a
// server started with a bigger -I): such a value is read past through a
// fixed buffer, never held, and fails only its own key. Item flags are
// opaque here; package serializer gives them a meaning.
//
// TTLs: 0 and negative never expire; sub-second TTLs round up to a
// second; over 30 days they are sent as an absolute Unix time, which
// memcached holds in 32 bits, so a TTL reaching past 2038-01-19 03:14:07
// UTC expires then.
//
// # Pipelining
//
// Callers append their requests to a connection's buffer and one writer
// at a time writes what has gathered: a lone caller its own request at
// once, or, with others active, the connection's flusher goroutine, which
// lets the runnable callers add theirs first and so writes many requests
// per write(2). Replies come back in order and are read by a waiting
// caller, which hands each to its request until its own arrives: a lone caller writes and
// reads like a blocking client, and under load one read(2) serves many
// requests. A second connection to a server (up to MaxConnsPerServer) opens
// only while large values or a very deep pipeline load the first. A caller
// whose context ends abandons its request; its reply is read and dropped
// later, so the connection stays in step. A connection from which nothing
// comes while requests wait on it is closed and replaced; a pause of the
// client process does not count, since the replies that came meanwhile
// are waiting in the socket. Callers that need a connection being made
// share one dial, bounded by Config.DialTimeout, and wait for it no longer
// than their own deadline.
//
// # Every reply is checked
//
// On the meta protocol every request carries an opaque token that its
// reply must echo; a reply that carries none (an error line, or the reply
// to the classic gets that GetMulti sends) is accepted only once a reply
// after it shows the stream in step. On the text protocol
// a VALUE must name a key its request asked for, in order, and every reply
// must be of a kind its command can get (ProtocolText says what that
// cannot catch). A reply that fails these checks is ErrProtocol: the
// connection is closed and its requests fail. A server or proxy that
// sends one reply too many or too few can make calls fail; it cannot make
// one key's value come back under another key.
//
// # Failures
//
// Errors name the server. Timeouts match context.DeadlineExceeded (and
// report Timeout() true when Config.Timeout, not the caller's deadline,
// ran out); error lines from the server are *ServerError. A server that
// fails Config.FailureThreshold times in a row (refused, reset or stuck
// connections) is marked down: its keys fail at once with an error matching
// ErrServerUnavailable until a background probe, retried with backoff,
// finds it answering again. A delete or invalidation that fails (the
// server may be only unreachable: a partition, a SIGSTOP) is owed to the
// server, which serves nothing until it has replayed it, so that it never
// serves a value the application deleted. Multi-key calls return what the
// live servers had together with a MultiError naming the keys that
// failed. ServerStatus reports each server's health and counters.
//
// # Surviving a lost server
//
// Config.Gutter, the recommended mode, is Facebook's gutter pool: the keys
// of a server that is down, or that fails a read, go to spare servers with
// every TTL clamped to Config.GutterTTL, so a cache-aside application
// keeps a cache instead of sending all those reads to its database; what
// was written there is owed to the server as deletes, replayed before it
// serves again. Config.Replicas keeps each key on several servers.
// Config.WarmUp warms new servers after SetServers from the ones their keys
// lived on. Config.Failover, which moves a dead server's keys onto its live
// neighbours, is kept for python-memcached's behaviour. Config.BehindProxy
// makes the client work through twemproxy.
package memclient
