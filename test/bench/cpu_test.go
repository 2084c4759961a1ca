package bench

import (
	"os"
	"testing"
	"time"
)

func TestCPUTimeCountsThisProcess(t *testing.T) {
	before, err := CPUTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// Burn CPU until the kernel has counted at least 50 ms more (ticks of
	// 10 ms), with a deadline.
	deadline := time.Now().Add(30 * time.Second)
	x := 0
	for time.Now().Before(deadline) {
		for i := 0; i < 1_000_000; i++ {
			x += i
		}
		now, err := CPUTime(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		if now-before >= 50*time.Millisecond {
			return
		}
	}
	t.Fatalf("CPU time did not grow by 50 ms in 30 s of spinning (%d)", x)
}

func TestCPUTimeOfNoProcess(t *testing.T) {
	if _, err := CPUTime(-1); err == nil {
		t.Error("no error for pid -1")
	}
}
