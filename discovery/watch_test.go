package discovery

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// The time to the next lookup: the records' TTL when it is shorter than
// Refresh, but never under MinInterval, and never over Refresh.
func TestWatcherNextLookup(t *testing.T) {
	cases := []struct {
		name         string
		ttl          string
		refresh, min time.Duration
		want         time.Duration
	}{
		{"TTL longer than refresh: refresh bounds it", "300", 10 * time.Second, 0, 10 * time.Second},
		{"TTL shorter than refresh: the TTL", "4", 10 * time.Second, 0, 4 * time.Second},
		{"TTL 0: the one-second floor", "0", 10 * time.Second, 0, time.Second},
		{"TTL under the floor set", "1", 10 * time.Second, 3 * time.Second, 3 * time.Second},
		{"a floor over refresh: refresh", "0", 500 * time.Millisecond, 2 * time.Second, 500 * time.Millisecond},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := &Watcher{
				Source:      Source{Name: "api.test", Port: 80},
				Resolver:    zone{rrs: []string{"api.test. " + tc.ttl + " IN A 10.0.0.1"}}.resolver(t),
				Refresh:     tc.refresh,
				MinInterval: tc.min,
			}
			failing := false
			if got := w.Once(context.Background(), &failing); got != tc.want {
				t.Errorf("next lookup in %v, want %v", got, tc.want)
			}
		})
	}
}

// A failed or empty lookup keeps the last good set: nothing reported, the
// error counted each time, one WARN per outage and one INFO when it ends;
// a good answer equal to the set reports nothing, a new one reports it.
func TestWatcherKeepsTheLastGoodSet(t *testing.T) {
	var logs bytes.Buffer
	var changes [][]Target
	errs := 0
	seed := []Target{tgt("10.0.0.1", 80, 1, false), tgt("10.0.0.2", 80, 1, false)}
	w := &Watcher{
		Upstream: "api",
		Source:   Source{Name: "api.test", Port: 80},
		Refresh:  10 * time.Second,
		Log:      slog.New(slog.NewTextHandler(&logs, nil)),
		OnChange: func(ts []Target) { changes = append(changes, ts) },
		OnError:  func(error) { errs++ },
	}
	seededAt := time.Unix(1000, 0)
	w.Seed(seed, seededAt)
	failing := false
	steps := []struct {
		name    string
		zone    zone
		changes int
		errs    int
	}{
		{"empty answer", zone{}, 0, 1},
		{"NXDOMAIN", zone{rcode: 3}, 0, 2},
		{"no server", zone{fail: context.DeadlineExceeded}, 0, 3},
		{"the same set again", zone{rrs: []string{"api.test. 60 IN A 10.0.0.2", "api.test. 60 IN A 10.0.0.1"}}, 0, 3},
		{"a new set", zone{rrs: []string{"api.test. 60 IN A 10.0.0.3"}}, 1, 3},
	}
	for i, st := range steps {
		w.Resolver = st.zone.resolver(t)
		next := w.Once(context.Background(), &failing)
		if len(changes) != st.changes || errs != st.errs {
			t.Fatalf("%s: %d changes and %d errors, want %d and %d", st.name, len(changes), errs, st.changes, st.errs)
		}
		if i < 3 {
			if next != w.Refresh {
				t.Errorf("%s: next lookup in %v, want the refresh", st.name, next)
			}
			if !w.LastGood().Equal(seededAt) {
				t.Errorf("%s: LastGood moved to %v on a failed lookup", st.name, w.LastGood())
			}
		} else if !w.LastGood().After(seededAt) {
			t.Errorf("%s: LastGood not moved by a good lookup", st.name)
		}
	}
	if got := changes[0]; len(got) != 1 || got[0] != tgt("10.0.0.3", 80, 1, false) {
		t.Errorf("reported set %v", got)
	}
	if n := strings.Count(logs.String(), "level=WARN"); n != 1 {
		t.Errorf("%d WARN lines for one outage, want 1:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "level=INFO msg=\"discovery lookup works again\"") {
		t.Errorf("no INFO when lookups worked again:\n%s", logs.String())
	}
}
