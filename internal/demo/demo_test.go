package demo

import (
	"testing"
	"time"
)

func TestFlakyBackendFailsPartOfEveryCycle(t *testing.T) {
	t0 := time.Unix(0, 0)
	b := &Backend{flaky: true, started: t0}
	cases := []struct {
		at   time.Duration
		want bool
	}{
		{0, false},
		{FlakyCycle - FlakyDown - time.Second, false},
		{FlakyCycle - FlakyDown, true},
		{FlakyCycle - time.Second, true},
		{FlakyCycle, false},
		{2*FlakyCycle - time.Second, true},
	}
	for _, tc := range cases {
		if got := b.failing(t0.Add(tc.at)); got != tc.want {
			t.Errorf("failing at %v = %v, want %v", tc.at, got, tc.want)
		}
	}
	steady := &Backend{started: t0}
	if steady.failing(t0.Add(FlakyCycle - time.Second)) {
		t.Error("a steady backend failed its check")
	}
}
