package webhooktest

import (
	"fmt"
	"net"
	"testing"
)

func TestFreePortsAreDistinctBindableAndNotEphemeral(t *testing.T) {
	ports, err := FreePorts(5)
	if err != nil {
		t.Fatal(err)
	}
	start := ephemeralStart()
	seen := map[int]bool{}
	for _, p := range ports {
		if seen[p] {
			t.Errorf("port %d twice in %v", p, ports)
		}
		seen[p] = true
		if start > lowest && (p < lowest || p >= start) {
			t.Errorf("port %d outside %d..%d", p, lowest, start-1)
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			t.Errorf("port %d: %v", p, err)
			continue
		}
		l.Close()
	}
}
