package clustermap

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the expected output of the scenario tests")

// TestScenarios runs the scripts in testdata/scenarios/*.txt and compares
// what they print with the matching .golden file (update it with
// -rewrite and review the diff). After each command the output says the
// new epoch and every PG and node that changed, or the error.
//
// Script lines ('#' starts a comment):
//
//	node ID ADDR [k=v ...]                      AddNode
//	state ID up|down|draining|out               SetNodeState
//	create NAME replicas=R [domain=D] [pgs=N] [select=k:v,...]
//	policy ID replicas=R [domain=D] [select=k:v,...]
//	delete ID                                   DeleteContainer
//	caughtup PG NODE [EPOCH]                    CaughtUp (at the PG's epoch by default)
//	catchup                                     CaughtUp for every backfilling replica
//	key ID CONTAINER read|write|admin           CreateKey
//	revoke ID                                   RevokeKey
//	dump                                        the whole map (Map.String)
func TestScenarios(t *testing.T) {
	files, err := filepath.Glob("testdata/scenarios/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			got := runScenario(t, file)
			golden := strings.TrimSuffix(file, ".txt") + ".golden"
			if *rewrite {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -rewrite to create it)", err)
			}
			if got != string(want) {
				t.Errorf("output differs from %s (run with -rewrite and review the diff):\n%s", golden, got)
			}
		})
	}
}

func runScenario(t *testing.T, file string) string {
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out strings.Builder
	m := New()
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if i := strings.IndexByte(text, '#'); i >= 0 {
			text = strings.TrimSpace(text[:i])
		}
		if text == "" {
			continue
		}
		fmt.Fprintf(&out, "> %s\n", text)
		args := strings.Fields(text)
		var cmds []Command
		switch args[0] {
		case "dump":
			out.WriteString(m.String())
			continue
		case "catchup":
			for _, pg := range m.PGs {
				for _, n := range pg.Backfilling {
					cmds = append(cmds, CaughtUp{PG: pg.ID, Node: n, Epoch: 0})
				}
			}
		default:
			cmd, err := parseScenarioCommand(m, args)
			if err != nil {
				t.Fatalf("%s:%d: %v", file, line, err)
			}
			cmds = []Command{cmd}
		}
		for _, cmd := range cmds {
			if c, ok := cmd.(CaughtUp); ok && args[0] == "catchup" {
				pg, _ := m.PG(c.PG)
				c.Epoch = pg.Epoch
				cmd = c
			}
			next, err := m.Apply(cmd)
			if err != nil {
				fmt.Fprintf(&out, "error: %v\n", err)
				continue
			}
			if err := checkAll(m, next, cmd); err != nil {
				t.Fatalf("%s:%d: %v", file, line, err)
			}
			fmt.Fprintf(&out, "epoch %d\n", next.Epoch)
			writeChanges(&out, m, next)
			m = next
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

// writeChanges prints the lines of next's dump that are not in prev's.
func writeChanges(out *strings.Builder, prev, next *Map) {
	old := map[string]bool{}
	for _, l := range strings.Split(prev.String(), "\n") {
		old[l] = true
	}
	for _, l := range strings.Split(next.String(), "\n") {
		if l != "" && !old[l] && !strings.HasPrefix(l, "epoch ") {
			fmt.Fprintf(out, "  %s\n", l)
		}
	}
	for _, pg := range prev.PGs {
		if _, ok := next.PG(pg.ID); !ok {
			fmt.Fprintf(out, "  pg %d deleted\n", pg.ID)
		}
	}
}

func parseScenarioCommand(m *Map, args []string) (Command, error) {
	num := func(i int) uint64 {
		if i >= len(args) {
			return 0
		}
		n, _ := strconv.ParseUint(args[i], 10, 64)
		return n
	}
	kv := func(from int) map[string]string {
		l := map[string]string{}
		for _, a := range args[from:] {
			k, v, _ := strings.Cut(a, "=")
			l[k] = v
		}
		return l
	}
	policy := func(opts map[string]string) Policy {
		var p Policy
		p.Replicas, _ = strconv.Atoi(opts["replicas"])
		p.FailureDomain = opts["domain"]
		if s, ok := opts["pgs"]; ok {
			n, _ := strconv.ParseUint(s, 10, 32)
			p.PGCount = uint32(n)
		}
		if s := opts["select"]; s != "" {
			p.Selector = map[string]string{}
			for _, pair := range strings.Split(s, ",") {
				k, v, _ := strings.Cut(pair, ":")
				p.Selector[k] = v
			}
		}
		return p
	}
	switch args[0] {
	case "node":
		if len(args) < 3 {
			return nil, fmt.Errorf("node ID ADDR [k=v ...]")
		}
		return AddNode{ID: NodeID(num(1)), Addr: args[2], Labels: kv(3), Capacity: 1 << 40}, nil
	case "state":
		if len(args) != 3 {
			return nil, fmt.Errorf("state ID STATE")
		}
		st, err := ParseNodeState(args[2])
		return SetNodeState{ID: NodeID(num(1)), State: st}, err
	case "create":
		if len(args) < 2 {
			return nil, fmt.Errorf("create NAME opts")
		}
		return CreateContainer{Name: args[1], Policy: policy(kv(2))}, nil
	case "policy":
		return SetPolicy{Container: ContainerID(num(1)), Policy: policy(kv(2))}, nil
	case "delete":
		return DeleteContainer{ID: ContainerID(num(1))}, nil
	case "key":
		if len(args) != 4 {
			return nil, fmt.Errorf("key ID CONTAINER ACCESS")
		}
		a, err := ParseAccess(args[3])
		if err != nil {
			a = Access(num(3)) // a number: an invalid access on purpose
		}
		return CreateKey{ID: args[1], Container: ContainerID(num(2)), Access: a}, nil
	case "revoke":
		if len(args) != 2 {
			return nil, fmt.Errorf("revoke ID")
		}
		return RevokeKey{ID: args[1]}, nil
	case "caughtup":
		c := CaughtUp{PG: PGID(num(1)), Node: NodeID(num(2)), Epoch: num(3)}
		if len(args) < 4 {
			if pg, ok := m.PG(c.PG); ok {
				c.Epoch = pg.Epoch
			}
		}
		return c, nil
	}
	return nil, fmt.Errorf("unknown command %q", args[0])
}
