// Package examples holds memkit's runnable examples, one command each:
//
//   - webapp: a small shop on sessions (middleware.Session), memoized SQL
//     (objcache.Memoize1 on SQLite) and a cached page (middleware.Cache).
//   - ticket: the G88 ticket race; naive get/set loses sales, gets/cas keeps
//     them.
//   - cluster: how keys spread over weighted servers, for ketama and
//     python-memcached's modula; with -mode gutter, a server lost under
//     load without and with a gutter pool; with -mode warmup, a server
//     added without and with warm-up.
//   - mctop: a terminal top for a memcached cluster.
//   - demo: the launcher of `make demo`, which owns the servers and the shop
//     it starts.
//   - chi: memkit sessions in the chi router (middleware.Session as it is).
//   - echo and gin: memkit sessions in those frameworks, native and through
//     echo-contrib/session and gin-contrib/sessions; each a module of its
//     own (run them from their directory: `cd echo && go run .`), so that
//     this module does not bring their dependencies.
//
// This directory is a module of its own (github.com/memkit/memkit/examples),
// so that the shop's SQLite stays out of the core module. Run the examples
// from here with `go run ./NAME -memcached host:port[:weight],...` (or
// $MEMKIT_MEMCACHED); `make demo` runs the demo launcher (./demo), which
// starts three servers and the shop. This package itself only holds the
// README's code snippets as tested examples (readme_test.go).
package examples
