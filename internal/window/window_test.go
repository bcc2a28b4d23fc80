package window

import (
	"testing"
	"time"
)

func TestCounterSlides(t *testing.T) {
	c := New(10 * time.Second)
	t0 := time.Unix(1000, 0)
	c.Add(t0, 5, 1)
	c.Add(t0.Add(3*time.Second), 5, 2)
	if a, b := c.Sum(t0.Add(5 * time.Second)); a != 10 || b != 3 {
		t.Errorf("within the window: %d, %d; want 10, 3", a, b)
	}
	if a, b := c.Sum(t0.Add(11 * time.Second)); a != 5 || b != 2 {
		t.Errorf("after the first bucket left the window: %d, %d; want 5, 2", a, b)
	}
	// A slot reused a window later starts from zero.
	c.Add(t0.Add(20*time.Second), 1, 0)
	if a, b := c.Sum(t0.Add(20 * time.Second)); a != 1 || b != 0 {
		t.Errorf("after the window moved on: %d, %d; want 1, 0", a, b)
	}
	c.Reset()
	if a, _ := c.Sum(t0.Add(20 * time.Second)); a != 0 {
		t.Errorf("after Reset: %d", a)
	}
}

func BenchmarkAdd(b *testing.B) {
	c := New(10 * time.Second)
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		c.Add(now, 1, 0)
	}
}
