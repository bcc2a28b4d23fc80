package redistest

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// setupTimeout bounds how long a cluster or a Sentinel set may take to
// settle: generous, for a loaded machine.
const setupTimeout = 60 * time.Second

// Cluster is a Redis Cluster of three masters, each with one replica, so
// that killing a master shows a real failover.
type Cluster struct {
	// Masters[i] serves a third of the slots at the start; Replicas[i]
	// replicates it.
	Masters, Replicas []*Server
}

// clusterSlots is the number of hash slots of a Redis Cluster.
const clusterSlots = 16384

// NewCluster starts a 3-master, 3-replica cluster for t, with failure
// detection tuned for tests (a node is failed after one second), and
// waits until every node sees all slots served and every replica in sync.
// Everything is stopped on t's cleanup.
func NewCluster(t testing.TB) *Cluster {
	t.Helper()
	args := []string{
		"--cluster-enabled", "yes",
		"--cluster-config-file", "nodes.conf",
		"--cluster-node-timeout", "1000",
		// A replica may take over whatever its lag: the test kills the
		// master at any moment.
		"--cluster-replica-validity-factor", "0",
	}
	c := &Cluster{}
	for range 3 {
		c.Masters = append(c.Masters, NewServerWith(t, Options{Args: args, ClusterBus: true}))
	}
	for range 3 {
		c.Replicas = append(c.Replicas, NewServerWith(t, Options{Args: args, ClusterBus: true}))
	}
	ctx := context.Background()
	all := append(append([]*Server{}, c.Masters...), c.Replicas...)
	clients := make([]*redis.Client, len(all))
	for i, s := range all {
		clients[i] = redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1})
		defer clients[i].Close()
	}
	must := func(err error, what string) {
		t.Helper()
		if err != nil {
			t.Fatalf("redistest: cluster: %s: %v", what, err)
		}
	}
	per := clusterSlots / len(c.Masters)
	for i := range c.Masters {
		lo, hi := i*per, (i+1)*per-1
		if i == len(c.Masters)-1 {
			hi = clusterSlots - 1
		}
		must(clients[i].Do(ctx, "CLUSTER", "ADDSLOTSRANGE", lo, hi).Err(), "ADDSLOTSRANGE")
	}
	_, port0, _ := net.SplitHostPort(all[0].Addr)
	for i := 1; i < len(all); i++ {
		// The bus port is named: it is not port+10000 here.
		must(clients[i].Do(ctx, "CLUSTER", "MEET", "127.0.0.1", port0, all[0].busPort).Err(), "MEET")
	}
	waitFor(t, "every node to know the others", func() error {
		for i, cl := range clients {
			nodes, err := cl.ClusterNodes(ctx).Result()
			if err != nil {
				return err
			}
			if n := strings.Count(nodes, "\n"); n != len(all) || strings.Contains(nodes, "handshake") {
				return fmt.Errorf("node %d knows %d nodes:\n%s", i, n, nodes)
			}
		}
		return nil
	})
	for i, r := range c.Replicas {
		id, err := clients[i].ClusterMyID(ctx).Result()
		must(err, "MYID")
		must(clients[len(c.Masters)+i].ClusterReplicate(ctx, id).Err(), "REPLICATE "+r.Addr)
	}
	waitFor(t, "the cluster to settle", func() error {
		for i, cl := range clients {
			info, err := cl.ClusterInfo(ctx).Result()
			if err != nil {
				return err
			}
			if !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_slots_ok:16384") {
				return fmt.Errorf("node %d: %s", i, info)
			}
		}
		for i := range c.Replicas {
			info, err := clients[len(c.Masters)+i].Info(ctx, "replication").Result()
			if err != nil {
				return err
			}
			if !strings.Contains(info, "master_link_status:up") {
				return fmt.Errorf("replica %d: %s", i, info)
			}
		}
		return nil
	})
	return c
}

// Addrs returns the masters' addresses, as seeds for a cluster client.
func (c *Cluster) Addrs() []string {
	var a []string
	for _, s := range c.Masters {
		a = append(a, s.Addr)
	}
	return a
}

// Slot returns the hash slot of key.
func (c *Cluster) Slot(t testing.TB, key string) int {
	t.Helper()
	cl := redis.NewClient(&redis.Options{Addr: c.Masters[0].Addr})
	defer cl.Close()
	slot, err := cl.ClusterKeySlot(context.Background(), key).Result()
	if err != nil {
		t.Fatalf("redistest: CLUSTER KEYSLOT: %v", err)
	}
	return int(slot)
}

// MasterIndex returns which of the starting masters serves key: i for
// Masters[i] (and Replicas[i]).
func (c *Cluster) MasterIndex(t testing.TB, key string) int {
	t.Helper()
	return min(c.Slot(t, key)/(clusterSlots/len(c.Masters)), len(c.Masters)-1)
}

// Sentinels is a master, one replica and three Sentinels watching them
// under the name MasterName.
type Sentinels struct {
	Master, Replica *Server
	Sentinels       []*Server
}

// MasterName is the name the Sentinels know the master by.
const MasterName = "proxymaster"

// NewSentinels starts a master, a replica and three Sentinels (quorum 2)
// for t, with a master declared down after one second, and waits until
// every Sentinel knows the replica and the two other Sentinels, so that a
// failover can start as soon as the master dies. Everything is stopped on
// t's cleanup.
func NewSentinels(t testing.TB) *Sentinels {
	t.Helper()
	st := &Sentinels{Master: NewServer(t)}
	host, port, _ := net.SplitHostPort(st.Master.Addr)
	st.Replica = NewServerWith(t, Options{Args: []string{"--replicaof", host, port}})
	ctx := context.Background()
	rc := redis.NewClient(&redis.Options{Addr: st.Replica.Addr, MaxRetries: -1})
	defer rc.Close()
	waitFor(t, "the replica to sync", func() error {
		info, err := rc.Info(ctx, "replication").Result()
		if err == nil && !strings.Contains(info, "master_link_status:up") {
			err = fmt.Errorf("%s", info)
		}
		return err
	})
	conf := []string{
		"sentinel monitor " + MasterName + " " + host + " " + port + " 2",
		"sentinel down-after-milliseconds " + MasterName + " 1000",
		"sentinel failover-timeout " + MasterName + " 10000",
	}
	for range 3 {
		st.Sentinels = append(st.Sentinels, NewServerWith(t, Options{Sentinel: true, Args: conf}))
	}
	for _, s := range st.Sentinels {
		sc := redis.NewSentinelClient(&redis.Options{Addr: s.Addr, MaxRetries: -1})
		defer sc.Close()
		waitFor(t, "Sentinel "+s.Addr+" to know the replica and the other Sentinels", func() error {
			replicas, err := sc.Replicas(ctx, MasterName).Result()
			if err != nil {
				return err
			}
			sentinels, err := sc.Sentinels(ctx, MasterName).Result()
			if err != nil {
				return err
			}
			if len(replicas) != 1 || len(sentinels) != 2 {
				return fmt.Errorf("%d replicas, %d other sentinels", len(replicas), len(sentinels))
			}
			return nil
		})
	}
	return st
}

// Addrs returns the Sentinels' addresses.
func (st *Sentinels) Addrs() []string {
	var a []string
	for _, s := range st.Sentinels {
		a = append(a, s.Addr)
	}
	return a
}

// MasterAddr asks a Sentinel which address the master has now.
func (st *Sentinels) MasterAddr(t testing.TB) string {
	t.Helper()
	sc := redis.NewSentinelClient(&redis.Options{Addr: st.Sentinels[0].Addr, MaxRetries: -1})
	defer sc.Close()
	a, err := sc.GetMasterAddrByName(context.Background(), MasterName).Result()
	if err != nil {
		t.Fatalf("redistest: SENTINEL GET-MASTER-ADDR-BY-NAME: %v", err)
	}
	return net.JoinHostPort(a[0], a[1])
}

// waitFor polls ok until it returns nil, failing t with its last error
// after setupTimeout.
func waitFor(t testing.TB, what string, ok func() error) {
	t.Helper()
	deadline := time.Now().Add(setupTimeout)
	for {
		err := ok()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("redistest: waited %v for %s: %v", setupTimeout, what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
