// Package examples holds memkit's runnable examples, one command each:
//
//   - webapp: a small shop on sessions (middleware.Session), memoized SQL
//     (objcache.Memoize on SQLite) and a cached page (middleware.Cache).
//   - ticket: the G88 ticket race; naive get/set loses sales, gets/cas keeps
//     them.
//   - cluster: how keys spread over weighted servers, for ketama and
//     python-memcached's modula.
//   - mctop: a terminal top for a memcached cluster.
//
// Run them with `go run ./examples/NAME -memcached host:port[:weight],...`;
// `make demo` starts three servers and the shop. This package itself only
// holds the README's code snippets as tested examples (readme_test.go).
package examples
