package memclient

import (
	"cmp"
	"crypto/md5"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"
)

// selector maps keys to servers. It is immutable and safe for concurrent use.
type selector interface {
	// pick returns the index, into the servers slice given to newSelector, of the server owning key.
	pick(key string) int
	// pickLive returns the index of the server for key when servers for which down(i) is true cannot be used:
	// ketama walks on to the next point of the ring owned by a live server (so only the dead server's keys move);
	// modula follows python-memcached's rehash chain (hash(str(h) + str(i)) for i in 0..9, as memcache.py _get_server does);
	// rendezvous takes the best-scoring live server (as pymemcache does once it drops a dead one);
	// libmemcached's modula takes the next live server in list order.
	// It returns -1 when no live server is found.
	pickLive(key string, down func(int) bool) int
}

// newSelector builds the selector for d over servers, hashing keys with h
// where d lets the hash be chosen. Server weights of 0 count as 1.
func newSelector(d Distribution, h Hash, servers []Server) (selector, error) {
	if len(servers) == 0 {
		return nil, ErrNoServers
	}
	if len(servers) > math.MaxInt32 {
		return nil, errors.New("memclient: too many servers")
	}
	switch d {
	case DistributionKetama, DistributionModula, DistributionRendezvous, DistributionLibmemcachedModula:
	default:
		return nil, fmt.Errorf("memclient: unknown distribution %v", d)
	}
	if d != DistributionKetama {
		for _, s := range servers {
			if s.Name != "" {
				return nil, fmt.Errorf("memclient: server %s is named %q, but only the ketama distribution uses names (twemproxy's)", s.Addr, s.Name)
			}
		}
	}
	if d == DistributionRendezvous || d == DistributionLibmemcachedModula {
		for _, s := range servers {
			if s.weight() != 1 {
				return nil, fmt.Errorf("memclient: server %s has weight %d, but the %v distribution has no weights (as in the client it matches)", s.Addr, s.Weight, d)
			}
		}
	}
	switch d {
	case DistributionKetama:
		hash, err := keyHash(d, h, HashMD5)
		if err != nil {
			return nil, err
		}
		return newKetama(servers, hash)
	case DistributionLibmemcachedModula:
		hash, err := keyHash(d, h, hashOneAtATime)
		if err != nil {
			return nil, err
		}
		return newLibmemcachedModula(servers, hash), nil
	}
	if h != HashDefault {
		return nil, fmt.Errorf("memclient: the %v distribution has its own hash; Hash must be HashDefault, not %v", d, h)
	}
	if d == DistributionRendezvous {
		return newRendezvous(servers), nil
	}
	return newModula(servers)
}

// hashOneAtATime is libmemcached's default key hash, offered only as the
// default of DistributionLibmemcachedModula.
const hashOneAtATime Hash = -1

// keyHash returns the key hash h names for d, def for HashDefault.
func keyHash(d Distribution, h, def Hash) (func(string) uint32, error) {
	if h == HashDefault {
		h = def
	}
	switch h {
	case HashMD5:
		return md5Hash, nil
	case HashFNV1a64:
		return fnv1a64Hash, nil
	case hashOneAtATime:
		return oneAtATimeHash, nil
	}
	return nil, fmt.Errorf("memclient: unknown hash %v for the %v distribution", h, d)
}

// bytesOf returns the bytes of s without copying. The hash functions it is
// passed to only read them.
func bytesOf(s string) []byte {
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

// Ketama, as libmemcached 1.x builds it with MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED
// (update_continuum in libmemcached/hosts.cc) and twemproxy with
// "distribution: ketama" (ketama_update in nc_ketama.c).
const (
	ketamaPointsPerServer = 160 // MEMCACHED_POINTS_PER_SERVER_KETAMA
	ketamaPointsPerHash   = 4   // one MD5 digest gives four 32-bit points
	ketamaDefaultPort     = "11211"
	// ketamaMaxPointName is the longest point name twemproxy hashes whole:
	// it prints them into a buffer of KETAMA_MAX_HOSTLEN (86) bytes and
	// hashes the length snprintf reports, past the buffer when longer.
	ketamaMaxPointName = 85
)

// ketama is libmemcached's weighted continuum: a ring of 32-bit points, each
// owned by a server, sorted by value. A key belongs to the owner of the
// first point >= hash(key), wrapping to the first point; the hash is MD5's
// first four bytes (little-endian) unless another is chosen. It is
// immutable and safe for concurrent use.
//
// twemproxy builds the same ring (its server names drop the port on 11211
// too), with the server's name from its configuration, when it gives one,
// in place of "host:port" in the point names (Server.Name). Its points are
// always MD5; "hash:" picks the key hash alone.
type ketama struct {
	values  []uint32 // sorted point values
	owners  []int32  // owners[i] is the server index of values[i]
	servers int
	hash    func(string) uint32 // the key hash
}

func newKetama(servers []Server, hash func(string) uint32) (*ketama, error) {
	var total uint64
	for i, s := range servers {
		total += uint64(s.weight())
		if s.Name == "" {
			continue
		}
		if strings.ContainsFunc(s.Name, badNameRune) {
			return nil, fmt.Errorf("memclient: bad server name %q for %s (one word, as in a twemproxy configuration)", s.Name, s.Addr)
		}
		for _, o := range servers[:i] {
			if o.Name == s.Name {
				return nil, fmt.Errorf("memclient: servers %s and %s have the same name %q", o.Addr, s.Addr, s.Name)
			}
		}
	}
	k := &ketama{servers: len(servers), hash: hash}
	type point struct {
		value uint32
		owner int32
	}
	points := make([]point, 0, len(servers)*ketamaPointsPerServer)
	var name []byte
	for i, s := range servers {
		n := ketamaPoints(s.weight(), total, len(servers))
		prefix := ketamaName(s.Addr)
		if s.Name != "" {
			prefix = s.Name + "-"
		}
		for j := 0; j < n/ketamaPointsPerHash; j++ {
			name = strconv.AppendUint(append(name[:0], prefix...), uint64(j), 10)
			if s.Name != "" && len(name) > ketamaMaxPointName {
				return nil, fmt.Errorf("memclient: server name %q is too long: twemproxy hashes at most %d bytes of %q", s.Name, ketamaMaxPointName, name)
			}
			sum := md5.Sum(name)
			for x := 0; x < ketamaPointsPerHash; x++ {
				points = append(points, point{binary.LittleEndian.Uint32(sum[4*x:]), int32(i)})
			}
		}
	}
	if len(points) == 0 {
		return nil, errors.New("memclient: ketama continuum is empty")
	}
	// libmemcached's continuum_item_cmp: by value, then by server index, so
	// that the lookup below picks the lowest index among equal points.
	slices.SortFunc(points, func(a, b point) int {
		if c := cmp.Compare(a.value, b.value); c != 0 {
			return c
		}
		return cmp.Compare(a.owner, b.owner)
	})
	k.values = make([]uint32, len(points))
	k.owners = make([]int32, len(points))
	for i, p := range points {
		k.values[i], k.owners[i] = p.value, p.owner
	}
	return k, nil
}

// ketamaPoints is how many points a server of weight w gets out of total
// over n servers, with libmemcached's single-precision arithmetic:
//
//	float pct = (float) weight / (float) total_weight;
//	points = floor((float) (pct * 160 / 4 * (float) n + 0.0000000001F)) * 4;
//
// Every step is converted explicitly so that no step is fused or computed in
// higher precision: the float rounding decides whether a server gets 156 or
// 160 points, and so which keys it owns.
func ketamaPoints(w int, total uint64, n int) int {
	pct := float32(w) / float32(total)
	x := float32(pct * ketamaPointsPerServer)
	x = float32(x / ketamaPointsPerHash)
	x = float32(x * float32(n))
	x = float32(x + float32(0.0000000001))
	return int(math.Floor(float64(x))) * ketamaPointsPerHash
}

// ketamaName is the prefix of a server's point names: "host:port-" or, on
// memcached's default port, "host-". An IPv6 host is written without
// brackets, as libmemcached stores it. An address that is not host:port
// (a unix socket path) is named "path:0-", as libmemcached names sockets.
func ketamaName(addr string) string {
	host, port, ok := splitHostPort(addr)
	if !ok {
		return addr + ":0-"
	}
	if port == ketamaDefaultPort {
		return host + "-"
	}
	return host + ":" + port + "-"
}

// md5Hash is libhashkit's and twemproxy's md5 key hash: the first four
// bytes of MD5(key), little-endian.
func md5Hash(key string) uint32 {
	sum := md5.Sum(bytesOf(key))
	return binary.LittleEndian.Uint32(sum[:4])
}

// fnv1a64Hash is libhashkit's and twemproxy's fnv1a_64: 64-bit FNV-1a cut
// to 32 bits, which only the low 32 bits of its offset basis and prime
// reach. Each byte enters as (uint32_t) of a C char, signed on x86-64.
func fnv1a64Hash(key string) uint32 {
	h := uint32(0xcbf29ce484222325 & 0xffffffff)
	for i := 0; i < len(key); i++ {
		h ^= uint32(int32(int8(key[i])))
		h *= 0x100000001b3 & 0xffffffff
	}
	return h
}

// oneAtATimeHash is libhashkit's one-at-a-time (Jenkins), libmemcached's
// MEMCACHED_HASH_DEFAULT. Each byte enters as (uint32_t) of a C char,
// signed on x86-64.
func oneAtATimeHash(key string) uint32 {
	var h uint32
	for i := 0; i < len(key); i++ {
		h += uint32(int32(int8(key[i])))
		h += h << 10
		h ^= h >> 6
	}
	h += h << 3
	h ^= h >> 11
	h += h << 15
	return h
}

// search returns the index of the first point >= h, wrapping to 0 past the
// end (libmemcached's dispatch_host).
func (k *ketama) search(h uint32) int {
	lo, hi := 0, len(k.values)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if k.values[mid] < h {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo == len(k.values) {
		return 0
	}
	return lo
}

func (k *ketama) pick(key string) int {
	if k.servers == 1 {
		return 0 // libmemcached does not even hash with one server
	}
	return int(k.owners[k.search(k.hash(key))])
}

func (k *ketama) pickLive(key string, down func(int) bool) int {
	if k.servers == 1 {
		if down(0) {
			return -1
		}
		return 0
	}
	start := k.search(k.hash(key))
	// Walk the ring from the key's point, asking about each server once.
	// seen marks servers found down; it lives on the stack for up to 64
	// servers.
	var small [1]uint64
	seen := small[:]
	if k.servers > 64 {
		seen = make([]uint64, (k.servers+63)/64)
	}
	dead := 0
	n := len(k.values)
	for i := 0; i < n; i++ {
		j := start + i
		if j >= n {
			j -= n
		}
		o := k.owners[j]
		word, bit := o/64, uint64(1)<<(o%64)
		if seen[word]&bit != 0 {
			continue
		}
		if !down(int(o)) {
			return int(o)
		}
		seen[word] |= bit
		dead++
		if dead == k.servers {
			break
		}
	}
	return -1
}

// Modula, as python-memcached 1.58/1.59 does it (memcache.py Client._get_server).
const modulaRetries = 10 // Client._SERVER_RETRIES

// modula is python-memcached's bucket list: each server appears weight times
// in order, and a key goes to buckets[cmemcache_hash(key) % len(buckets)].
// The list is kept as cumulative weights, so a huge weight costs no memory.
// It is immutable and safe for concurrent use.
type modula struct {
	cum   []uint64 // cum[i] is the total weight of servers 0..i
	total uint64
}

func newModula(servers []Server) (*modula, error) {
	m := &modula{cum: make([]uint64, len(servers))}
	for i, s := range servers {
		m.total += uint64(s.weight())
		m.cum[i] = m.total
	}
	return m, nil
}

// modulaHash is python-memcached's cmemcache_hash:
// ((crc32(key) & 0xffffffff) >> 16) & 0x7fff, or 1 when that is 0.
func modulaHash(b []byte) uint32 {
	return foldCRC(crc32.ChecksumIEEE(b))
}

func foldCRC(crc uint32) uint32 {
	if h := (crc >> 16) & 0x7fff; h != 0 {
		return h
	}
	return 1
}

// crcSmall is crc32.ChecksumIEEE for the few bytes of a rehash, computed
// here so that the buffer holding them stays on the stack.
func crcSmall(b []byte) uint32 {
	crc := ^uint32(0)
	for _, c := range b {
		crc = crc32.IEEETable[byte(crc)^c] ^ crc>>8
	}
	return ^crc
}

// bucket returns the server owning bucket h % total.
func (m *modula) bucket(h uint32) int {
	b := uint64(h) % m.total
	lo, hi := 0, len(m.cum)
	for lo < hi { // first i with cum[i] > b
		mid := int(uint(lo+hi) >> 1)
		if m.cum[mid] <= b {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}

func (m *modula) pick(key string) int {
	return m.bucket(modulaHash(bytesOf(key)))
}

func (m *modula) pickLive(key string, down func(int) bool) int {
	h := modulaHash(bytesOf(key))
	var buf [24]byte
	for i := 0; i < modulaRetries; i++ {
		s := m.bucket(h)
		if !down(s) {
			return s
		}
		// serverhash = cmemcache_hash(str(serverhash) + str(i))
		b := strconv.AppendUint(buf[:0], uint64(h), 10)
		b = strconv.AppendInt(b, int64(i), 10)
		h = foldCRC(crcSmall(b))
	}
	return -1
}

// Rendezvous, as pymemcache 3.5's HashClient places keys by default
// (pymemcache/client/rendezvous.py and murmur3.py).
const (
	murmurC1 = 0xcc9e2d51
	murmurC2 = 0x1b873593
)

// rendezvous is pymemcache's RendezvousHash: every server scores a key with
// murmur3_32 (seed 0) of "<node>-<key>", node being "host:port" (the host
// without IPv6 brackets, the port in decimal, 11211 included) or a unix
// socket's path, and the highest score wins; on equal scores the greater
// node name does. Server order does not matter. It is immutable and safe
// for concurrent use.
//
// pymemcache hashes a Python str, reading the low byte of each code
// point: a key of ASCII is hashed as its bytes, a key of other UTF-8 text
// (pymemcache's allow_unicode_keys) as the low bytes of its characters. It
// hashes the key the caller gave, before its key_prefix is added, so a
// Python app with a key_prefix places "k" where memkit places "k", and
// stores it as prefix+"k".
type rendezvous struct {
	nodes    []string      // pymemcache's node names
	prefixes []murmurState // murmur3 state after "<node>-"
}

func newRendezvous(servers []Server) *rendezvous {
	r := &rendezvous{nodes: make([]string, len(servers)), prefixes: make([]murmurState, len(servers))}
	for i, s := range servers {
		r.nodes[i] = rendezvousNode(s.Addr)
		var buf [64]byte
		r.prefixes[i] = murmurState{}.write(pymemcacheBytes(r.nodes[i]+"-", buf[:0]))
	}
	return r
}

// rendezvousNode is the name pymemcache's HashClient gives a server:
// "%s:%s" % (host, port).
func rendezvousNode(addr string) string {
	host, port, ok := splitHostPort(addr)
	if !ok {
		return addr // a unix socket path
	}
	if p, err := strconv.Atoi(port); err == nil {
		port = strconv.Itoa(p)
	}
	return host + ":" + port
}

func (r *rendezvous) pick(key string) int { return r.best(key, nil) }

// pickLive scores only the live servers, as pymemcache does once it has
// removed a dead server from its hasher: only the dead server's keys move.
func (r *rendezvous) pickLive(key string, down func(int) bool) int { return r.best(key, down) }

func (r *rendezvous) best(key string, down func(int) bool) int {
	var buf [256]byte
	b := pymemcacheBytes(key, buf[:0])
	win, high := -1, uint32(0)
	for i := range r.prefixes {
		if down != nil && down(i) {
			continue
		}
		score := r.prefixes[i].write(b).sum()
		if win < 0 || score > high || (score == high && r.nodes[i] > r.nodes[win]) {
			win, high = i, score
		}
	}
	return win
}

// pymemcacheBytes appends to buf, and returns, what pymemcache's
// murmur3_32 reads of s: s itself when it is ASCII, else the low byte of
// each character's code point. A byte that is not part of valid UTF-8
// (which no Python str key can hold) is read as itself.
func pymemcacheBytes(s string, buf []byte) []byte {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return bytesOf(s)
	}
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			r = rune(s[i])
		}
		buf = append(buf, byte(r))
		i += n
	}
	return buf
}

// murmurState is MurmurHash3_x86_32 part way through its input: h after
// the whole 4-byte blocks, the bytes of the block begun, and the length.
// A value, so that a server's prefix state is copied and continued with a
// key without allocating.
type murmurState struct {
	h    uint32
	tail [4]byte
	nt   int // bytes in tail
	n    int // bytes written
}

func murmurBlock(h, k uint32) uint32 {
	k *= murmurC1
	k = k<<15 | k>>17
	k *= murmurC2
	h ^= k
	h = h<<13 | h>>19
	return h*5 + 0xe6546b64
}

// write returns the state after b.
func (m murmurState) write(b []byte) murmurState {
	m.n += len(b)
	if m.nt > 0 {
		c := copy(m.tail[m.nt:], b)
		m.nt += c
		b = b[c:]
		if m.nt < 4 {
			return m
		}
		m.h = murmurBlock(m.h, binary.LittleEndian.Uint32(m.tail[:]))
		m.nt = 0
	}
	for len(b) >= 4 {
		m.h = murmurBlock(m.h, binary.LittleEndian.Uint32(b))
		b = b[4:]
	}
	m.nt = copy(m.tail[:], b)
	return m
}

// sum finishes the hash: the last partial block, the length, fmix32.
func (m murmurState) sum() uint32 {
	h := m.h
	if m.nt > 0 {
		var k uint32
		for i := m.nt - 1; i >= 0; i-- {
			k = k<<8 | uint32(m.tail[i])
		}
		k *= murmurC1
		k = k<<15 | k>>17
		k *= murmurC2
		h ^= k
	}
	h ^= uint32(m.n)
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	h ^= h >> 16
	return h
}

// murmur3 is MurmurHash3_x86_32 of b with seed 0, as pymemcache's
// murmur3_32 computes it for a str of code points below 256.
func murmur3(b []byte) uint32 { return murmurState{}.write(b).sum() }

// libmemcachedModula is libmemcached's MEMCACHED_DISTRIBUTION_MODULA, its
// default: a key goes to server hash(key) % len(servers), in the order the
// servers were added (libmemcached sorts them only with
// MEMCACHED_BEHAVIOR_SORT_HOSTS, off by default), weights ignored; one
// server gets every key unhashed. It is immutable and safe for concurrent
// use.
type libmemcachedModula struct {
	n    uint32
	hash func(string) uint32
}

func newLibmemcachedModula(servers []Server, hash func(string) uint32) *libmemcachedModula {
	return &libmemcachedModula{n: uint32(len(servers)), hash: hash}
}

func (m *libmemcachedModula) pick(key string) int {
	if m.n == 1 {
		return 0
	}
	return int(m.hash(key) % m.n)
}

// pickLive is memkit's own: libmemcached has no failover for modula (a
// dead server's keys fail). A key of a down server goes to one of the
// others, chosen by the rest of its hash and walked in list order past
// those down too, so that only the down server's keys move and they spread
// over all the others rather than piling onto its neighbour.
func (m *libmemcachedModula) pickLive(key string, down func(int) bool) int {
	if m.n == 1 {
		if down(0) {
			return -1
		}
		return 0
	}
	h := m.hash(key)
	s := h % m.n
	if !down(int(s)) {
		return int(s)
	}
	others := m.n - 1
	start := (h / m.n) % others
	for i := uint32(0); i < others; i++ {
		k := start + i
		if k >= others {
			k -= others
		}
		j := s + 1 + k // the others follow s in list order, wrapping
		if j >= m.n {
			j -= m.n
		}
		if !down(int(j)) {
			return int(j)
		}
	}
	return -1
}
