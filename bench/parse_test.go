package bench

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weftfs/weft/engine"
)

// NB: not -rewrite, which another test file of the package may define.
var rewriteJobs = flag.Bool("rewrite-jobs", false, "rewrite testdata/jobs/*.out from the parser's output")

// withDefaults returns the default job named name with edits applied.
func withDefaults(name string, edit func(j *Job)) Job {
	j := defaultJob(name)
	if edit != nil {
		edit(&j)
	}
	return j
}

func opts(kv ...string) []Option {
	if len(kv)%2 != 0 {
		panic("opts: odd number of arguments")
	}
	var out []Option
	for i := 0; i < len(kv); i += 2 {
		out = append(out, Option{Name: kv[i], Value: kv[i+1]})
	}
	return out
}

func TestParseArgsValid(t *testing.T) {
	dir := t.TempDir()
	jobFile := filepath.Join(dir, "two.fio")
	if err := os.WriteFile(jobFile, []byte(`[global]
bs=64k
iodepth=4

[reader]
rw=randread

[writer]
rw=write
filename=/tmp/own
`), 0o644); err != nil {
		t.Fatal(err)
	}
	defSpec := func(jobs ...Job) *Spec {
		return &Spec{Jobs: jobs, OutputFormat: "normal", Rounds: 3, ETA: "auto", FioPath: "fio"}
	}
	tests := []struct {
		name string
		args []string
		want *Spec
	}{
		{
			name: "target only",
			args: []string{"file:/tmp/x"},
			want: defSpec(withDefaults("job", func(j *Job) { j.Target = "file:/tmp/x" })),
		},
		{
			name: "one job, both value forms, bare flag",
			args: []string{"--rw=randread", "--bs=8k", "--iodepth", "32", "--time_based", "--runtime", "10s", "file:/dev/nvme0n1"},
			want: defSpec(withDefaults("job", func(j *Job) {
				j.Target = "file:/dev/nvme0n1"
				j.Pattern = PatternRandRead
				j.BlockSize = 8192
				j.IODepth = 32
				j.TimeBased = true
				j.Runtime = 10 * time.Second
				j.Options = opts("rw", "randread", "bs", "8k", "iodepth", "32", "time_based", "1", "runtime", "10s")
			})),
		},
		{
			name: "every job option",
			args: []string{
				"--rw=randrw", "--bs=1m", "--size=2g", "--iodepth=1", "--numjobs=4", "--runtime=2m",
				"--time_based=1", "--ramp_time=500ms", "--direct=1", "--fsync=8", "--ioengine=psync",
				"--rwmixread=30", "--group_reporting", "--filename=/tmp/y", "--description= two words ",
			},
			want: defSpec(withDefaults("job", func(j *Job) {
				j.Target = "file:/tmp/y"
				j.Pattern = PatternRandRW
				j.BlockSize = 1 << 20
				j.Size = 2 << 30
				j.NumJobs = 4
				j.Runtime = 2 * time.Minute
				j.TimeBased = true
				j.RampTime = 500 * time.Millisecond
				j.Direct = true
				j.Fsync = 8
				j.IOEngine = EnginePsync
				j.RWMixRead = 30
				j.GroupReporting = true
				j.Options = opts("rw", "randrw", "bs", "1m", "size", "2g", "iodepth", "1", "numjobs", "4",
					"runtime", "2m", "time_based", "1", "ramp_time", "500ms", "direct", "1", "fsync", "8",
					"ioengine", "psync", "rwmixread", "30", "group_reporting", "1", "filename", "/tmp/y",
					"description", "two words")
			})),
		},
		{
			name: "globals then two named jobs; a job option overrides a global",
			args: []string{"--direct=1", "--bs=64k", "--name=r", "--rw=read", "--name", "w", "--rw=write", "--bs", "1m", "file:/d"},
			want: defSpec(
				withDefaults("r", func(j *Job) {
					j.Target = "file:/d"
					j.Direct = true
					j.BlockSize = 64 << 10
					j.Options = opts("direct", "1", "bs", "64k", "rw", "read")
				}),
				withDefaults("w", func(j *Job) {
					j.Target = "file:/d"
					j.Direct = true
					j.Pattern = PatternWrite
					j.BlockSize = 1 << 20
					j.Options = opts("direct", "1", "bs", "64k", "rw", "write", "bs", "1m")
				}),
			),
		},
		{
			name: "filename= overrides the target argument for its job",
			args: []string{"--name=a", "--name=b", "--filename=file:/other", "file:/d"},
			want: defSpec(
				withDefaults("a", func(j *Job) { j.Target = "file:/d" }),
				withDefaults("b", func(j *Job) {
					j.Target = "file:/other"
					j.Options = opts("filename", "file:/other")
				}),
			),
		},
		{
			name: "engine target with every engine option",
			args: []string{
				"--rw=randrw", "--size=1g", "--iodepth=32", "--engine_object_size=4m", "--engine_fill=0.25",
				"--engine_segment_size=64m", "--engine_shards=2", "--engine_cores=2, 4-5", "--engine_mode=poll",
				"--engine_record_size=4k", "--direct=1", "--ioengine=io_uring", "--fsync=0", "engine:/var/tmp/e.dev",
			},
			want: defSpec(withDefaults("job", func(j *Job) {
				j.Target = "engine:/var/tmp/e.dev"
				j.Pattern = PatternRandRW
				j.Size = 1 << 30
				j.IODepth = 32
				j.Direct = true
				j.Engine = EngineOptions{ObjectSize: 4 << 20, Fill: 0.25, SegmentSize: 64 << 20, Shards: 2, Cores: []int{2, 4, 5}, Mode: engine.Poll, RecordSize: 4096}
				j.Options = opts("rw", "randrw", "size", "1g", "iodepth", "32", "engine_object_size", "4m", "engine_fill", "0.25",
					"engine_segment_size", "64m", "engine_shards", "2", "engine_cores", "2, 4-5", "engine_mode", "poll",
					"engine_record_size", "4k", "direct", "1", "ioengine", "io_uring", "fsync", "0")
			})),
		},
		{
			name: "filename=engine:PATH",
			args: []string{"--size=8m", "--filename=engine:/e", "--engine_mode=Interrupt"},
			want: defSpec(withDefaults("job", func(j *Job) {
				j.Target = "engine:/e"
				j.Size = 8 << 20
				j.Engine.Mode = engine.Interrupt
				j.Options = opts("size", "8m", "filename", "engine:/e", "engine_mode", "Interrupt")
			})),
		},
		{
			name: "run flags",
			args: []string{"--output-format=json", "--compare-fio", "--rounds", "5", "--eta=never", "--fio=/opt/fio/bin/fio", "file:/x"},
			want: &Spec{
				Jobs:         []Job{withDefaults("job", func(j *Job) { j.Target = "file:/x" })},
				OutputFormat: "json", CompareFio: true, Rounds: 5, ETA: "never", FioPath: "/opt/fio/bin/fio",
			},
		},
		{
			name: "flags given =0, rw=rw, sizes in any case",
			args: []string{"--compare-fio=0", "--time_based=0", "--group_reporting=0", "--rw=rw", "--bs=4KiB", "--size=1GB", "file:/x"},
			want: defSpec(withDefaults("job", func(j *Job) {
				j.Target = "file:/x"
				j.Pattern = PatternReadWrite
				j.Size = 1 << 30
				j.Options = opts("time_based", "0", "group_reporting", "0", "rw", "rw", "bs", "4KiB", "size", "1GB")
			})),
		},
		{
			name: "after -- everything is positional",
			args: []string{"--bs=8k", "--", "file:/x"},
			want: defSpec(withDefaults("job", func(j *Job) {
				j.Target = "file:/x"
				j.BlockSize = 8192
				j.Options = opts("bs", "8k")
			})),
		},
		{
			name: "job file; command-line globals override it; target for jobs without filename=",
			args: []string{"--iodepth=2", jobFile, "file:/tmp/t"},
			want: defSpec(
				withDefaults("reader", func(j *Job) {
					j.Target = "file:/tmp/t"
					j.Pattern = PatternRandRead
					j.BlockSize = 64 << 10
					j.IODepth = 2
					j.Options = opts("bs", "64k", "iodepth", "4", "rw", "randread", "iodepth", "2")
				}),
				withDefaults("writer", func(j *Job) {
					j.Target = "file:/tmp/own"
					j.Pattern = PatternWrite
					j.BlockSize = 64 << 10
					j.IODepth = 2
					j.Options = opts("bs", "64k", "iodepth", "4", "rw", "write", "filename", "/tmp/own", "iodepth", "2")
				}),
			),
		},
		{
			name: "job file and a command-line job",
			args: []string{jobFile, "--name=extra", "--rw=randwrite", "file:/tmp/t"},
			want: defSpec(
				withDefaults("reader", func(j *Job) {
					j.Target = "file:/tmp/t"
					j.Pattern = PatternRandRead
					j.BlockSize = 64 << 10
					j.IODepth = 4
					j.Options = opts("bs", "64k", "iodepth", "4", "rw", "randread")
				}),
				withDefaults("writer", func(j *Job) {
					j.Target = "file:/tmp/own"
					j.Pattern = PatternWrite
					j.BlockSize = 64 << 10
					j.IODepth = 4
					j.Options = opts("bs", "64k", "iodepth", "4", "rw", "write", "filename", "/tmp/own")
				}),
				withDefaults("extra", func(j *Job) {
					j.Target = "file:/tmp/t"
					j.Pattern = PatternRandWrite
					j.Options = opts("rw", "randwrite")
				}),
			),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseArgs(tt.args)
			if err != nil {
				t.Fatalf("ParseArgs(%q): %v", tt.args, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseArgs(%q)\n got %+v\nwant %+v", tt.args, got, tt.want)
			}
			checkFormatRoundTrip(t, got.Jobs)
		})
	}
}

func TestParseArgsHelp(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"--help"}, {"--bs=3k", "-h"}, {"file:/x", "--help", "--foo"}} {
		if _, err := ParseArgs(args); !errors.Is(err, ErrHelp) {
			t.Errorf("ParseArgs(%q) = %v, want ErrHelp", args, err)
		}
	}
}

// TestUsageDocumentsEveryOption keeps Usage in step with the parser.
func TestUsageDocumentsEveryOption(t *testing.T) {
	for _, name := range strings.Split(cliOptionNames, ", ") {
		if !strings.Contains(Usage, "--"+name) {
			t.Errorf("Usage does not mention --%s", name)
		}
	}
	for _, s := range targetSchemes {
		if !strings.Contains(Usage, s) {
			t.Errorf("Usage does not mention target %s", s)
		}
	}
	for _, d := range jobOptionDefs {
		if !strings.Contains(cliOptionNames, d.name) {
			t.Errorf("cliOptionNames lacks %s", d.name)
		}
	}
}

func TestParseArgsProblems(t *testing.T) {
	const accepted = "accepted: name, rw, bs, size, iodepth, numjobs, runtime, time_based, ramp_time, direct, " +
		"fsync, ioengine, rwmixread, group_reporting, lat_percentiles, filename, description, iodepth_batch_submit, iodepth_batch, fixedbufs, registerfiles, sqthread_poll, iodepth_batch_complete_min, iodepth_batch_complete, iodepth_batch_complete_max, " +
		"engine_object_size, engine_fill, engine_segment_size, engine_shards, engine_cores, engine_mode, engine_plp, engine_record_size, weft_inode, weft_chunk_size, weft_cluster_id, weft_key_id, weft_key_secret, weft_layout, output-format, compare-fio, rounds, eta, fio, help"
	const notTarget = "accepted: file:PATH, engine:PATH, weft://ADDR/CONTAINER"
	const notFilename = "accepted: a path, file:PATH, engine:PATH or weft://ADDR/CONTAINER"
	missing := filepath.Join(t.TempDir(), "missing.fio")
	tests := []struct {
		args []string
		want []string
	}{
		// Values of job options, one at a time.
		{[]string{"--bs=3k", "--direct=1", "file:/x"}, []string{"bench: bs=3k: with direct=1 must be a multiple of 4096 bytes (the O_DIRECT alignment)"}},
		{[]string{"--bs=100", "file:/x"}, []string{"bench: bs=100: must be between 512 bytes and 64m"}},
		{[]string{"--bs=128m", "file:/x"}, []string{"bench: bs=128m: must be between 512 bytes and 64m"}},
		{[]string{"--bs=1000", "file:/x"}, []string{"bench: bs=1000: must be a multiple of 512 bytes"}},
		{[]string{"--bs=abc", "file:/x"}, []string{"bench: bs=abc: not a size; " + sizeAccepted}},
		{[]string{"--bs=4q", "file:/x"}, []string{`bench: bs=4q: unknown suffix "q"; ` + sizeAccepted}},
		{[]string{"--size=1.5g", "file:/x"}, []string{`bench: size=1.5g: unknown suffix ".5g"; ` + sizeAccepted}},
		{[]string{"--size=-1", "file:/x"}, []string{"bench: size=-1: must not be negative"}},
		{[]string{"--size=0", "file:/x"}, []string{"bench: size=0: must be greater than 0; leave size out to use the whole existing file"}},
		{[]string{"--size=99999999t", "file:/x"}, []string{"bench: size=99999999t: too large; the limit is 8 EiB"}},
		{[]string{"--size=1k", "file:/x"}, []string{"bench: size=1k: must be at least bs=4k"}},
		{[]string{"--size=4k", "--bs=8k", "file:/x"}, []string{"bench: size=4k: must be at least bs=8k"}},
		{[]string{"--iodepth=0", "file:/x"}, []string{"bench: iodepth=0: must be between 1 and 4096"}},
		{[]string{"--iodepth=4097", "file:/x"}, []string{"bench: iodepth=4097: must be between 1 and 4096"}},
		{[]string{"--iodepth=99999999999999999999", "file:/x"}, []string{"bench: iodepth=99999999999999999999: must be between 1 and 4096"}},
		{[]string{"--iodepth=deep", "file:/x"}, []string{"bench: iodepth=deep: not a whole number; accepted: 1 to 4096"}},
		{[]string{"--numjobs=0", "file:/x"}, []string{"bench: numjobs=0: must be between 1 and 256"}},
		{[]string{"--numjobs=257", "file:/x"}, []string{"bench: numjobs=257: must be between 1 and 256"}},
		{[]string{"--rwmixread=101", "file:/x"}, []string{"bench: rwmixread=101: must be between 0 and 100"}},
		{[]string{"--rwmixread=-1", "file:/x"}, []string{"bench: rwmixread=-1: must be between 0 and 100"}},
		{[]string{"--fsync=-1", "file:/x"}, []string{"bench: fsync=-1: must be between 0 and 2147483647"}},
		{[]string{"--ioengine=psync", "--iodepth=4", "file:/x"}, []string{"bench: iodepth=4: with ioengine=psync must be 1 (psync has one I/O in flight)"}},
		{[]string{"--ioengine=libaio", "file:/x"}, []string{"bench: ioengine=libaio: unknown engine; accepted: io_uring, psync"}},
		{[]string{"--rw=sideways", "file:/x"}, []string{"bench: rw=sideways: unknown pattern; accepted: read, write, randread, randwrite, randrw, readwrite"}},
		{[]string{"--time_based", "file:/x"}, []string{"bench: time_based=1: needs runtime greater than 0"}},
		{[]string{"--time_based", "--runtime=0", "file:/x"}, []string{"bench: time_based=1: needs runtime greater than 0"}},
		{[]string{"--time_based=yes", "file:/x"}, []string{"bench: time_based=yes: accepted: 1 or 0 (or bare time_based)"}},
		{[]string{"--runtime=10x", "file:/x"}, []string{`bench: runtime=10x: unknown unit "x"; ` + timeAccepted}},
		{[]string{"--runtime=1.5s", "file:/x"}, []string{`bench: runtime=1.5s: unknown unit ".5s"; ` + timeAccepted}},
		{[]string{"--ramp_time=-1s", "file:/x"}, []string{"bench: ramp_time=-1s: must not be negative"}},
		{[]string{"--ramp_time=soon", "file:/x"}, []string{"bench: ramp_time=soon: not a time; " + timeAccepted}},
		{[]string{"--direct=2", "file:/x"}, []string{"bench: direct=2: accepted: 0 or 1"}},
		{[]string{"--direct", "file:/x"}, []string{"bench: direct=file:/x: accepted: 0 or 1", "bench: no target; give file:PATH, engine:PATH, weft://ADDR/CONTAINER or filename="}},
		{[]string{"file:/x", "--bs"}, []string{"bench: --bs: needs a value (--bs=VALUE)"}},
		{[]string{"--bs", "--iodepth=2", "file:/x"}, []string{"bench: --bs: needs a value (--bs=VALUE)"}},
		{[]string{"--description=a\nb", "file:/x"}, []string{`bench: --description: value "a\nb" contains control characters`}},

		// Targets.
		{[]string{}, []string{"bench: no target; give file:PATH, engine:PATH, weft://ADDR/CONTAINER or filename="}},
		{[]string{"--bs=8k"}, []string{"bench: no target; give file:PATH, engine:PATH, weft://ADDR/CONTAINER or filename="}},
		{[]string{"--name=a", "--name=b", "--filename=/b"}, []string{"bench: job a: no target; give file:PATH, engine:PATH, weft://ADDR/CONTAINER or filename="}},
		{[]string{"path:/mnt/weft"}, []string{"bench: target path:/mnt/weft: not supported yet; " + notTarget}},
		{[]string{"--weft_cluster_id=c", "--weft_key_id=k", "--weft_key_secret=00", "weft://10.0.0.1:7400/1vol"}, []string{`bench: target weft://10.0.0.1:7400/1vol: container "1vol" starts with a digit but is not a whole number; accepted: weft://HOST:PORT/CONTAINER (a node) or weft://HOST:PORT[,HOST:PORT...]/NAME (a cluster)`}},
		{[]string{"file:"}, []string{"bench: target file:: empty path; accepted: file:PATH"}},
		{[]string{"engine:"}, []string{"bench: target engine:: empty path; accepted: engine:PATH"}},
		{[]string{"file:/a", "engine:/b"}, []string{"bench: 2 targets (file:/a, engine:/b); give one, or filename= in each job"}},
		{[]string{"--filename=path:/x"}, []string{"bench: filename=path:/x: not supported yet; " + notFilename}},
		{[]string{"--filename=file:"}, []string{"bench: filename=file:: empty path; " + notFilename}},
		{[]string{"--filename=engine:"}, []string{"bench: filename=engine:: empty path; " + notFilename}},

		// engine: options and the rules an engine: target adds.
		{[]string{"--engine_fill=0", "engine:/e"}, []string{"bench: engine_fill=0: must be above 0 and at most 0.9 (the engine's cleaner needs free segments)"}},
		{[]string{"--engine_fill=0.95", "engine:/e"}, []string{"bench: engine_fill=0.95: must be above 0 and at most 0.9 (the engine's cleaner needs free segments)"}},
		{[]string{"--engine_fill=-0.5", "engine:/e"}, []string{"bench: engine_fill=-0.5: must be above 0 and at most 0.9 (the engine's cleaner needs free segments)"}},
		{[]string{"--engine_fill=half", "engine:/e"}, []string{"bench: engine_fill=half: not a number; accepted: a fraction above 0 and at most 0.9, e.g. 0.5"}},
		{[]string{"--engine_fill=NaN", "engine:/e"}, []string{"bench: engine_fill=NaN: not a number; accepted: a fraction above 0 and at most 0.9, e.g. 0.5"}},
		{[]string{"--engine_mode=spin", "engine:/e"}, []string{"bench: engine_mode=spin: unknown mode; accepted: poll, hybrid, interrupt"}},
		{[]string{"--engine_mode=", "engine:/e"}, []string{"bench: engine_mode=: unknown mode; accepted: poll, hybrid, interrupt"}},
		{[]string{"--engine_shards=0", "engine:/e"}, []string{"bench: engine_shards=0: must be between 1 and 256"}},
		{[]string{"--engine_cores=1,x", "engine:/e"}, []string{`bench: engine_cores=1,x: "x" is not a CPU number or range; accepted: CPU numbers from 0 to 1023 and ranges such as 4-7, separated by commas`}},
		{[]string{"--engine_cores=5-2", "engine:/e"}, []string{`bench: engine_cores=5-2: CPU range "5-2" runs backwards; accepted: CPU numbers from 0 to 1023 and ranges such as 4-7, separated by commas`}},
		{[]string{"--engine_cores=0-1023", "engine:/e"}, []string{"bench: engine_cores=0-1023: more than 256 CPUs listed"}},
		{[]string{"--engine_segment_size=3m", "engine:/e"}, []string{"bench: engine_segment_size=3m: must be a power of two from 1m to 1g"}},
		{[]string{"--engine_record_size=6k", "engine:/e"}, []string{"bench: engine_record_size=6k: must be a multiple of 4k from 4k to 1m"}},
		{[]string{"--engine_record_size=2m", "engine:/e"}, []string{"bench: engine_record_size=2m: must be a multiple of 4k from 4k to 1m"}},
		{[]string{"--engine_object_size=1k", "engine:/e"}, []string{"bench: engine_object_size=1k: must be between 4k and 1t"}},
		{[]string{"--ioengine=psync", "engine:/e"}, []string{"bench: ioengine=psync: not accepted with an engine: target, which the weft engine drives through its own queues; leave ioengine out"}},
		{[]string{"--ioengine=psync", "--iodepth=4", "engine:/e"}, []string{"bench: ioengine=psync: not accepted with an engine: target, which the weft engine drives through its own queues; leave ioengine out"}},
		{[]string{"--rw=randwrite", "--fsync=8", "engine:/e"}, []string{"bench: fsync=8: not accepted with an engine: target: every engine write is durable when it completes, so there is nothing to fsync"}},
		{[]string{"--bs=8m", "--rw=randrw", "--engine_object_size=8m", "engine:/e"}, []string{"bench: bs=8m: with an engine: target and writes must be at most 4m (the engine's largest write)"}},
		{[]string{"--bs=3k", "engine:/e"}, []string{"bench: bs=3k: must divide engine_object_size (default 1m), so that no I/O spans two objects; give engine_object_size= a multiple of bs"}},
		{[]string{"--bs=64k", "--engine_object_size=96k", "engine:/e"}, []string{"bench: engine_object_size=96k: must be a multiple of bs=64k, so that no I/O spans two objects"}},
		{[]string{"--compare-fio", "--name=a", "engine:/e", "--name=b", "--filename=/f"}, []string{"bench: job a: --compare-fio: target engine:/e: fio cannot drive the weft engine; compare a file:PATH target"}},
		{[]string{missing}, []string{"bench: job file: open " + missing + ": no such file or directory (a target is written file:PATH)"}},

		// Names and unknown options.
		{[]string{"--foo", "file:/x"}, []string{"bench: unknown option --foo; " + accepted}},
		{[]string{"--blocksize=4k", "file:/x"}, []string{"bench: unknown option --blocksize; " + accepted}},
		{[]string{"-x", "file:/x"}, []string{"bench: unknown option -x; options start with -- (" + accepted + ")"}},
		{[]string{"--name=", "file:/x"}, []string{"bench: --name=: job name must not be empty"}},
		{[]string{"--name=global", "file:/x"}, []string{"bench: --name=global: global names the [global] section, not a job"}},
		{[]string{"--name=a[1]", "file:/x"}, []string{"bench: --name=a[1]: job name must not contain [ or ]"}},

		// Run flags.
		{[]string{"--output-format=xml", "file:/x"}, []string{"bench: --output-format=xml: unknown format; accepted: normal, json"}},
		{[]string{"--rounds=0", "--compare-fio", "file:/x"}, []string{"bench: --rounds=0: must be between 1 and 100"}},
		{[]string{"--rounds=101", "file:/x"}, []string{"bench: --rounds=101: must be between 1 and 100"}},
		{[]string{"--eta=sometimes", "file:/x"}, []string{"bench: --eta=sometimes: accepted: auto, always, never"}},
		{[]string{"--compare-fio=2", "file:/x"}, []string{"bench: --compare-fio=2: accepted: 1 or 0 (or bare --compare-fio)"}},
		{[]string{"--fio=", "file:/x"}, []string{"bench: --fio=: needs the path of the fio binary"}},

		// Several problems at once, in the order met.
		{
			[]string{"--bs=3k", "--direct=1", "--iodepth=0", "--rw=sideways", "--foo", "path:/e"},
			[]string{
				"bench: iodepth=0: must be between 1 and 4096",
				"bench: rw=sideways: unknown pattern; accepted: read, write, randread, randwrite, randrw, readwrite",
				"bench: unknown option --foo; " + accepted,
				"bench: target path:/e: not supported yet; " + notTarget,
				"bench: bs=3k: with direct=1 must be a multiple of 4096 bytes (the O_DIRECT alignment)",
			},
		},
		// With several jobs, a job's problems name it...
		{
			[]string{"--name=a", "--iodepth=0", "--name=b", "--bs=3k", "--direct=1", "--ioengine=psync", "--iodepth=2", "file:/x"},
			[]string{
				"bench: job a: iodepth=0: must be between 1 and 4096",
				"bench: job b: bs=3k: with direct=1 must be a multiple of 4096 bytes (the O_DIRECT alignment)",
				"bench: job b: iodepth=2: with ioengine=psync must be 1 (psync has one I/O in flight)",
			},
		},
		// ...a bad global value is reported once...
		{
			[]string{"--iodepth=0", "--name=a", "--name=b", "file:/x"},
			[]string{"bench: iodepth=0: must be between 1 and 4096"},
		},
		// ...and a rule broken through globals, for each job it breaks.
		{
			[]string{"--bs=3k", "--direct=1", "--name=a", "--name=b", "file:/x"},
			[]string{
				"bench: job a: bs=3k: with direct=1 must be a multiple of 4096 bytes (the O_DIRECT alignment)",
				"bench: job b: bs=3k: with direct=1 must be a multiple of 4096 bytes (the O_DIRECT alignment)",
			},
		},
		// A bad value does not also break the rules it takes part in.
		{
			[]string{"--time_based", "--runtime=forever", "--bs=huge", "--direct=1", "--size=1k", "file:/x"},
			[]string{
				"bench: runtime=forever: not a time; " + timeAccepted,
				"bench: bs=huge: not a size; " + sizeAccepted,
			},
		},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			spec, err := ParseArgs(tt.args)
			var ue *UsageError
			if !errors.As(err, &ue) {
				t.Fatalf("ParseArgs(%q) = %+v, %v; want a *UsageError", tt.args, spec, err)
			}
			if !reflect.DeepEqual(ue.Problems, tt.want) {
				t.Errorf("ParseArgs(%q) problems:\n%s\nwant:\n%s", tt.args, strings.Join(ue.Problems, "\n"), strings.Join(tt.want, "\n"))
			}
			if ue.Error() != strings.Join(tt.want, "\n") {
				t.Errorf("Error() = %q", ue.Error())
			}
		})
	}
}

func TestParseArgsManyProblemsCapped(t *testing.T) {
	var args []string
	for range problemsMax + 5 {
		args = append(args, "--iodepth=0")
	}
	args = append(args, "file:/x")
	_, err := ParseArgs(args)
	var ue *UsageError
	if !errors.As(err, &ue) {
		t.Fatalf("got %v, want *UsageError", err)
	}
	if len(ue.Problems) != problemsMax+1 || ue.Problems[problemsMax] != "bench: 5 more problems not shown" {
		t.Errorf("got %d problems, last %q", len(ue.Problems), ue.Problems[len(ue.Problems)-1])
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{"512", 512, true},
		{"4k", 4 << 10, true},
		{"4K", 4 << 10, true},
		{"4kb", 4 << 10, true},
		{"4KiB", 4 << 10, true},
		{"16m", 16 << 20, true},
		{"16MB", 16 << 20, true},
		{"16mib", 16 << 20, true},
		{"2g", 2 << 30, true},
		{"2Gb", 2 << 30, true},
		{"2gib", 2 << 30, true},
		{"3t", 3 << 40, true},
		{"3TB", 3 << 40, true},
		{"3tib", 3 << 40, true},
		{"0010", 10, true},
		{"8388607t", 8388607 << 40, true},
		{"9223372036854775807", 9223372036854775807, true},
		{"9223372036854775808", 0, false},
		{"8388608t", 0, false},
		{"", 0, false},
		{"k", 0, false},
		{"-1", 0, false},
		{"+1", 0, false},
		{"1.5k", 0, false},
		{"1 k", 0, false},
		{" 1k", 0, false},
		{"1kk", 0, false},
		{"1b", 0, false},
		{"1p", 0, false},
		{"0x10", 0, false},
		{"1_000", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "bench: size ") {
			t.Errorf("ParseSize(%q) error %q lacks the bench: prefix", tt.in, err)
		}
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"0", 0, true},
		{"30", 30 * time.Second, true},
		{"30s", 30 * time.Second, true},
		{"250us", 250 * time.Microsecond, true},
		{"250ms", 250 * time.Millisecond, true},
		{"2m", 2 * time.Minute, true},
		{"2M", 2 * time.Minute, true},
		{"1h", time.Hour, true},
		{"1d", 24 * time.Hour, true},
		{"1D", 24 * time.Hour, true},
		{"106751d", 106751 * 24 * time.Hour, true},
		{"106752d", 0, false},
		{"9223372036854775807us", 0, false},
		{"", 0, false},
		{"s", 0, false},
		{"-1", 0, false},
		{"1.5s", 0, false},
		{"1ns", 0, false},
		{"1w", 0, false},
		{"1h30m", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseDuration(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "bench: time ") {
			t.Errorf("ParseDuration(%q) error %q lacks the bench: prefix", tt.in, err)
		}
	}
}

func TestPatternEngineString(t *testing.T) {
	for p, want := range []string{"read", "write", "randread", "randwrite", "randrw", "readwrite"} {
		if got := Pattern(p).String(); got != want {
			t.Errorf("Pattern(%d) = %q, want %q", p, got, want)
		}
		if got, ok := parsePattern(want); !ok || got != Pattern(p) {
			t.Errorf("parsePattern(%q) = %v, %v", want, got, ok)
		}
	}
	if got := Pattern(6).String(); got != "Pattern(6)" {
		t.Errorf("Pattern(6) = %q", got)
	}
	if EngineIOUring.String() != "io_uring" || EnginePsync.String() != "psync" || IOEngine(-1).String() != "IOEngine(-1)" {
		t.Errorf("IOEngine strings: %q %q %q", EngineIOUring, EnginePsync, IOEngine(-1))
	}
}

// TestJobFiles parses each testdata/jobs/*.fio and compares the jobs (and
// what FormatJobFile makes of them), or the problems, with NAME.out. Run
// with -rewrite-jobs to update the .out files, then review the diff.
func TestJobFiles(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "jobs", "*.fio"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no job files: %v", err)
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			jobs, err := ParseJobFile(filepath.Base(path), data)
			var got string
			if err != nil {
				var ue *UsageError
				if !errors.As(err, &ue) {
					t.Fatalf("error %v is not a *UsageError", err)
				}
				got = "error:\n" + err.Error() + "\n"
			} else {
				got = dumpJobs(jobs) + "--- FormatJobFile\n" + string(FormatJobFile(jobs))
				checkFormatRoundTrip(t, jobs)
				jobs2, err := ParseJobFile("formatted", FormatJobFile(jobs))
				if err != nil || !reflect.DeepEqual(jobs, jobs2) {
					t.Errorf("round trip through FormatJobFile: %v\n got %+v\nwant %+v", err, jobs2, jobs)
				}
			}
			outPath := strings.TrimSuffix(path, ".fio") + ".out"
			if *rewriteJobs {
				if err := os.WriteFile(outPath, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(outPath)
			if err != nil {
				t.Fatalf("%v (run with -rewrite-jobs to create it)", err)
			}
			if got != string(want) {
				t.Errorf("%s differs (run with -rewrite-jobs and review the diff)\n got:\n%s\nwant:\n%s", outPath, got, want)
			}
		})
	}
}

// TestJobFileThroughArgs checks that ParseArgs reports a job file's problems
// as ParseJobFile does, and lets a target argument stand in for filename=.
func TestJobFileThroughArgs(t *testing.T) {
	path := filepath.Join("testdata", "jobs", "no-target.fio")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, fileErr := ParseJobFile(path, data)
	_, argsErr := ParseArgs([]string{path})
	if fileErr == nil || argsErr == nil || fileErr.Error() != argsErr.Error() {
		t.Errorf("ParseJobFile: %v\nParseArgs: %v", fileErr, argsErr)
	}
	spec, err := ParseArgs([]string{path, "file:/tmp/t"})
	if err != nil {
		t.Fatal(err)
	}
	if len(spec.Jobs) != 2 || spec.Jobs[0].Target != "file:/tmp/t" || spec.Jobs[1].Target != "file:/tmp/second" {
		t.Errorf("jobs: %+v", spec.Jobs)
	}
}

func TestParseJobFileLimits(t *testing.T) {
	many := func(n int, format string) []byte {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, format, i)
		}
		return []byte(b.String())
	}
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"too large", make([]byte, jobFileBytesMax+1), "bench: big.fio: job file is over the limit of 1048576 bytes (1 MiB)"},
		{"long line", []byte("[a]\nfilename=/x\ndescription=" + strings.Repeat("x", 4096) + "\n"), "bench: big.fio:3: line is 4108 bytes; the limit is 4096"},
		{"too many jobs", many(jobsMax+1, "[j%d]\nfilename=/x\n"), "bench: big.fio:2049: more than 1024 jobs; the limit is 1024"},
		{"too many options", append([]byte("[a]\nfilename=/x\n"), many(jobOptionsMax, "description=%d\n")...), "bench: big.fio:258: job a: more than 256 options apply; the limit is 256"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseJobFile("big.fio", tt.data)
			if err == nil || err.Error() != tt.want {
				t.Errorf("got %v\nwant %s", err, tt.want)
			}
		})
	}
	// At the limits, all is well.
	jobs, err := ParseJobFile("big.fio", many(jobsMax, "[j%d]\nfilename=/x\n"))
	if err != nil || len(jobs) != jobsMax {
		t.Errorf("%d jobs: %d, %v", jobsMax, len(jobs), err)
	}
}

func TestFormatJobFile(t *testing.T) {
	// Hand-built jobs, without Options: FormatJobFile writes the fields.
	jobs := []Job{
		withDefaults("a", func(j *Job) {
			j.Target = "file:/dev/sdb"
			j.Pattern = PatternRandWrite
			j.BlockSize = 3 << 20
			j.Size = 5<<30 + 512
			j.IODepth = 64
			j.NumJobs = 8
			j.Runtime = 90 * time.Second
			j.TimeBased = true
			j.RampTime = 1500 * time.Microsecond
			j.Direct = true
			j.Fsync = 16
			j.RWMixRead = 10
			j.GroupReporting = true
		}),
		withDefaults("b", func(j *Job) {
			j.Target = "file:/tmp/b"
			j.IOEngine = EnginePsync
			j.Runtime = 36 * time.Hour
		}),
	}
	text := string(FormatJobFile(jobs))
	const want = `[a]
filename=file:/dev/sdb
rw=randwrite
bs=3m
size=5368709632
iodepth=64
numjobs=8
runtime=90s
time_based=1
ramp_time=1500us
direct=1
fsync=16
rwmixread=10
group_reporting=1

[b]
filename=file:/tmp/b
runtime=36h
ioengine=psync
`
	if text != want {
		t.Errorf("FormatJobFile:\n%s\nwant:\n%s", text, want)
	}
	checkFormatRoundTrip(t, jobs)
}

// checkFormatRoundTrip checks that FormatJobFile writes jobs so that
// ParseJobFile reads them back the same, but for Options, which may gain
// the options written for fields they did not produce.
func checkFormatRoundTrip(t *testing.T, jobs []Job) {
	t.Helper()
	text := FormatJobFile(jobs)
	got, err := ParseJobFile("formatted", text)
	if err != nil {
		t.Fatalf("ParseJobFile(FormatJobFile(jobs)): %v\n%s", err, text)
	}
	if len(got) != len(jobs) {
		t.Fatalf("round trip: %d jobs, want %d\n%s", len(got), len(jobs), text)
	}
	for i := range jobs {
		g, w := got[i], jobs[i]
		if len(g.Options) < len(w.Options) || !slices.Equal(g.Options[:len(w.Options)], w.Options) {
			t.Errorf("round trip of job %d: Options %v do not start with %v", i, g.Options, w.Options)
		}
		g.Options, w.Options = nil, nil
		if !reflect.DeepEqual(g, w) {
			t.Errorf("round trip of job %d:\n got %+v\nwant %+v\n%s", i, g, w, text)
		}
	}
}

// dumpJobs writes jobs one field per line, for golden files.
func dumpJobs(jobs []Job) string {
	var b strings.Builder
	for _, j := range jobs {
		fmt.Fprintf(&b, "job %s\n", j.Name)
		fmt.Fprintf(&b, "\ttarget=%s rw=%s bs=%d size=%d iodepth=%d numjobs=%d\n",
			j.Target, j.Pattern, j.BlockSize, j.Size, j.IODepth, j.NumJobs)
		fmt.Fprintf(&b, "\truntime=%v time_based=%v ramp_time=%v direct=%v fsync=%d\n",
			j.Runtime, j.TimeBased, j.RampTime, j.Direct, j.Fsync)
		fmt.Fprintf(&b, "\tioengine=%s rwmixread=%d group_reporting=%v\n",
			j.IOEngine, j.RWMixRead, j.GroupReporting)
		if e := j.Engine; j.IsEngine() {
			fmt.Fprintf(&b, "\tengine_object_size=%d engine_fill=%g engine_segment_size=%d engine_shards=%d engine_cores=%v engine_mode=%s\n",
				e.ObjectSize, e.Fill, e.SegmentSize, e.Shards, e.Cores, e.Mode)
		}
		b.WriteString("\toptions:")
		for _, o := range j.Options {
			fmt.Fprintf(&b, " %s=%q", o.Name, o.Value)
		}
		b.WriteString("\n")
	}
	return b.String()
}
