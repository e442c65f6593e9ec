package bench

import (
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
)

// FuzzParseJobFile requires that ParseJobFile never panics, and that any
// job file it accepts survives FormatJobFile and ParseJobFile unchanged,
// Options included. The input limits (jobFileBytesMax and friends) bound
// what one input can allocate.
func FuzzParseJobFile(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "jobs", "*.fio"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no seed job files: %v", err)
	}
	for _, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("[a]\nfilename=x\n[global]\nbs=8k\n[b]\nfilename=y\n[global]\nrw=rw\n[c]\nfilename=z\ntime_based\nruntime=1\n"))
	f.Add([]byte("[ a ]\n  filename =  file:/x  \ndescription==;#[x]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		jobs, err := ParseJobFile("fuzz.fio", data)
		if err != nil {
			if _, ok := err.(*UsageError); !ok {
				t.Fatalf("error %v is a %T, not a *UsageError", err, err)
			}
			return
		}
		if len(jobs) == 0 {
			t.Fatal("accepted a job file without jobs")
		}
		for _, j := range jobs {
			if j.Target == "" {
				t.Fatalf("accepted job %q without a target", j.Name)
			}
		}
		text := FormatJobFile(jobs)
		jobs2, err := ParseJobFile("formatted", text)
		if err != nil {
			t.Fatalf("FormatJobFile output rejected: %v\ninput:\n%q\nformatted:\n%q", err, data, text)
		}
		if !reflect.DeepEqual(jobs, jobs2) {
			t.Fatalf("round trip changed the jobs\n got %+v\nwant %+v\nformatted:\n%q", jobs2, jobs, text)
		}
	})
}

// FuzzParseSize requires that ParseSize never panics, accepts no negative
// size, and reads back a size written as a plain number or by formatSize.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"0", "4k", "4KiB", "1m", "64MB", "2g", "3tib", "9223372036854775807", "8388608t", "-1", "1.5k", "", "k"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseSize(s)
		if err != nil {
			return
		}
		if v < 0 {
			t.Fatalf("ParseSize(%q) = %d", s, v)
		}
		for _, again := range []string{strconv.FormatInt(v, 10), formatSize(v)} {
			if v2, err := ParseSize(again); err != nil || v2 != v {
				t.Fatalf("ParseSize(%q) = %d, but ParseSize(%q) = %d, %v", s, v, again, v2, err)
			}
		}
	})
}

// FuzzParseDuration requires that ParseDuration never panics, accepts no
// negative time, and reads back what formatDuration writes.
func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"0", "30", "250us", "250ms", "2m", "1h", "1D", "106751d", "106752d", "-1", "1.5s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration(s)
		if err != nil {
			return
		}
		if d < 0 {
			t.Fatalf("ParseDuration(%q) = %v", s, d)
		}
		again := formatDuration(d)
		if d2, err := ParseDuration(again); err != nil || d2 != d {
			t.Fatalf("ParseDuration(%q) = %v, but ParseDuration(%q) = %v, %v", s, d, again, d2, err)
		}
	})
}
