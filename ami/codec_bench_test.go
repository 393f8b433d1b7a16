package ami

import (
	"bytes"
	"fmt"
	"io"
	"testing"
)

// queueStatusWire is what Asterisk 22 sends for a QueueStatus of n members (QueueMember events
// as app_queue writes them, then the completion event).
func queueStatusWire(n int) []byte {
	var b bytes.Buffer
	b.WriteString("Response: Success\r\nActionID: 7\r\nEventList: start\r\nMessage: Queue status will follow\r\n\r\n")
	for i := range n {
		fmt.Fprintf(&b, "Event: QueueMember\r\nActionID: 7\r\nQueue: bench%d\r\nName: User %d\r\nLocation: Local/%d@presenced-queue-member/n\r\n"+
			"StateInterface: hint:%d@hints\r\nMembership: dynamic\r\nPenalty: 0\r\nCallsTaken: 0\r\nLastCall: 0\r\nLastPause: 1765000000\r\n"+
			"LoginTime: 1765000000\r\nInCall: 0\r\nStatus: 5\r\nPaused: 1\r\nPausedReason: Lunch\r\nWrapuptime: 0\r\n\r\n",
			i%10, i, 60000+i, 60000+i)
	}
	fmt.Fprintf(&b, "Event: QueueStatusComplete\r\nActionID: 7\r\nEventList: Complete\r\nListItems: %d\r\n\r\n", n)
	return b.Bytes()
}

// BenchmarkReadQueueStatus: reading and parsing a QueueStatus of 10,000 members, as the full
// reconcile of docs/BENCHMARKS.md does for 100,000.
func BenchmarkReadQueueStatus(b *testing.B) {
	wire := queueStatusWire(10000)
	b.SetBytes(int64(len(wire)))
	b.ReportAllocs()
	for b.Loop() {
		r := NewReader(bytes.NewReader(wire))
		var l List
		for {
			m, err := r.ReadMessage()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			if m.IsEvent() {
				l.Items = append(l.Items, m)
			}
		}
		if st := ParseQueueStatus(&l); len(st.Members) != 10000 {
			b.Fatalf("%d members", len(st.Members))
		}
	}
}
