//go:build linux

package main

import (
	"encoding/binary"
	"net"
	"os"
	"testing"
	"time"
)

func TestProcAddr(t *testing.T) {
	// /proc/net/tcp prints each 32-bit word of the address as the host
	// reads it from memory, so the text depends on the byte order.
	v4 := "0100007F"
	if !littleEndian() {
		v4 = "7F000001"
	}
	tests := []struct {
		in   string
		ip   net.IP
		port int
		ok   bool
	}{
		{v4 + ":1628", net.IPv4(127, 0, 0, 1), 5672, true},
		{"00000000:1628", net.IPv4zero, 5672, true},
		{"00000000000000000000000000000000:1628", net.IPv6unspecified, 5672, true},
		{"0100007F", nil, 0, false},
		{"zz:1628", nil, 0, false},
	}
	for _, tt := range tests {
		ip, port, ok := procAddr(tt.in)
		if ok != tt.ok || port != tt.port || (ok && !ip.Equal(tt.ip)) {
			t.Errorf("procAddr(%q) = %v, %d, %v; want %v, %d, %v", tt.in, ip, port, ok, tt.ip, tt.port, tt.ok)
		}
	}
}

func littleEndian() bool {
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], 1)
	return b[0] == 1
}

func TestProcCPU(t *testing.T) {
	for start := time.Now(); time.Since(start) < 30*time.Millisecond; { // spend some CPU
	}
	d, err := procCPU(os.Getpid(), clockTick())
	if err != nil || d <= 0 {
		t.Errorf("procCPU(self) = %v, %v; want a positive time", d, err)
	}
	if own, ok := processCPU(); !ok || own < d/2 {
		t.Errorf("processCPU() = %v, %v; want about procCPU's %v", own, ok, d)
	}
}
