package forward

import (
	"time"

	"github.com/tbsphathuynh/proxy/internal/window"
)

// budgetSpan is the sliding window the retry budget looks at.
const budgetSpan = 10 * time.Second

// Budget caps retries at a share of requests over a sliding window, plus a
// small floor per second so a quiet upstream can still retry. Without it,
// every failed request during an outage becomes 1+attempts requests, and
// the retries deepen the outage they react to. Use NewBudget.
type Budget struct {
	ratio float64
	floor int64 // retries always allowed per window
	w     *window.Counter
}

// NewBudget returns a budget allowing retries up to ratio × requests in the
// last ten seconds, plus floor retries per second.
func NewBudget(ratio float64, floor int) *Budget {
	return &Budget{ratio: ratio, floor: int64(floor) * int64(budgetSpan/time.Second), w: window.New(budgetSpan)}
}

// Request counts one request toward the budget.
func (b *Budget) Request(now time.Time) { b.w.Add(now, 1, 0) }

// Allow reports whether one more retry fits the budget, and counts it if so.
func (b *Budget) Allow(now time.Time) bool {
	requests, retries := b.w.Sum(now)
	if float64(retries) >= b.ratio*float64(requests)+float64(b.floor) {
		return false
	}
	b.w.Add(now, 0, 1)
	return true
}
