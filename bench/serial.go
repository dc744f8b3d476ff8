package main

import (
	"context"
	"encoding/gob"
	"fmt"
	"reflect"
	"strconv"
	"time"

	"github.com/memkit/memkit/serializer"
)

// row is a typical database row.
type row struct {
	ID        int64     `json:"id"`
	Name      string    `json:"name"`
	Email     string    `json:"email"`
	Country   string    `json:"country"`
	Balance   float64   `json:"balance"`
	Active    bool      `json:"active"`
	Tags      []string  `json:"tags"`
	CreatedAt time.Time `json:"created_at"`
	Notes     string    `json:"notes"`
}

func init() {
	gob.Register(time.Time{})
}

// sessionPayload is a typical web session.
func sessionPayload() map[string]any {
	return map[string]any{
		"user_id":    int64(184467),
		"username":   "alice.martin",
		"email":      "alice.martin@example.com",
		"roles":      []string{"customer", "beta"},
		"csrf_token": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		"locale":     "fr-FR",
		"cart_items": int64(3),
		"last_page":  "/shop/category/shoes?sort=price&page=2",
		"logged_in":  time.Date(2026, 11, 21, 8, 30, 0, 0, time.UTC),
		"flash":      "Your order has been placed.",
	}
}

// rowsPayload is 50 rows of a users table.
func rowsPayload() []row {
	countries := []string{"FR", "DE", "US", "JP", "BR"}
	rows := make([]row, 50)
	for i := range rows {
		rows[i] = row{
			ID:        int64(100000 + i),
			Name:      "User Number " + strconv.Itoa(i),
			Email:     "user" + strconv.Itoa(i) + "@example.com",
			Country:   countries[i%len(countries)],
			Balance:   float64(i*1731%100000) / 100,
			Active:    i%3 != 0,
			Tags:      []string{"newsletter", "tier-" + strconv.Itoa(i%4)},
			CreatedAt: time.Date(2025, time.Month(1+i%12), 1+i%28, 12, 0, 0, 0, time.UTC),
			Notes:     "Imported from the legacy CRM; verified address and phone number.",
		}
	}
	return rows
}

// serialResult is the measure of one codec/compressor on one payload.
type serialResult struct {
	payload, format string
	size            int
	marshal         result
	unmarshal       result
	err             error
}

type serialFormat struct {
	name string
	ser  *serializer.Serializer
}

func serialFormats() []serialFormat {
	out := []serialFormat{{"default (msgpack, s2 over 1 KB)", &serializer.Serializer{}}}
	for _, c := range []serializer.Codec{serializer.Msgpack, serializer.Gob, serializer.JSON} {
		for _, comp := range []serializer.Compressor{serializer.None, serializer.S2, serializer.Zstd, serializer.Zlib} {
			out = append(out, serialFormat{
				name: c.Name() + "+" + comp.Name(),
				// MinCompressLen 1: compress whatever the size, to show
				// what each compressor does to these payloads.
				ser: &serializer.Serializer{Codec: c, Compressor: comp, MinCompressLen: 1},
			})
		}
	}
	return out
}

// runSerializer measures, for each payload and format, the encoded size
// and the time and allocations of Marshal and of Unmarshal. Each is timed
// over cfg.serialDuration, cfg.rounds times; the rounds go over every
// format in turn, so that a burst of load on the machine spreads over all
// of them, and medians are reported.
func runSerializer(ctx context.Context, cfg config) []serialResult {
	payloads := []struct {
		name string
		v    any
	}{
		{"session map", sessionPayload()},
		{"50 DB rows", rowsPayload()},
	}
	type job struct {
		r      serialResult
		ser    *serializer.Serializer
		v      any
		data   []byte
		flags  uint32
		typ    reflect.Type
		ms, us []sample
	}
	var jobs []*job
	var out []serialResult
	for _, p := range payloads {
		for _, f := range serialFormats() {
			name := "serializer/" + p.name + "/" + f.name
			if !cfg.match(name) {
				continue
			}
			j := &job{r: serialResult{payload: p.name, format: f.name}, ser: f.ser, v: p.v, typ: reflect.TypeOf(p.v)}
			var err error
			j.data, j.flags, err = f.ser.Marshal(p.v)
			if err == nil {
				err = f.ser.Unmarshal(j.data, j.flags, reflect.New(j.typ).Interface())
			}
			if err != nil {
				j.r.err = err
			}
			j.r.size = len(j.data)
			jobs = append(jobs, j)
		}
	}
	for round := 0; round < cfg.rounds && ctx.Err() == nil; round++ {
		for _, j := range jobs {
			if j.r.err != nil {
				continue
			}
			j.ms = append(j.ms, runOp(ctx, 1, 1, cfg.serialDuration, cfg.maxOps, func(ctx context.Context, w, i int) error {
				_, _, err := j.ser.Marshal(j.v)
				return err
			}, nil))
			j.us = append(j.us, runOp(ctx, 1, 1, cfg.serialDuration, cfg.maxOps, func(ctx context.Context, w, i int) error {
				return j.ser.Unmarshal(j.data, j.flags, reflect.New(j.typ).Interface())
			}, nil))
		}
	}
	for _, j := range jobs {
		r := j.r
		if r.err == nil {
			r.marshal, r.unmarshal = summarize(j.ms, nil), summarize(j.us, nil)
			if r.unmarshal.firstErr != nil {
				r.err = fmt.Errorf("unmarshal: %w", r.unmarshal.firstErr)
			} else if r.marshal.firstErr != nil {
				r.err = fmt.Errorf("marshal: %w", r.marshal.firstErr)
			}
		}
		out = append(out, r)
	}
	return out
}
