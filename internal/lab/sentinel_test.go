package lab

import (
	"context"
	"testing"
	"time"
)

// TestSentinelGroupFailsOver: the group's master answers from the test process with the
// password, replicates to the replica, and when it is paused the sentinels promote the replica
// within a few seconds (down-after 1 s); the data written before is on the new master, and the
// old master, let run again, comes back as its replica.
func TestSentinelGroupFailsOver(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	began := time.Now()
	s, err := env.StartSentinel(ctx, SentinelOptions{Passwords: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("group started in %v", time.Since(began).Round(time.Millisecond))
	defer s.Close(context.Background())

	master, err := s.MasterAddr(ctx)
	if err != nil || master != s.FirstMaster {
		t.Fatalf("master = %q, %v; want %s", master, err, s.FirstMaster)
	}
	if sc := s.SentinelClient(s.Addresses[0]); sc.Ping(ctx).Err() != nil {
		t.Fatal("sentinel does not answer with its password")
	} else {
		sc.Close()
	}
	noPassword := s.Client(master)
	noPassword.Options().Password = ""
	if err := noPassword.Ping(ctx).Err(); err == nil {
		t.Error("the master answers without its password")
	}
	noPassword.Close()

	mc := s.Client(master)
	defer mc.Close()
	if err := mc.Set(ctx, "lab:before", "kept", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := mc.Wait(ctx, 1, 5*time.Second).Result(); err != nil || n != 1 {
		t.Fatalf("WAIT 1 = %d, %v; want the replica to confirm", n, err)
	}

	if err := s.Pause(ctx, master); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	promoted, err := s.WaitForFailover(ctx, master)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("failover: %s → %s in %v after the pause", master, promoted, time.Since(start).Round(time.Millisecond))
	if promoted != s.FirstReplicas[0] {
		t.Errorf("promoted %s, want the replica %s", promoted, s.FirstReplicas[0])
	}
	nc := s.Client(promoted)
	defer nc.Close()
	if v, err := nc.Get(ctx, "lab:before").Result(); err != nil || v != "kept" {
		t.Errorf("on the new master: %q, %v", v, err)
	}

	if err := s.Unpause(ctx, master); err != nil {
		t.Fatal(err)
	}
	unpaused := time.Now()
	deadline := time.Now().Add(30 * time.Second)
	for {
		role, err := mc.Do(ctx, "ROLE").Slice()
		if err == nil && len(role) > 0 && role[0] == "slave" {
			t.Logf("the old master is a replica %v after it runs again", time.Since(unpaused).Round(time.Millisecond))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the old master did not become a replica: ROLE %v, %v", role, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
