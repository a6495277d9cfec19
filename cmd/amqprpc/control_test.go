package main

import (
	"encoding/json"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/amqprpc/amqprpc"
)

// fields splits each line of a table after its header into cells, which
// two spaces or more separate.
func fields(table string) [][]string {
	lines := strings.Split(strings.TrimSuffix(table, "\n"), "\n")
	var rows [][]string
	for _, l := range lines[1:] {
		rows = append(rows, cellSep.Split(l, -1))
	}
	return rows
}

var cellSep = regexp.MustCompile(`\s{2,}`)

// TestControlCommands: ls, info and stats against two instances of a
// service, as tables and as JSON.
func TestControlCommands(t *testing.T) {
	u := brokerURL(t)
	queue := testQueue(t, u)
	for range 2 {
		serve(t, u, queue, amqprpc.WithVersion("1.0"), amqprpc.WithMetadata(map[string]string{"team": "maths"}))
	}
	for i := range 6 {
		r := cli(t, u, nil, "call", queue, "Arith.Multiply", `{"A":`+strconv.Itoa(i)+`,"B":2}`)
		require.Equal(t, exitOK, r.code, "call: %s", r.stderr)
	}
	r := cli(t, u, nil, "call", queue, "Arith.Divide", `{"A":1,"B":0}`)
	require.Equal(t, exitFailed, r.code)
	const wait = "-wait=10s" // a loaded machine; info and stats end once both answered

	t.Run("ls", func(t *testing.T) {
		r := cli(t, u, nil, "ls", "-wait=5s")
		require.Equal(t, exitOK, r.code, "ls: %s", r.stderr)
		assert.True(t, strings.HasPrefix(r.stdout, "SERVICE  "), "ls header:\n%s", r.stdout)
		assert.Contains(t, fields(r.stdout), []string{queue, "2", "1.0"}, "ls:\n%s", r.stdout)

		r = cli(t, u, nil, "ls", "-json", "-wait=5s")
		require.Equal(t, exitOK, r.code, "ls -json: %s", r.stderr)
		var services []struct {
			Service   string
			Instances int
			Versions  []string
		}
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &services), "ls -json:\n%s", r.stdout)
		found := false
		for _, s := range services {
			if s.Service == queue {
				found = true
				assert.Equal(t, 2, s.Instances)
				assert.Equal(t, []string{"1.0"}, s.Versions)
			}
		}
		assert.True(t, found, "ls -json has no %q:\n%s", queue, r.stdout)
	})

	var ids []string
	t.Run("info", func(t *testing.T) {
		r := cli(t, u, nil, "info", wait, queue)
		require.Equal(t, exitOK, r.code, "info: %s", r.stderr)
		rows := fields(r.stdout)
		require.Len(t, rows, 2, "info:\n%s", r.stdout)
		for _, row := range rows {
			require.Len(t, row, 8, "info row %q", row)
			assert.Regexp(t, "^[0-9a-f]{16}$", row[0])
			assert.Equal(t, []string{"1.0", strconv.Itoa(os.Getpid())}, []string{row[1], row[3]})
			assert.Equal(t, []string{"64", "0", "team=maths"}, row[5:])
			ids = append(ids, row[0])
		}
		r = cli(t, u, nil, "info", "-json", wait, queue)
		require.Equal(t, exitOK, r.code, "info -json: %s", r.stderr)
		var docs []map[string]any
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &docs), "info -json:\n%s", r.stdout)
		require.Len(t, docs, 2)
		assert.Equal(t, "INFO", docs[0]["type"])
		assert.Equal(t, queue, docs[0]["service"])
	})

	t.Run("stats", func(t *testing.T) {
		r := cli(t, u, nil, "stats", wait, queue)
		require.Equal(t, exitOK, r.code, "stats: %s", r.stderr)
		rows := fields(r.stdout)
		totals := map[string][]string{}
		for _, row := range rows {
			if row[0] == "total" {
				totals[row[1]] = row[2:4]
			}
		}
		assert.Equal(t, map[string][]string{"Arith.Multiply": {"6", "0"}, "Arith.Divide": {"1", "1"}, "(all methods)": {"7", "1"}}, totals, "stats:\n%s", r.stdout)

		require.Len(t, ids, 2, "ids from info")
		var perInstance uint64
		for _, id := range ids {
			r := cli(t, u, nil, "stats", "-json", "-id", id, wait, queue)
			require.Equal(t, exitOK, r.code, "stats -id %s: %s", id, r.stderr)
			var docs []amqprpc.Instance
			require.NoError(t, json.Unmarshal([]byte(r.stdout), &docs), "stats -json -id:\n%s", r.stdout)
			require.Len(t, docs, 1)
			assert.Equal(t, id, docs[0].ID)
			for _, m := range docs[0].Methods {
				perInstance += m.Calls
			}
		}
		assert.EqualValues(t, 7, perInstance, "calls over stats -id of each instance")
	})

	t.Run("no answer", func(t *testing.T) {
		idle := testQueue(t, u)
		serve(t, u, idle, amqprpc.WithoutControl())
		for _, tt := range []struct {
			args []string
			want string
		}{
			{[]string{"info", queue + "-missing"}, "no queue"},
			{[]string{"stats", "-id", "0123456789abcdef", queue}, `no instance "0123456789abcdef"`},
			{[]string{"stats", "-wait=300ms", idle}, "though the queue has 1 consumer"},
		} {
			r := cli(t, u, nil, tt.args...)
			checkFailure(t, tt.args, r, exitFailed, tt.want)
		}
	})
}

// TestControlCommandErrors: usage errors, help and failures on the way.
func TestControlCommandErrors(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"ls", "arith"}, `want no argument, got "arith"`},
		{[]string{"ls", "-id", "x"}, "flag provided but not defined: -id"},
		{[]string{"info"}, "want QUEUE, got 0 arguments"},
		{[]string{"stats", "a", "b"}, "want QUEUE, got 2 arguments"},
		{[]string{"stats", "-wait", "0s", "arith"}, "-wait 0s: want at least 1ms"},
		{[]string{"info", "amq.gen-x"}, "reserved"},
		{[]string{"info", "-id", strings.Repeat("f", 201), "arith"}, "-id of 201 bytes"},
	} {
		r := cli(t, "amqp://guest:guest@127.0.0.1:1/", nil, tt.args...)
		checkFailure(t, tt.args, r, exitUsage, tt.want)
	}
	for _, cmd := range []string{"ls", "info", "stats"} {
		r := cli(t, "", nil, cmd, "-h")
		if r.code != exitOK || !strings.Contains(r.stdout, "Usage: amqprpc "+cmd) || !strings.Contains(r.stdout, "-wait") || !strings.Contains(r.stdout, "Exit status: 0 at least one instance answered") {
			t.Errorf("amqprpc %s -h = exit %d, stdout %q; want exit 0, its usage, flags and exit statuses", cmd, r.code, r.stdout)
		}
	}
	for _, args := range [][]string{{"ls"}, {"stats", "arith"}} {
		r := cli(t, "amqp://guest:refused-pw@127.0.0.1:1/", nil, args...)
		checkFailure(t, args, r, exitTransit, "connection refused")
		assert.NotContains(t, r.stderr, "refused-pw")
	}
}
