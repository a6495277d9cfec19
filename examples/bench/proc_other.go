//go:build !linux

package main

import (
	"errors"
	"time"
)

// Off Linux there is no procfs: CPU time is not measured.

func processCPU() (time.Duration, bool) { return 0, false }

func procCPU(int, time.Duration) (time.Duration, error) {
	return 0, errors.New("no procfs")
}

func loadAverage() string { return "?" }

func clockTick() time.Duration { return 10 * time.Millisecond }

func findBroker(string) (int, string, error) {
	return 0, "", errors.New("the broker's CPU is read from procfs, which only Linux has")
}
