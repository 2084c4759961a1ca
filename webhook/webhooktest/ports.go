// Package webhooktest has what tests of a webhook server need besides the
// server itself. It imports nothing from canary-tagger, so every test module
// can use it.
package webhooktest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
)

// lowest keeps picks off the ports programs bind by convention (8080,
// 8081, 9443, …), which a later step of a test may start.
const lowest = 10000

// FreePorts returns n distinct TCP ports that are free on 127.0.0.1 now.
//
// Where the kernel's ephemeral range is known, the ports come from below it:
// a port that listening on port 0 hands out can be taken, before the caller
// binds it, as the source port of any process's outgoing connection — which
// is how a test of ours failed in CI beside an envtest control plane.
func FreePorts(n int) ([]int, error) {
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	highest := ephemeralStart() - 1
	for attempts := 0; len(ports) < n; attempts++ {
		if attempts > 100*n {
			return nil, fmt.Errorf("no %d free ports in %d..%d", n, lowest, highest)
		}
		addr := "127.0.0.1:0"
		if highest > lowest {
			addr = fmt.Sprintf("127.0.0.1:%d", lowest+rand.IntN(highest-lowest+1))
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue // taken; try another
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// FreePort is FreePorts(1).
func FreePort() (int, error) {
	ports, err := FreePorts(1)
	if err != nil {
		return 0, err
	}
	return ports[0], nil
}

// ephemeralStart is the first port of Linux's ephemeral range, or 0 when it
// cannot be read (then FreePorts asks the kernel for port 0).
func ephemeralStart() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0
	}
	var first, last int
	if _, err := fmt.Sscan(string(b), &first, &last); err != nil {
		return 0
	}
	return first
}
