// Package controltable writes the answers to control requests
// ([amqprpc.Ping], [amqprpc.Info], [amqprpc.Stats]) as the tables the
// amqprpc command's ls, info and stats print, so that the examples print
// them the same way.
package controltable

import (
	"bytes"
	"cmp"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/amqprpc/amqprpc"
)

// Service is one line of ls: a service and its instances.
type Service struct {
	Service   string   `json:"service"`
	Instances int      `json:"instances"`
	Versions  []string `json:"versions"` // sorted, "" for instances with none
}

// Services groups instances by service, sorted by name.
func Services(instances []amqprpc.Instance) []Service {
	by := map[string]*Service{}
	versions := map[string]map[string]bool{}
	for _, in := range instances {
		s := by[in.Service]
		if s == nil {
			s = &Service{Service: in.Service}
			by[in.Service] = s
			versions[in.Service] = map[string]bool{}
		}
		s.Instances++
		versions[in.Service][in.Version] = true
	}
	out := make([]Service, 0, len(by))
	for _, name := range slices.Sorted(maps.Keys(by)) {
		s := by[name]
		s.Versions = slices.Sorted(maps.Keys(versions[name]))
		out = append(out, *s)
	}
	return out
}

// WriteServices writes ls's table: one line per service.
func WriteServices(w io.Writer, services []Service) error {
	tw := newTable(w, "SERVICE", "INSTANCES", "VERSION")
	for _, s := range services {
		vs := make([]string, len(s.Versions))
		for i, v := range s.Versions {
			vs[i] = orDash(v)
		}
		tw.row(s.Service, s.Instances, strings.Join(vs, ", "))
	}
	return tw.flush()
}

// WriteInfo writes info's table: one line per instance. now is the time
// its uptime is counted to.
func WriteInfo(w io.Writer, instances []amqprpc.Instance, now time.Time) error {
	tw := newTable(w, "ID", "VERSION", "HOST", "PID", "UPTIME", "PREFETCH", "IN FLIGHT", "METADATA")
	for _, in := range instances {
		tw.row(in.ID, orDash(in.Version), orDash(in.Host), in.PID, uptime(in.Started, now), in.Prefetch, in.InFlight, metadata(in.Metadata))
	}
	return tw.flush()
}

// WriteStats writes stats' table: one line per instance and method (and
// its refused requests, if any), then, when more than one instance
// answered, the totals per method over all instances and in all.
func WriteStats(w io.Writer, instances []amqprpc.Instance) error {
	tw := newTable(w, "INSTANCE", "METHOD", "CALLS", "ERRORS", "AVERAGE", "TOTAL TIME", "LAST ERROR")
	totals := map[string]*amqprpc.MethodStats{}
	var all amqprpc.MethodStats
	var refused uint64
	for _, in := range instances {
		for _, m := range in.Methods {
			statsRow(tw, in.ID, m)
			t := totals[m.Name]
			if t == nil {
				t = &amqprpc.MethodStats{Name: m.Name}
				totals[m.Name] = t
			}
			add(t, m)
			add(&all, m)
		}
		if in.Refused > 0 {
			tw.row(in.ID, "(refused)", in.Refused, in.Refused, "-", "-", "unknown method, no type, bad content type or size")
			refused += in.Refused
		}
	}
	if len(instances) < 2 {
		return tw.flush() // the totals would repeat the lines
	}
	for _, name := range slices.Sorted(maps.Keys(totals)) {
		statsRow(tw, "total", *totals[name])
	}
	if refused > 0 {
		tw.row("total", "(refused)", refused, refused, "-", "-", "")
	}
	all.Name = "(all methods)"
	statsRow(tw, "total", all)
	return tw.flush()
}

// add adds m's counters to t. A total has no last error: the instances do
// not say when theirs happened.
func add(t *amqprpc.MethodStats, m amqprpc.MethodStats) {
	t.Calls += m.Calls
	t.Errors += m.Errors
	t.ProcessingTime += m.ProcessingTime
	if t.Calls > 0 {
		t.AverageProcessingTime = t.ProcessingTime / time.Duration(t.Calls)
	}
}

// statsRow writes one line of the stats table.
func statsRow(tw *table, who string, m amqprpc.MethodStats) {
	avg, total := "-", "-"
	if m.Calls > 0 {
		avg, total = Duration(m.AverageProcessingTime), Duration(m.ProcessingTime)
	}
	tw.row(who, m.Name, m.Calls, m.Errors, avg, total, oneLine(m.LastError, 60))
}

// Duration writes d with three significant digits: 1.23ms, 950µs, 12.3s.
func Duration(d time.Duration) string {
	unit := time.Duration(1)
	for x := d; x >= 1000; x /= 10 {
		unit *= 10
	}
	return d.Round(unit).String()
}

// uptime is the time from started to now, to the second.
func uptime(started, now time.Time) string {
	if started.IsZero() {
		return "-"
	}
	return now.Sub(started).Round(time.Second).String()
}

// metadata writes key=value pairs, sorted by key.
func metadata(m map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%s", k, oneLine(m[k], 40))
	}
	return orDash(b.String())
}

// oneLine makes s fit one cell: no line breaks or tabs, at most n runes.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

func orDash(s string) string { return cmp.Or(s, "-") }

// table is a table being written: cells go through tabwriter into buf,
// and flush writes the lines to w without the spaces tabwriter pads a
// line with before an empty last cell.
type table struct {
	tw  *tabwriter.Writer
	buf bytes.Buffer
	w   io.Writer
}

// newTable starts a table with its header line.
func newTable(w io.Writer, header ...string) *table {
	t := &table{w: w}
	t.tw = tabwriter.NewWriter(&t.buf, 0, 0, 2, ' ', 0)
	fmt.Fprintln(t.tw, strings.Join(header, "\t"))
	return t
}

// row writes one line of cells.
func (t *table) row(cells ...any) {
	for i, c := range cells {
		if i > 0 {
			fmt.Fprint(t.tw, "\t")
		}
		fmt.Fprint(t.tw, c)
	}
	fmt.Fprintln(t.tw)
}

// flush writes the table out.
func (t *table) flush() error {
	if err := t.tw.Flush(); err != nil {
		return err
	}
	var out bytes.Buffer
	for line := range bytes.Lines(t.buf.Bytes()) {
		out.Write(bytes.TrimRight(line, " \n"))
		out.WriteByte('\n')
	}
	_, err := t.w.Write(out.Bytes())
	return err
}
