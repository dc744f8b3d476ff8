package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync/atomic"

	_ "modernc.org/sqlite" // database/sql driver "sqlite", pure Go

	"github.com/memkit/memkit/objcache"
)

// seedProducts is how many products a new database gets.
const seedProducts = 300

// pageSize is how many products a catalogue page shows.
const pageSize = 24

// Product is one row of the products table.
type Product struct {
	ID          int64  `json:"id"`
	Name        string `json:"name"`
	Category    string `json:"category"`
	PriceCents  int64  `json:"price_cents"`
	Description string `json:"description"`
}

// Price formats the price for people.
func (p Product) Price() string { return fmt.Sprintf("€%d.%02d", p.PriceCents/100, p.PriceCents%100) }

// shopDB runs the shop's queries and counts them. Safe for concurrent use.
type shopDB struct {
	db        *sql.DB
	queries   atomic.Int64 // queries run since open, seeding excluded
	inQueries atomic.Int64 // of which ProductsByIDs's IN queries
	inKeys    atomic.Int64 // IDs asked for by those
}

// openDB opens (creating and seeding if needed) the SQLite database at
// path; "" means a private in-memory database.
func openDB(ctx context.Context, path string) (*shopDB, error) {
	dsn := ":memory:"
	if path != "" {
		dsn = "file:" + (&url.URL{Path: path}).EscapedPath() + "?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)"
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	if path == "" {
		db.SetMaxOpenConns(1) // every connection would be its own empty database
	}
	s := &shopDB{db: db}
	if err := s.seed(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("database %q: %w", path, err)
	}
	return s, nil
}

func (s *shopDB) Close() error { return s.db.Close() }

// seed creates the table and, when it is empty, fills it with
// seedProducts products made up from a few word lists.
func (s *shopDB) seed(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS products (
		id          INTEGER PRIMARY KEY,
		name        TEXT NOT NULL,
		category    TEXT NOT NULL,
		price_cents INTEGER NOT NULL,
		description TEXT NOT NULL)`); err != nil {
		return err
	}
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM products`).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	adjectives := []string{"Copper", "Walnut", "Linen", "Enamel", "Stoneware", "Bamboo", "Cast-iron", "Wool", "Glass", "Oak", "Brass", "Ceramic"}
	things := []struct{ name, category string }{
		{"kettle", "Kitchen"}, {"teapot", "Tea"}, {"mug", "Kitchen"}, {"grinder", "Coffee"}, {"dripper", "Coffee"},
		{"tray", "Home"}, {"lamp", "Home"}, {"notebook", "Desk"}, {"pen", "Desk"}, {"bowl", "Kitchen"},
		{"vase", "Home"}, {"scoop", "Coffee"}, {"canister", "Tea"}, {"coaster", "Home"}, {"clock", "Desk"},
		{"trowel", "Garden"}, {"planter", "Garden"}, {"watering can", "Garden"}, {"blanket", "Home"}, {"ladle", "Kitchen"},
		{"whisk", "Kitchen"}, {"strainer", "Tea"}, {"cup", "Tea"}, {"scale", "Coffee"}, {"bookend", "Desk"},
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO products (id, name, category, price_cents, description) VALUES (?, ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for i := 0; i < seedProducts; i++ {
		id := int64(i + 1)
		adj, th := adjectives[i%len(adjectives)], things[(i/len(adjectives))%len(things)]
		name := adj + " " + th.name
		desc := fmt.Sprintf("A %s %s, made to last. Item %d of the memkit demo shop.", lower(adj), th.name, id)
		if _, err := stmt.ExecContext(ctx, id, name, th.category, 199+(id*3779)%9000, desc); err != nil {
			return err
		}
	}
	return tx.Commit()
}

func lower(s string) string {
	b := []byte(s)
	if len(b) > 0 && b[0] >= 'A' && b[0] <= 'Z' {
		b[0] += 'a' - 'A'
	}
	return string(b)
}

// ProductByID returns one product, or objcache.ErrNotFound: the loader
// convention that lets objcache cache the "no such product" answer too.
func (s *shopDB) ProductByID(ctx context.Context, id int64) (Product, error) {
	s.ran(ctx)
	var p Product
	err := s.db.QueryRowContext(ctx, `SELECT id, name, category, price_cents, description FROM products WHERE id = ?`, id).
		Scan(&p.ID, &p.Name, &p.Category, &p.PriceCents, &p.Description)
	if errors.Is(err, sql.ErrNoRows) {
		return Product{}, objcache.ErrNotFound
	}
	return p, err
}

// PageIDs returns the IDs of the products of catalogue page page (from
// 1), in catalogue order.
func (s *shopDB) PageIDs(ctx context.Context, page int) ([]int64, error) {
	s.ran(ctx)
	rows, err := s.db.QueryContext(ctx, `SELECT id FROM products ORDER BY id LIMIT ? OFFSET ?`, pageSize, (page-1)*pageSize)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	ids := make([]int64, 0, pageSize)
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// ProductsByIDs returns the products with the given IDs, by ID, with one
// `WHERE id IN (...)` query: the loader of objcache.MemoizeMulti, which
// asks it for exactly the products that are not cached. An ID with no
// product is absent from the result, which objcache caches as "not
// found".
func (s *shopDB) ProductsByIDs(ctx context.Context, ids []int64) (map[int64]Product, error) {
	out := make(map[int64]Product, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	s.ran(ctx)
	s.inQueries.Add(1)
	s.inKeys.Add(int64(len(ids)))
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	marks := strings.Repeat(",?", len(ids))[1:]
	rows, err := s.db.QueryContext(ctx, `SELECT id, name, category, price_cents, description FROM products WHERE id IN (`+marks+`)`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var p Product
		if err := rows.Scan(&p.ID, &p.Name, &p.Category, &p.PriceCents, &p.Description); err != nil {
			return nil, err
		}
		out[p.ID] = p
	}
	return out, rows.Err()
}

// UpdateProduct writes p's name, category, price and description to its
// row, or returns objcache.ErrNotFound when there is none.
func (s *shopDB) UpdateProduct(ctx context.Context, p Product) error {
	s.ran(ctx)
	res, err := s.db.ExecContext(ctx, `UPDATE products SET name = ?, category = ?, price_cents = ?, description = ? WHERE id = ?`,
		p.Name, p.Category, p.PriceCents, p.Description, p.ID)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return objcache.ErrNotFound
	}
	return err
}

// ProductCount returns how many products there are.
func (s *shopDB) ProductCount(ctx context.Context) (int, error) {
	s.ran(ctx)
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM products`).Scan(&n)
	return n, err
}

// Queries returns how many queries ran since the database was opened.
func (s *shopDB) Queries() int64 { return s.queries.Load() }

// ran counts a query and marks ctx's request as a cache miss.
func (s *shopDB) ran(ctx context.Context) {
	s.queries.Add(1)
	if m, ok := ctx.Value(loadMarkKey{}).(*atomic.Bool); ok {
		m.Store(true)
	}
}

// loadMarkKey is the context key of the flag a query sets, so that a
// handler learns whether its memoized call ran the query (X-Cache: miss)
// or was served from the cache (hit).
type loadMarkKey struct{}

// withLoadMark returns a context whose queries set the returned flag.
func withLoadMark(ctx context.Context) (context.Context, *atomic.Bool) {
	m := new(atomic.Bool)
	return context.WithValue(ctx, loadMarkKey{}, m), m
}
