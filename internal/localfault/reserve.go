package localfault

import (
	"os"
	"sync"
)

// Reserve holds a few spare file descriptors (/dev/null opened for
// reading) so that, when the process runs out of them, some can be given
// back at once to the work that must go on: active health checks, the
// admin listener and new connections to servers for the clients already
// served. Once it was released, the main listener takes new clients
// again only when the reserve is whole and as many descriptors again are
// free (Refill with headroom), so accepting does not eat straight away the
// descriptors it gave back. The zero value, and a nil *Reserve, hold
// nothing.
type Reserve struct {
	// mu guards files.
	mu    sync.Mutex
	want  int
	files []*os.File
}

// NewReserve returns a reserve of n descriptors, filled as far as the
// system allows.
func NewReserve(n int) *Reserve {
	r := &Reserve{want: n}
	r.Refill(0)
	return r
}

// Size is how many descriptors the reserve holds when whole.
func (r *Reserve) Size() int {
	if r == nil {
		return 0
	}
	return r.want
}

// Release closes every descriptor held and returns how many it closed.
func (r *Reserve) Release() int {
	if r == nil {
		return 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.release()
}

func (r *Reserve) release() int {
	n := len(r.files)
	for _, f := range r.files {
		f.Close()
	}
	r.files = r.files[:0]
	return n
}

// Whole reports whether the reserve holds every descriptor it wants.
func (r *Reserve) Whole() bool {
	if r == nil {
		return true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.files) >= r.want
}

// Refill opens descriptors until the reserve is whole, and reports whether
// it is, and whether headroom more could be opened besides: those are
// closed again at once, so a true result says the system has at least
// headroom descriptors free beyond the reserve. All or nothing: when it
// has fewer, the reserve keeps none, so that those few go to the work
// the reserve is for rather than sit in it.
func (r *Reserve) Refill(headroom int) bool {
	if r == nil {
		return true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for len(r.files) < r.want+headroom {
		f, err := os.Open(os.DevNull)
		if err != nil {
			r.release()
			return false
		}
		r.files = append(r.files, f)
	}
	for len(r.files) > r.want {
		r.files[len(r.files)-1].Close()
		r.files = r.files[:len(r.files)-1]
	}
	return true
}

// maxReserve is the most descriptors ReserveSize asks for: enough for a
// round of health checks (8 probes at a time per upstream), an admin
// request or two and a few new connections to servers.
const maxReserve = 16
