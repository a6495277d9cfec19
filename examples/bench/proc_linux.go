//go:build linux

package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// processCPU is the user plus system CPU time this process has used, from
// getrusage(RUSAGE_SELF).
func processCPU() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}

// procCPU is the user plus system CPU time of process pid: utime and stime,
// fields 14 and 15 of /proc/<pid>/stat, in clock ticks of tick each. Any
// user may read it for any process.
func procCPU(pid int, tick time.Duration) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Field 2, the command, is in parentheses and may hold spaces: count
	// from the last ')'. Field 3 is then the first after it.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("unparsable /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	utime, err1 := strconv.ParseInt(f[14-3], 10, 64)
	stime, err2 := strconv.ParseInt(f[15-3], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(utime+stime) * tick, nil
}

// clockTick is the unit of /proc/<pid>/stat's times: AT_CLKTCK from the
// auxiliary vector (what sysconf(_SC_CLK_TCK) returns), or 1/100 s, the
// value on every common Linux platform, if it cannot be read.
func clockTick() time.Duration {
	const atClkTck = 17
	b, err := os.ReadFile("/proc/self/auxv")
	w := strconv.IntSize / 8
	for i := 0; err == nil && i+2*w <= len(b); i += 2 * w {
		key, val := word(b[i:i+w]), word(b[i+w:i+2*w])
		if key == atClkTck && val > 0 {
			return time.Second / time.Duration(val)
		}
	}
	return 10 * time.Millisecond
}

func word(b []byte) uint64 {
	if len(b) == 4 {
		return uint64(binary.NativeEndian.Uint32(b))
	}
	return binary.NativeEndian.Uint64(b)
}

// loadAverage is the machine's load average over the last minute, from
// /proc/loadavg, as text.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) > 0 {
		return f[0]
	}
	return "?"
}

// findBroker finds the broker process of a local broker URL: the process
// that owns the socket listening on the URL's port (read from
// /proc/net/tcp and tcp6, then matched against /proc/<pid>/fd links),
// which must be a beam.smp. Where another user's fd links cannot be read,
// it falls back to the one beam.smp process that runs as the listening
// socket's owner, if there is exactly one. It says how it found the pid.
func findBroker(rawURL string) (pid int, how string, err error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return 0, "", errors.New("unparsable broker URL")
	}
	port := u.Port()
	if port == "" {
		port = map[bool]string{true: "5671", false: "5672"}[u.Scheme == "amqps"]
	}
	portNum, err := strconv.Atoi(port)
	if err != nil {
		return 0, "", fmt.Errorf("bad port %q", port)
	}
	ips, err := localIPs(u.Hostname())
	if err != nil {
		return 0, "", err
	}
	socks := listeners(portNum, ips)
	if len(socks) == 0 {
		return 0, "", fmt.Errorf("no socket listens on %s:%s in this network namespace", u.Hostname(), port)
	}
	where := net.JoinHostPort(u.Hostname(), port)
	if pid := socketOwner(socks); pid > 0 {
		if c := comm(pid); c != "beam.smp" {
			return 0, "", fmt.Errorf("%s is served by %q (pid %d), not by beam.smp", where, c, pid)
		}
		return pid, fmt.Sprintf("the owner of the socket listening on %s (its /proc/<pid>/fd link)", where), nil
	}
	var cands []int
	for _, p := range processes() {
		if comm(p) == "beam.smp" && procUID(p) == socks[0].uid {
			cands = append(cands, p)
		}
	}
	if len(cands) != 1 {
		return 0, "", fmt.Errorf("cannot read the fds of the process listening on %s, and %d beam.smp processes run as its uid %d; give -broker-pid", where, len(cands), socks[0].uid)
	}
	return cands[0], fmt.Sprintf("the only beam.smp running as uid %d, which owns the socket listening on %s (the fds of that user's processes are not readable here)", socks[0].uid, where), nil
}

// localIPs resolves host and checks that every address is this machine's.
func localIPs(host string) ([]net.IP, error) {
	ips, err := net.LookupIP(host)
	if err != nil {
		return nil, err
	}
	addrs, _ := net.InterfaceAddrs()
	for _, ip := range ips {
		local := ip.IsLoopback()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
				local = true
			}
		}
		if !local {
			return nil, fmt.Errorf("the broker at %s is not on this machine", host)
		}
	}
	return ips, nil
}

// socket is a listening TCP socket from /proc/net/tcp or tcp6.
type socket struct {
	inode string
	uid   int
}

// listeners are the sockets listening on port at one of ips or at the
// unspecified address.
func listeners(port int, ips []net.IP) []socket {
	var out []socket
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(file)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			// sl local rem st tx:rx tr:when retrnsmt uid timeout inode
			fl := strings.Fields(sc.Text())
			if len(fl) < 10 || fl[3] != "0A" { // 0A: LISTEN
				continue
			}
			ip, p, ok := procAddr(fl[1])
			if !ok || p != port || !(ip.IsUnspecified() || containsIP(ips, ip)) {
				continue
			}
			uid, _ := strconv.Atoi(fl[7])
			out = append(out, socket{inode: fl[9], uid: uid})
		}
		f.Close()
	}
	return out
}

// procAddr parses "0100007F:1628": the address as 32-bit words in host
// byte order, each in hex, then the port in hex.
func procAddr(s string) (net.IP, int, bool) {
	h, p, ok := strings.Cut(s, ":")
	raw, err := hex.DecodeString(h)
	port, err2 := strconv.ParseUint(p, 16, 16)
	if !ok || err != nil || err2 != nil || len(raw)%4 != 0 {
		return nil, 0, false
	}
	ip := make(net.IP, len(raw))
	for i := 0; i < len(raw); i += 4 {
		binary.NativeEndian.PutUint32(ip[i:], binary.BigEndian.Uint32(raw[i:]))
	}
	return ip, int(port), true
}

func containsIP(ips []net.IP, ip net.IP) bool {
	for _, x := range ips {
		if x.Equal(ip) {
			return true
		}
	}
	return false
}

// socketOwner is the first process with an fd on one of socks, or 0.
func socketOwner(socks []socket) int {
	want := map[string]bool{}
	for _, s := range socks {
		want["socket:["+s.inode+"]"] = true
	}
	for _, pid := range processes() {
		fds, _ := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", pid))
		for _, fd := range fds {
			if l, err := os.Readlink(fd); err == nil && want[l] {
				return pid
			}
		}
	}
	return 0
}

// processes lists the pids in /proc.
func processes() []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

func comm(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return strings.TrimSpace(string(b))
}

func procUID(pid int) int {
	fi, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
	if err != nil {
		return -1
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid)
	}
	return -1
}
