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
	"unsafe"
)

// selector maps keys to servers. It is immutable and safe for concurrent use.
type selector interface {
	// pick returns the index, into the servers slice given to newSelector, of the server owning key.
	pick(key string) int
	// pickLive returns the index of the server for key when servers for which down(i) is true cannot be used:
	// ketama walks on to the next point of the ring owned by a live server (so only the dead server's keys move);
	// modula follows python-memcached's rehash chain (hash(str(h) + str(i)) for i in 0..9, as memcache.py _get_server does).
	// It returns -1 when no live server is found.
	pickLive(key string, down func(int) bool) int
}

// newSelector builds the selector for d over servers. Server weights of 0
// count as 1.
func newSelector(d Distribution, servers []Server) (selector, error) {
	if len(servers) == 0 {
		return nil, ErrNoServers
	}
	if len(servers) > math.MaxInt32 {
		return nil, errors.New("memclient: too many servers")
	}
	switch d {
	case DistributionKetama:
		return newKetama(servers)
	case DistributionModula:
		return newModula(servers)
	}
	return nil, fmt.Errorf("memclient: unknown distribution %v", d)
}

// bytesOf returns the bytes of s without copying. The hash functions it is
// passed to only read them.
func bytesOf(s string) []byte {
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

// Ketama, as libmemcached 1.x builds it with MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED
// (update_continuum in libmemcached/hosts.cc) and twemproxy with
// "distribution: ketama, hash: md5" (nc_ketama.c).
const (
	ketamaPointsPerServer = 160 // MEMCACHED_POINTS_PER_SERVER_KETAMA
	ketamaPointsPerHash   = 4   // one MD5 digest gives four 32-bit points
	ketamaDefaultPort     = "11211"
)

// ketama is libmemcached's weighted continuum: a ring of 32-bit points, each
// owned by a server, sorted by value. A key belongs to the owner of the
// first point >= MD5(key)'s first four bytes (little-endian), wrapping to the
// first point. It is immutable and safe for concurrent use.
//
// twemproxy builds the same ring (its server names drop the port on 11211
// too) unless its configuration gives servers explicit names, which then
// replace "host:port" in the point names; those are not supported here.
type ketama struct {
	values  []uint32 // sorted point values
	owners  []int32  // owners[i] is the server index of values[i]
	servers int
}

func newKetama(servers []Server) (*ketama, error) {
	var total uint64
	for _, s := range servers {
		total += uint64(s.weight())
	}
	k := &ketama{servers: len(servers)}
	type point struct {
		value uint32
		owner int32
	}
	points := make([]point, 0, len(servers)*ketamaPointsPerServer)
	var name []byte
	for i, s := range servers {
		n := ketamaPoints(s.weight(), total, len(servers))
		prefix := ketamaName(s.Addr)
		for j := 0; j < n/ketamaPointsPerHash; j++ {
			name = strconv.AppendUint(append(name[:0], prefix...), uint64(j), 10)
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

// ketamaHash is libhashkit's md5 key hash: the first four bytes of
// MD5(key), little-endian.
func ketamaHash(key string) uint32 {
	sum := md5.Sum(bytesOf(key))
	return binary.LittleEndian.Uint32(sum[:4])
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
	return int(k.owners[k.search(ketamaHash(key))])
}

func (k *ketama) pickLive(key string, down func(int) bool) int {
	if k.servers == 1 {
		if down(0) {
			return -1
		}
		return 0
	}
	start := k.search(ketamaHash(key))
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
