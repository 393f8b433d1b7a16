package integration

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestMoreRequestsAtOnceThanAsteriskHasSessions: Asterisk serves at most sessionlimit HTTP
// sessions at a time (http.conf, 100 by default, the lab's too) and closes any connection beyond
// them at once, unanswered; a request on it fails with EOF, and Go does not retry a POST. A burst
// of feature-code calls sends that many requests at once (an answer per call). The client keeps
// its connections below the limit, so every request is answered.
func TestMoreRequestsAtOnceThanAsteriskHasSessions(t *testing.T) {
	r := startARI(t, uniq("burst"), "")
	r.waitHook(t, 10*time.Second)
	const n = 300
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range n {
		wg.Go(func() {
			// A POST, as answer, play and hangup are.
			if err := r.SetGlobalVar(ctx, fmt.Sprintf("ITEST_BURST_%d", i%10), "x"); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d of %d requests at once failed; the first: %v", len(errs), n, errs[0])
	}
}
