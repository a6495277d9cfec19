package main

import (
	"fmt"
	"runtime"
	"time"
)

// meter reads what a measurement window costs: the CPU time of this
// process (client and server both run in it), that of the broker's
// beam.smp process when it runs on this machine, and this process's
// allocations.
type meter struct {
	brokerPID int           // 0 when the broker's process is not known
	brokerHow string        // how brokerPID was found, or why it was not
	tick      time.Duration // the unit of /proc/<pid>/stat's times
}

// newMeter finds the broker's process, or takes pid if it is above 0.
func newMeter(url string, pid int) *meter {
	m := &meter{tick: clockTick()}
	if pid > 0 {
		m.brokerPID, m.brokerHow = pid, "given with -broker-pid"
		return m
	}
	pid, how, err := findBroker(url)
	if err != nil {
		m.brokerHow = "not measured: " + err.Error()
		return m
	}
	m.brokerPID, m.brokerHow = pid, how
	return m
}

// about says which process the broker's CPU time is read from, and how it
// was found.
func (m *meter) about() string {
	if m.brokerPID == 0 {
		return m.brokerHow
	}
	return fmt.Sprintf("pid %d, %s", m.brokerPID, m.brokerHow)
}

// usage is a reading of the meter, the difference of two, or a sum of
// differences. A CPU time that could not be read in one of them is unknown.
type usage struct {
	goCPU, brokerCPU         time.Duration
	goUnknown, brokerUnknown bool
	mallocs, allocBytes      uint64
}

// read takes a reading. It stops the world briefly (runtime.ReadMemStats).
func (m *meter) read() usage {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	u := usage{mallocs: ms.Mallocs, allocBytes: ms.TotalAlloc, brokerUnknown: true}
	var ok bool
	u.goCPU, ok = processCPU()
	u.goUnknown = !ok
	if m.brokerPID > 0 {
		var err error
		u.brokerCPU, err = procCPU(m.brokerPID, m.tick)
		u.brokerUnknown = err != nil
	}
	return u
}

// since is what was spent from reading u0 to u.
func (u usage) since(u0 usage) usage {
	return usage{
		goCPU: u.goCPU - u0.goCPU, brokerCPU: u.brokerCPU - u0.brokerCPU,
		goUnknown: u.goUnknown || u0.goUnknown, brokerUnknown: u.brokerUnknown || u0.brokerUnknown,
		mallocs: u.mallocs - u0.mallocs, allocBytes: u.allocBytes - u0.allocBytes,
	}
}

// plus sums two spans.
func (u usage) plus(v usage) usage {
	return usage{
		goCPU: u.goCPU + v.goCPU, brokerCPU: u.brokerCPU + v.brokerCPU,
		goUnknown: u.goUnknown || v.goUnknown, brokerUnknown: u.brokerUnknown || v.brokerUnknown,
		mallocs: u.mallocs + v.mallocs, allocBytes: u.allocBytes + v.allocBytes,
	}
}
