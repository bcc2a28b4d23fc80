package reqinfo

import (
	"context"
	"sync"
	"testing"
)

func TestWithoutSlotMakesAContext(t *testing.T) {
	ctx := context.Background()
	info := new(Info)
	got := With(ctx, info)
	if got == ctx {
		t.Fatal("With returned its own context without a slot to put the record in")
	}
	if From(got) != info || From(ctx) != nil {
		t.Error("the record is not where it was put")
	}
}

func TestSlotHoldsOneRequestAtATime(t *testing.T) {
	conn := WithSlot(context.Background())
	a, b := new(Info), new(Info)

	ctxA := With(conn, a)
	if ctxA != conn {
		t.Fatal("the first request's record did not go into the empty slot")
	}
	if From(ctxA) != a {
		t.Fatal("From does not find the record in the slot")
	}
	// A second request while the first holds the slot (HTTP/2): its own
	// context, and neither sees the other's record.
	ctxB := With(conn, b)
	if ctxB == conn || From(ctxB) != b || From(ctxA) != a {
		t.Fatal("a concurrent request shared the first one's slot")
	}
	Release(conn, b) // b is not in the slot: nothing happens
	if From(ctxA) != a {
		t.Fatal("releasing another request's record emptied the slot")
	}
	Release(conn, a)
	if From(conn) != nil {
		t.Fatal("the slot still holds a released record")
	}
	if With(conn, b) != conn {
		t.Error("the slot was not free for the connection's next request")
	}
}

// Requests of one connection served at once each see their own record.
func TestSlotUnderConcurrency(t *testing.T) {
	conn := WithSlot(context.Background())
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				info := new(Info)
				ctx := With(conn, info)
				if From(ctx) != info {
					t.Error("a request saw another's record")
					return
				}
				Release(conn, info)
			}
		})
	}
	wg.Wait()
	if From(conn) != nil {
		t.Error("the slot was left holding a record")
	}
}
